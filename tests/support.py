"""Helpers shared by the tests: the repository's paths, the local runner and Chromium."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EVENTS = REPO / "events"
#: Real OpenTelemetry JS exports (tests/fixtures/otel-js/README.md says how they were made).
FIXTURES = REPO / "tests" / "fixtures" / "otel-js"
CHROMIUM = os.environ.get("SKEWGATE_CHROMIUM", "/usr/bin/chromium")
# What Debian's Chromium needs headless, as root, on a machine with no route to the internet.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # also what lets LD_PRELOAD (libfaketime) reach every Chromium process
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def get_json(url: str) -> tuple[int, Any]:
    """Status and parsed JSON body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def runner_env(
    dynamodb_endpoint: str, port: int, table_prefix: str, **extra: str
) -> dict[str, str]:
    """The local runner's environment for one test module: its own fresh table on
    ``dynamodb_endpoint``, ``port``, no forwarder, unbuffered output, then ``extra``."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "TABLE_NAME": f"{table_prefix}-{secrets.token_hex(4)}",
        "PORT": str(port),
        "FORWARD_TARGET": "none",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@contextmanager
def local_runner(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """``python -m skewgate_tools.local.run`` with ``env``, until it listens on ``port``.

    Yields its base URL; the process's output goes to ``log`` (shown when it fails to start).
    """
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "skewgate_tools.local.run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"local runner exited:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"local runner did not start listening:\n{log.read_text()}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
