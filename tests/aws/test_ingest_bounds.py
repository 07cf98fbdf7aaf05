"""Requests built to cost: each is a clear 4xx or partialSuccess within 1 s of CPU and 200 MB.

The cases, and how they are measured, are ``benchmarks/hostile.py``'s (its docstring tells
what each cost before the hot path was rebuilt); they go through the real handler and
DynamoDB Local.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from benchmarks.hostile import CASES, CPU_S, MEMORY_BYTES, measured
from skewgate.aws.ingest import IngestApp
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store


@pytest.mark.parametrize("name", list(CASES))
def test_a_costly_request_is_refused_cheaply(
    name: str, ddb_client: Any, table_name: str
) -> None:
    build, status, says = CASES[name]
    event = build()
    app = IngestApp(IngestSettings.from_env({"TABLE_NAME": table_name}),
                    Store(ddb_client, table_name))
    response, cpu, memory = measured(lambda: app.handle(event, remaining_ms=lambda: 20_000))
    assert response["statusCode"] == status, response["body"][:300]
    if response["headers"]["content-type"] == "application/x-protobuf":
        from google.rpc.status_pb2 import Status

        message = Status.FromString(base64.b64decode(response["body"]))
        body = {"code": message.code, "message": message.message}
    else:
        body = json.loads(response["body"])
    text = json.dumps(body)
    assert says in text, text[:300]
    if status == 200:
        assert int(body["partialSuccess"]["rejectedSpans"]) > 0
    assert cpu < CPU_S, f"{name}: {cpu:.2f} s of CPU"
    assert memory < MEMORY_BYTES, f"{name}: {memory / 1e6:.0f} MB"
