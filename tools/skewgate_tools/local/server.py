"""A loopback HTTP server that plays API Gateway (HTTP API, payload v2) for the handlers.

Each request becomes the event API Gateway would send — lowercase headers, a base64 body for
anything but uncompressed text, ``requestContext.timeEpoch`` stamped when the request line
arrived — and goes to the very handler Lambda runs. Read routes answer without IAM signing
here (loopback only).

Example:
    >>> server = make_server(ingest, read, port=0)  # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from skewgate_tools.local.h2c import PREFACE_LINE, answer_grpc_unimplemented

__all__ = ["Handler", "build_event", "make_server"]

logger = logging.getLogger("skewgate_tools.local")

Handler = Callable[[dict[str, Any]], dict[str, Any]]

# API Gateway rejects payloads over 10 MB before any Lambda runs.
_GATEWAY_MAX_BODY = 10 * 1024 * 1024
_TEXT_TYPES = ("application/json", "text/")
# /demo/<name>: flat names only (no directories, no dot files), these types only.
_STATIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def build_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    time_epoch_ms: int,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The HTTP API v2 event for one request."""
    split = urlsplit(target)
    merged: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    content_type = merged.get("content-type", "")
    textual = content_type.startswith(_TEXT_TYPES) and "content-encoding" not in merged
    try:
        text = body.decode() if textual else None
    except UnicodeDecodeError:
        text = None
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": split.path or "/",
        "rawQueryString": split.query,
        "headers": merged,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": merged.get("host", "127.0.0.1"),
            "http": {
                "method": method.upper(),
                "path": split.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": datetime.fromtimestamp(time_epoch_ms / 1000, tz=UTC).strftime(
                "%d/%b/%Y:%H:%M:%S +0000"
            ),
            "timeEpoch": time_epoch_ms,
        },
        "isBase64Encoded": text is None and bool(body),
        "body": (text if text is not None else base64.b64encode(body).decode()) if body else None,
    }
    if query:
        event["queryStringParameters"] = query
    return event


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "skewgate-local"
    protocol_version = "HTTP/1.1"
    timeout = 30  # a stalled client must not hold a thread forever
    router: Callable[[str, str], Handler | None]
    static_dir: Path | None

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)

    def parse_request(self) -> bool:
        """An HTTP/2 preface (a gRPC exporter) gets gRPC's UNIMPLEMENTED, not a 505."""
        if self.raw_requestline == PREFACE_LINE:
            self.close_connection = True
            answer_grpc_unimplemented(
                self.raw_requestline, self.rfile, self.connection, self.address_string()
            )
            return False
        return super().parse_request()

    def _serve(self) -> None:
        received_ms = int(time.time() * 1000)  # the edge's receipt time, before the body
        length_text = self.headers.get("content-length")
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                body = self._read_chunked()
            else:
                length = int(length_text or 0)
                if length > _GATEWAY_MAX_BODY:
                    self._send_raw(413, b'{"message":"Request Entity Too Large"}')
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length > 0 else b""
        except (ValueError, OSError):
            self._send_raw(400, b'{"message":"Bad Request"}')
            self.close_connection = True
            return
        path = urlsplit(self.path).path
        if self.command == "GET" and self.static_dir is not None and (
            path == "/demo" or path.startswith("/demo/")
        ):
            self._send_static(path[len("/demo/"):] or "index.html")
            return
        handler = self.router(self.command, path)
        if handler is None:
            self._send_raw(404, b'{"message":"Not Found"}')
            return
        event = build_event(
            self.command,
            self.path,
            list(self.headers.items()),
            body,
            received_ms,
            self.client_address[0],
        )
        response = handler(event)
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        self.send_response(int(response.get("statusCode", 200)))
        for name, value in (response.get("headers") or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            total += size
            if total > _GATEWAY_MAX_BODY:
                raise ValueError("body too large")
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _send_raw(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_static(self, name: str) -> None:
        """``/demo/<name>``: a flat file of ``static_dir`` with a known type, nothing else."""
        assert self.static_dir is not None
        kind = _STATIC_TYPES.get(Path(name).suffix)
        path = self.static_dir / name
        if kind is None or not _STATIC_NAME.fullmatch(name) or not path.is_file():
            self._send_raw(404, b'{"message":"Not Found"}')
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve


def default_router(ingest: Handler, read: Handler) -> Callable[[str, str], Handler | None]:
    """API Gateway's route table: ingest routes, IAM read routes (unsigned locally)."""

    def route(method: str, path: str) -> Handler | None:
        clean = path.rstrip("/")
        # Logs and metrics too: the ingest answers them (not supported, never retried).
        if clean in ("/v1/traces", "/v1/clock", "/v1/logs", "/v1/metrics"):
            return ingest
        if clean.startswith(("/v1/sessions", "/v1/traces/")) or clean == "/v1/stats":
            return read
        return None

    return route


def make_server(
    ingest: Handler,
    read: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    static_dir: Path | None = None,
) -> ThreadingHTTPServer:
    handler_class = type(
        "SkewgateLocalHandler",
        (_RequestHandler,),
        {"router": staticmethod(default_router(ingest, read)), "static_dir": static_dir},
    )
    server = ThreadingHTTPServer((host, port), handler_class)
    server.daemon_threads = True
    return server
