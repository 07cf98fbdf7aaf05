"""Shared fixtures: DynamoDB Local (one per test session) and a fresh table per test.

Tests that do not ask for these fixtures start no Java process.

- ``dynamodb_endpoint``: URL of DynamoDB Local on a free loopback port, started on first use
  and stopped at the end of the session; if ``AWS_ENDPOINT_URL_DYNAMODB`` is already set, that
  endpoint is used and nothing is started. Either way ``AWS_ENDPOINT_URL_DYNAMODB`` (and the
  streams endpoint), dummy credentials (only when we started the database) and the region are
  set in the environment for the rest of the session, so code under test that creates its own
  boto3 clients reaches the same database.
- ``ddb_client``: a boto3 DynamoDB client for it.
- ``table_name``: a uniquely named table created from ``template.yaml`` (LSI, GSI, stream, TTL),
  exported as ``TABLE_NAME`` and deleted after the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skewgate_tools.local import dynamodb as ddb

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "template.yaml"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (holds template.yaml, package.json, node_modules)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def template_path() -> Path:
    """The SAM template whose table definition the tests use."""
    return TEMPLATE


@pytest.fixture(scope="session")
def dynamodb_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL of a DynamoDB Local for the whole test session."""
    with pytest.MonkeyPatch.context() as mp:
        preset = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
        if preset:
            region = (
                os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
                or ddb.LOCAL_REGION
            )
            mp.setenv("AWS_REGION", region)
            mp.setenv("AWS_DEFAULT_REGION", region)
            mp.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", preset)
            yield preset
            return
        # Never let a test reach real AWS with real credentials.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "local")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "local")
        mp.setenv("AWS_DEFAULT_REGION", ddb.LOCAL_REGION)
        mp.setenv("AWS_REGION", ddb.LOCAL_REGION)
        log = tmp_path_factory.mktemp("dynamodb-local") / "dynamodb-local.log"
        with ddb.dynamodb_local(repo_root=REPO_ROOT, log_path=log) as endpoint:
            mp.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
            mp.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint)
            yield endpoint


@pytest.fixture(scope="session")
def ddb_client(dynamodb_endpoint: str) -> Any:
    """The functions' DynamoDB client (``skewgate.aws.client.dynamodb_client``: the lean
    caller for the commit's operations, boto3 for the rest) for ``dynamodb_endpoint``."""
    from skewgate.aws.client import dynamodb_client

    client = dynamodb_client()
    assert client.endpoint_url == dynamodb_endpoint.rstrip("/")
    return client


@pytest.fixture
def table_name(ddb_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh table made from template.yaml's definition; ``TABLE_NAME`` points at it."""
    name = f"skewgate-test-{uuid.uuid4().hex[:12]}"
    ddb.ensure_table(ddb_client, name, TEMPLATE)
    monkeypatch.setenv("TABLE_NAME", name)
    try:
        yield name
    finally:
        try:
            ddb_client.delete_table(TableName=name)
        except ddb_client.exceptions.ResourceNotFoundException:
            pass
