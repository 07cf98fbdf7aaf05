"""The aws room: settings, the DynamoDB caller and boto3 clients, API Gateway events, CORS,
DynamoDB items and I/O, the ingest and read handlers, fleet metrics and the stream forwarder
(:mod:`.forward`).

The only room that talks to AWS. Importing it imports nothing: each function loads the
modules it runs (the ingest never loads the read API's), and clients are built by the
functions' init, through :mod:`skewgate.aws.client`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skewgate.aws.ingest import BatchOutcome, IngestApp, build_ingest_app
    from skewgate.aws.read import ReadApp, build_read_app
    from skewgate.aws.settings import (
        ConfigError,
        ForwardSettings,
        IngestSettings,
        ReadSettings,
        TableSettings,
    )
    from skewgate.aws.store import AlreadyCommitted, StateConflict, StorageUnavailable, Store

_HOMES = {
    "BatchOutcome": "ingest",
    "IngestApp": "ingest",
    "build_ingest_app": "ingest",
    "ReadApp": "read",
    "build_read_app": "read",
    "ConfigError": "settings",
    "ForwardSettings": "settings",
    "IngestSettings": "settings",
    "ReadSettings": "settings",
    "TableSettings": "settings",
    "AlreadyCommitted": "store",
    "StateConflict": "store",
    "StorageUnavailable": "store",
    "Store": "store",
}

__all__ = [
    "AlreadyCommitted",
    "BatchOutcome",
    "ConfigError",
    "ForwardSettings",
    "IngestApp",
    "IngestSettings",
    "ReadApp",
    "ReadSettings",
    "StateConflict",
    "StorageUnavailable",
    "Store",
    "TableSettings",
    "build_ingest_app",
    "build_read_app",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"skewgate.aws.{home}"), name)
