"""A gRPC exporter pointed at the local runner gets a clear, final ``UNIMPLEMENTED``.

skewgate speaks OTLP/HTTP only. An OTLP/gRPC exporter opens its connection with the HTTP/2
prior-knowledge preface (``PRI * HTTP/2.0``); ``http.server`` would answer it ``505 Invalid
HTTP version`` in HTTP/1.1, which the gRPC client reads as a broken connection
(``UNAVAILABLE``) and retries forever. Instead the runner speaks just enough HTTP/2 (the
``h2`` package) to answer every call with a Trailers-Only response: ``grpc-status: 12``
(``UNIMPLEMENTED``, which no OTLP exporter retries) and a ``grpc-message`` saying what to
use instead, and logs one line per connection.

Without ``h2`` installed the runner logs the same line and closes the connection.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, BinaryIO, Final

__all__ = ["GRPC_MESSAGE", "PREFACE_LINE", "answer_grpc_unimplemented", "grpc_message_header"]

logger = logging.getLogger("skewgate_tools.local")

#: The first line of the HTTP/2 client preface (RFC 9113 §3.4).
PREFACE_LINE: Final = b"PRI * HTTP/2.0\r\n"
GRPC_UNIMPLEMENTED: Final = 12
GRPC_MESSAGE: Final = (
    "skewgate accepts OTLP/HTTP only, not gRPC: use the OTLP/HTTP exporter "
    "(OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf or http/json) with the endpoint "
    "http(s)://<gateway>/v1/traces"
)


def grpc_message_header(message: str) -> str:
    """``grpc-message`` is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses").

    >>> grpc_message_header("50% off: é")
    '50%25 off: %C3%A9'
    """
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in message.encode()
    )


def answer_grpc_unimplemented(
    first_line: bytes, rfile: BinaryIO, connection: socket.socket, peer: str
) -> None:
    """Serve one HTTP/2 connection whose first line (already read) was :data:`PREFACE_LINE`."""
    try:
        import h2.config
        import h2.connection
        import h2.events
        import h2.exceptions
    except ImportError:
        logger.warning(
            "%s: gRPC (HTTP/2) connection refused: %s (install the Python package h2 to "
            "answer it UNIMPLEMENTED)", peer, GRPC_MESSAGE,
        )
        return
    logger.warning("%s: gRPC (HTTP/2) call answered UNIMPLEMENTED: %s", peer, GRPC_MESSAGE)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    connection.sendall(conn.data_to_send())
    data = first_line
    read1: Any = getattr(rfile, "read1", rfile.read)
    trailers = [
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", str(GRPC_UNIMPLEMENTED)),
        ("grpc-message", grpc_message_header(GRPC_MESSAGE)),
    ]
    while True:
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            logger.warning("%s: HTTP/2 protocol error: %s", peer, exc)
            connection.sendall(conn.data_to_send())
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                conn.send_headers(event.stream_id, trailers, end_stream=True)
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                connection.sendall(conn.data_to_send())
                return
        pending = conn.data_to_send()
        if pending:
            connection.sendall(pending)
        try:
            data = read1(65536)
        except (OSError, ValueError):  # the socket timed out or was closed
            return
        if not data:
            return
