"""``make run``'s runner on a DynamoDB it did not start, and its one-line start errors.

The runner is started as ``make run`` starts it, with an environment holding no AWS variable
at all (no credentials, no region, no profile, ``HOME`` without ``~/.aws``) except, where a
case needs it, ``AWS_ENDPOINT_URL_DYNAMODB``: a loopback endpoint gets dummy credentials, any
other endpoint the SDK's chain and, when that finds nothing, one line naming what is missing.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO, local_runner

from skewgate_tools.local.dynamodb import free_port


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without a single ``AWS_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"HOME": str(home), "PYTHONUNBUFFERED": "1", "FORWARD_TARGET": "none", **extra})
    return env


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A plain OTLP/HTTP receiver: counts the requests the forwarder sends."""

    received: list[bytes]

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    server.shutdown()
    server.server_close()


def post_batch(gateway: str, session: str) -> str:
    now_ns = time.time_ns()
    trace_id = secrets.token_hex(16)
    span = {
        "traceId": trace_id,
        "spanId": secrets.token_hex(8),
        "name": "checkout",
        "kind": 1,
        "startTimeUnixNano": str(now_ns - 300_000_000),
        "endTimeUnixNano": str(now_ns - 100_000_000),
    }
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "session.id", "value": {"stringValue": session}}]
                },
                "scopeSpans": [{"spans": [span]}],
            }
        ]
    }
    request = urllib.request.Request(
        f"{gateway}/v1/traces",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return trace_id


def test_runs_on_a_running_dynamodb_local_without_any_aws_variable(
    dynamodb_endpoint: str, collector: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    """Table creation, ingest, read and the stream poller, all with dummy credentials."""
    endpoint, received = collector
    port = free_port()
    env = bare_env(
        tmp_path,
        AWS_ENDPOINT_URL_DYNAMODB=dynamodb_endpoint,
        TABLE_NAME=f"runner-{secrets.token_hex(4)}",
        PORT=str(port),
        FORWARD_TARGET="otlp",
        FORWARD_ENDPOINT=endpoint,
        FORWARD_DLQ_FILE=str(tmp_path / "dlq.jsonl"),
    )
    log = tmp_path / "runner.log"
    with local_runner(env, port, log) as gateway:
        session = f"runner-{secrets.token_hex(4)}"
        trace_id = post_batch(gateway, session)
        with urllib.request.urlopen(f"{gateway}/v1/sessions/{session}/skew", timeout=10) as r:
            (sample,) = json.loads(r.read())["samples"]
        assert sample["trace_ids"] == [trace_id]
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
    output = log.read_text()
    assert received, f"nothing forwarded:\n{output}"
    assert f"DynamoDB         {dynamodb_endpoint}" in output
    assert "DynamoDB Local" not in output  # it started none
    assert "Traceback" not in output and "NoCredentialsError" not in output, output


def start_failure(env: dict[str, str]) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "skewgate_tools.local.run"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ({"AWS_REGION": "eu-west-1"}, "no AWS credentials for dynamodb"),
        ({}, "no AWS region for dynamodb"),
    ],
    ids=["no-credentials", "no-region"],
)
def test_real_aws_endpoint_without_config_is_one_line(
    tmp_path: Path, extra: dict[str, str], missing: str
) -> None:
    env = bare_env(
        tmp_path,
        AWS_ENDPOINT_URL_DYNAMODB="https://dynamodb.eu-west-1.amazonaws.com",
        PORT=str(free_port()),
        **extra,
    )
    code, _, err = start_failure(env)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"skewgate-local: {missing}"), err


def test_unreachable_dynamodb_is_one_line(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = bare_env(tmp_path, AWS_ENDPOINT_URL_DYNAMODB=endpoint, PORT=str(free_port()))
    code, _, err = start_failure(env)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"skewgate-local: DynamoDB at {endpoint}: ")


def test_bad_setting_is_one_line(dynamodb_endpoint: str, tmp_path: Path) -> None:
    env = bare_env(
        tmp_path,
        AWS_ENDPOINT_URL_DYNAMODB=dynamodb_endpoint,
        PORT=str(free_port()),
        TABLE_NAME=f"runner-{secrets.token_hex(4)}",
        MAX_BATCH_AGE_MS="soon",
    )
    code, _, err = start_failure(env)
    assert (code, err.strip()) == (
        1, "skewgate-local: MAX_BATCH_AGE_MS: expected a number, got 'soon'"
    )
