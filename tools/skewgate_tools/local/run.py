"""``make run``: DynamoDB Local, the local API on 127.0.0.1:3000 and the stream forwarder.

Every piece can point at real AWS instead: with ``AWS_ENDPOINT_URL_DYNAMODB`` set, that
endpoint is used and no DynamoDB Local is started; ``PORT`` moves the HTTP server. The
handlers are the Lambda ones (``IngestApp``, ``ReadApp``), fed API Gateway v2 events.

Every AWS client (ingest, read, table creation, the stream poller) follows one rule
(:func:`skewgate.aws.client.aws_client`): a loopback endpoint without credentials gets dummy
ones, anything else uses the SDK's chain. A missing credential or region, an unreachable
endpoint or a bad setting ends the start with one line on stderr and exit status 1.

Usage:
    python -m skewgate_tools.local.run [--port 3000] [--dynamodb-port 8000]

``PORT`` and ``DYNAMODB_PORT`` set the same two ports (``PORT=3200 DYNAMODB_PORT=8200 make run``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType

from skewgate_tools.local import dynamodb as ddb
from skewgate_tools.local.server import make_server

DEFAULT_TABLE = "skewgate"


def _prepare_environment(args: argparse.Namespace) -> object | None:
    """Start DynamoDB Local unless an endpoint is configured; return its process.

    Sets no credentials or region: the clients' loopback rule gives DynamoDB Local dummy ones,
    and real AWS must not be reached with a guessed region.
    """
    os.environ.setdefault("TABLE_NAME", DEFAULT_TABLE)
    process = None
    if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        process = ddb.start_dynamodb_local(args.dynamodb_port)
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = ddb.endpoint_url(args.dynamodb_port)
        print(f"DynamoDB Local   {os.environ['AWS_ENDPOINT_URL_DYNAMODB']} (in memory)")
    else:
        print(f"DynamoDB         {os.environ['AWS_ENDPOINT_URL_DYNAMODB']}")
    return process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skewgate-local", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--dynamodb-port", type=int, default=int(os.environ.get("DYNAMODB_PORT", "8000")),
        help="DynamoDB Local's port when the runner starts it (default $DYNAMODB_PORT or 8000)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):  # credential/endpoint chatter per client
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        server, forwarder = _start(args)
    except StartError as exc:
        print(f"skewgate-local: {exc}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if forwarder is not None:
            forwarder.set()
    return 0


class StartError(Exception):
    """Why the runner cannot start, in one line."""


def _start(args: argparse.Namespace) -> tuple[ThreadingHTTPServer, threading.Event | None]:
    """DynamoDB (Local), the table, the handlers, the HTTP server, then the forwarder."""
    from botocore.exceptions import BotoCoreError, ClientError

    from skewgate.aws.client import MissingAwsConfig, dynamodb_client
    from skewgate.aws.settings import ConfigError

    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or "the AWS endpoint"
    server: ThreadingHTTPServer | None = None
    try:
        _prepare_environment(args)
        endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
        from skewgate.aws.ingest import build_ingest_app
        from skewgate.aws.read import build_read_app

        root = ddb.find_repo_root()
        table = os.environ["TABLE_NAME"]
        ddb.ensure_table(dynamodb_client(), table, root / "template.yaml")
        print(f"Table            {table} (from template.yaml)")

        ingest = build_ingest_app(metrics=False)
        read = build_read_app()
        static = Path(__file__).parent / "static"
        try:
            server = make_server(
                ingest.handle,
                read.handle,
                host=args.host,
                port=args.port,
                static_dir=static if static.is_dir() else None,
            )
        except OSError as exc:
            raise StartError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
        base = f"http://{args.host}:{server.server_address[1]}"
        print(f"API              {base}/v1/traces  {base}/v1/clock")
        print(f"Read routes      {base}/v1/sessions/{{id}}/skew  {base}/v1/traces/{{id}}")
        if static.is_dir():
            print(f"Demo page        {base}/demo")
        # Its stream iterators are taken before the first request is served.
        return server, _start_forwarder()
    except BaseException as exc:
        if server is not None:
            server.server_close()
        if isinstance(exc, (MissingAwsConfig, ConfigError, ddb.DynamoDBLocalError)):
            raise StartError(str(exc).splitlines()[0]) from None
        if isinstance(exc, (BotoCoreError, ClientError)):
            raise StartError(f"DynamoDB at {endpoint}: {_one_line(exc)}") from None
        raise


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _start_forwarder() -> threading.Event | None:
    """The stream poller, when the forward module is present."""
    try:
        from skewgate_tools.local.stream import start_stream_forwarder
    except ImportError:
        print("Forwarder        not available")
        return None
    return start_stream_forwarder()


if __name__ == "__main__":
    sys.exit(main())
