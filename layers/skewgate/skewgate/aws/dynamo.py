"""A lean DynamoDB caller for the functions: the operations the store makes, and nothing else.

A boto3 call costs about 3 ms of CPU whatever it carries (parameter handling, events, the
retry handler, response parsing by shape walking), and building the client costs a cold start
~210 ms (importing boto3, loading the service model and endpoint rules). The store needs five
operations of one JSON protocol, so this caller speaks it itself: the request is the item
dicts the store already holds, ``json.dumps``-ed and signed with SigV4 (:func:`sign`); the
response is ``json.loads``-ed and checked against its ``x-amz-crc32`` header. HTTP/1.1 is
spoken over kept-alive sockets from a small thread-safe pool (a request is one ``sendall``;
the response head is parsed by hand), each socket with its own connect and read timeouts.
Binary attribute values travel base64-encoded in the protocol and come back as ``bytes``, as
boto3 gives them.

Errors are two types: :class:`DynamoDBError` when DynamoDB answered with one (its ``response``
is shaped like botocore's ``ClientError.response``: ``Error.Code``, ``CancellationReasons``),
:class:`DynamoDBUnreachable` when it did not answer (refused, reset, timed out, corrupted).
Nothing is resent on its own: a write whose answer was lost is the caller's to retry, since
only the caller knows whether that is safe.

Any other method (``create_table``, ``scan``, ``exceptions`` …, used by tools and tests) goes to
a boto3 client built on first use with the same endpoint, region and credentials.

Example:
    >>> _wire({"Item": {"b": {"B": b"\\x00\\x01"}}})
    '{"Item":{"b":{"B":"AAE="}}}'
    >>> default_endpoint("eu-west-1"), default_endpoint("cn-north-1")
    ('https://dynamodb.eu-west-1.amazonaws.com', 'https://dynamodb.cn-north-1.amazonaws.com.cn')
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import select
import socket
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

__all__ = [
    "Credentials",
    "DynamoDBError",
    "DynamoDBUnreachable",
    "LeanDynamoDB",
    "default_endpoint",
    "sign",
]

_TARGET_PREFIX: Final = "DynamoDB_20120810."
_CONTENT_TYPE: Final = "application/x-amz-json-1.0"
_SERVICE: Final = "dynamodb"


class Credentials(NamedTuple):
    """What SigV4 signs with (botocore's ``ReadOnlyCredentials`` has the same fields)."""

    access_key: str
    secret_key: str
    token: str | None = None


class DynamoDBError(Exception):
    """DynamoDB answered an operation with an error.

    ``response`` has botocore's ``ClientError.response`` shape, so code that reads
    ``response["Error"]["Code"]`` treats both alike.
    """

    def __init__(self, operation: str, status: int, payload: dict[str, Any]) -> None:
        code = str(payload.get("__type", "")).rsplit("#", 1)[-1] or f"HTTP{status}"
        message = str(payload.get("message") or payload.get("Message") or "")
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        if "CancellationReasons" in payload:
            self.response["CancellationReasons"] = payload["CancellationReasons"]


class DynamoDBUnreachable(Exception):
    """No usable answer: connection refused or reset, timed out, or a corrupted response."""


def default_endpoint(region: str) -> str:
    """DynamoDB's regional endpoint in the ``aws``, ``aws-cn`` and ``aws-us-gov`` partitions."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://dynamodb.{region}.{suffix}"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    *,
    host: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    amz_date: str,
    path: str = "/",
) -> dict[str, str]:
    """``headers`` plus ``Host``, ``X-Amz-Date``, the session token and ``Authorization``:
    SigV4 for a ``POST`` without a query string, every header signed.

    ``amz_date`` is ``YYYYMMDDTHHMMSSZ`` (UTC). The result equals what botocore's ``SigV4Auth``
    adds to the same request (``tests/aws/test_dynamo.py`` holds them to each other).
    """
    signed = {"host": host, "x-amz-date": amz_date}
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    for name, value in headers.items():
        signed[name.lower()] = " ".join(value.split())
    names = sorted(signed)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        [
            "POST",
            path,
            "",
            "".join(f"{name}:{signed[name]}\n" for name in names),
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    day = amz_date[:8]
    scope = f"{day}/{region}/{_SERVICE}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{credentials.secret_key}".encode(), day), region),
                      _SERVICE), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = dict(headers)
    out["Host"] = host
    out["X-Amz-Date"] = amz_date
    if credentials.token:
        out["X-Amz-Security-Token"] = credentials.token
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out


def _binary(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _wire(params: dict[str, Any]) -> str:
    return json.dumps(params, separators=(",", ":"), default=_binary)


def _unbinary(value: Any) -> None:
    """Decode the base64 of every ``B`` value under ``value``, in place."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "B" and isinstance(inner, str):
                value[key] = base64.b64decode(inner)
            else:
                _unbinary(inner)
    elif isinstance(value, list):
        for inner in value:
            _unbinary(inner)


class HttpProtocolError(Exception):
    """A response that is not HTTP/1.1 as DynamoDB speaks it."""


_MAX_HEAD: Final = 64 * 1024
_RECV: Final = 256 * 1024


class _Connection:
    """One HTTP/1.1 keep-alive connection: a request is one ``sendall``, the response is read
    into one buffer and parsed by hand (``http.client`` parses headers with the ``email``
    package: half the CPU of a small DynamoDB call)."""

    __slots__ = ("buffer", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(_RECV)
        if not data:
            raise ConnectionResetError("DynamoDB closed the connection mid-response")
        self.buffer += data

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > _MAX_HEAD:
                raise HttpProtocolError("response line too long")
            self._fill()
        return self._take(end + 2)[:-2]

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        """Status, headers (lowercase names), body, and whether the connection stays open."""
        self.sock.sendall(request)
        while True:
            while (end := self.buffer.find(b"\r\n\r\n")) < 0:
                if len(self.buffer) > _MAX_HEAD:
                    raise HttpProtocolError("response head over 64 KiB")
                self._fill()
            head = self._take(end + 4).decode("latin-1").split("\r\n")
            version, _, rest = head[0].partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise HttpProtocolError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
            status = int(code)
            if status != 100:
                break
        headers: dict[str, str] = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while size := int(self._line().split(b";", 1)[0] or b"x", 16):
                parts.append(self._take(size + 2)[:-2])
            while self._line():  # trailers, then the empty line
                pass
            body = b"".join(parts)
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        else:  # delimited by the close
            keep = False
            while True:
                data = self.sock.recv(_RECV)
                if not data:
                    break
                self.buffer += data
            body = bytes(self.buffer)
            self.buffer.clear()
        return status, headers, body, keep


class _ConnectionPool:
    """Keep-alive connections to one endpoint, one per concurrent caller at most ``size`` kept.

    A kept connection the server has closed meanwhile (DynamoDB drops idle ones) is noticed
    before reuse, as urllib3 does: its socket reads as ready (EOF) while no request is out.
    """

    def __init__(self, url: str, connect_timeout: float, read_timeout: float, size: int) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {url!r}")
        self.https = parts.scheme == "https"
        default_port = 443 if self.https else 80
        # As botocore signs it: the default port is not part of the host.
        self.host_header = parts.netloc.rsplit("@", 1)[-1]
        if parts.port == default_port:
            self.host_header = self.host_header.rsplit(":", 1)[0]
        self.hostname = parts.hostname
        self.port = parts.port or default_port
        self.path = parts.path or "/"
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.size = size
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._ssl_context: Any = None

    def _context(self) -> Any:
        # botocore's trust store: AWS_CA_BUNDLE, else certifi's bundle when installed, else
        # the system's.
        if self._ssl_context is None:
            import ssl

            cafile = os.environ.get("AWS_CA_BUNDLE") or None
            if cafile is None:
                try:
                    import certifi

                    cafile = certifi.where()
                except ImportError:
                    pass
            self._ssl_context = ssl.create_default_context(cafile=cafile)
        return self._ssl_context

    def _connect(self) -> _Connection:
        sock = socket.create_connection((self.hostname, self.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.https:  # the handshake is part of connecting, under the connect timeout
                sock = self._context().wrap_socket(sock, server_hostname=self.hostname)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _take(self) -> _Connection:
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn = self._idle.pop()
            if not conn.buffer and not select.select([conn.sock], [], [], 0)[0]:
                return conn
            conn.close()
        return self._connect()

    def _give(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
        """Status, ``x-amz-crc32`` header and body of one POST; ``OSError`` or
        :class:`HttpProtocolError` when there is no usable answer."""
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            f"POST {self.path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n"
            "Accept-Encoding: identity\r\nUser-Agent: skewgate\r\n\r\n"
        ).encode("latin-1") + body
        conn = self._take()
        try:
            status, response_headers, data, keep = conn.exchange(request)
        except BaseException:
            conn.close()
            raise
        if keep:
            self._give(conn)
        else:
            conn.close()
        return status, response_headers.get("x-amz-crc32"), data

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class LeanDynamoDB:
    """``batch_get_item``, ``batch_write_item``, ``transact_write_items``, ``get_item`` and
    ``query`` over DynamoDB's JSON protocol; anything else through a boto3 client.

    ``credentials`` is called for every request (a refreshing source stays fresh);
    ``boto3_client`` is the client for the other methods, or ``boto3_factory`` builds it on
    first use.
    """

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: Callable[[], Credentials],
        *,
        connect_timeout: float,
        read_timeout: float,
        boto3_client: Any = None,
        boto3_factory: Callable[[], Any] | None = None,
        pool_size: int = 10,
    ) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.region = region
        self._credentials = credentials
        self._pool = _ConnectionPool(self.endpoint_url, connect_timeout, read_timeout, pool_size)
        self._boto3 = boto3_client
        self._boto3_factory = boto3_factory
        self._boto3_lock = threading.Lock()

    @property
    def boto3_client(self) -> Any:
        """The boto3 client behind the other methods (built on first use)."""
        if self._boto3 is None:
            with self._boto3_lock:
                if self._boto3 is None:
                    if self._boto3_factory is None:
                        raise AttributeError("this LeanDynamoDB has no boto3 client")
                    self._boto3 = self._boto3_factory()
        return self._boto3

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.boto3_client, name)

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        body = _wire(params).encode()
        headers = sign(
            host=self._pool.host_header,
            headers={"Content-Type": _CONTENT_TYPE, "X-Amz-Target": _TARGET_PREFIX + operation},
            body=body,
            credentials=self._credentials(),
            region=self.region,
            amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            path=self._pool.path,
        )
        try:
            status, crc, data = self._pool.post(body, headers)
        except (OSError, HttpProtocolError, ValueError) as exc:
            raise DynamoDBUnreachable(
                f"DynamoDB {operation} at {self.endpoint_url}: {type(exc).__name__}: {exc}"
            ) from exc
        if crc is not None and int(crc) != zlib.crc32(data):
            raise DynamoDBUnreachable(f"DynamoDB {operation}: response CRC32 mismatch")
        try:
            parsed: dict[str, Any] = json.loads(data) if data else {}
        except ValueError as exc:
            raise DynamoDBUnreachable(
                f"DynamoDB {operation}: HTTP {status} with a body that is not JSON"
            ) from exc
        if status != 200:
            raise DynamoDBError(operation, status, parsed)
        _unbinary(parsed)
        return parsed

    def batch_get_item(self, **params: Any) -> dict[str, Any]:
        return self._call("BatchGetItem", params)

    def batch_write_item(self, **params: Any) -> dict[str, Any]:
        return self._call("BatchWriteItem", params)

    def transact_write_items(self, **params: Any) -> dict[str, Any]:
        return self._call("TransactWriteItems", params)

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self._call("GetItem", params)

    def query(self, **params: Any) -> dict[str, Any]:
        return self._call("Query", params)

    def close(self) -> None:
        """Close the kept connections."""
        self._pool.close()
