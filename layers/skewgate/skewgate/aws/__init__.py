"""The aws room: settings, the boto3 client, API Gateway events, CORS, DynamoDB items and I/O,
the ingest and read handlers, fleet metrics and the stream forwarder (:mod:`.forward`).

The only room that talks to AWS; it imports no boto3 at import time (clients are built by the
functions' init, through :mod:`skewgate.aws.client`).
"""

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
