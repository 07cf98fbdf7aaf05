"""A lean DynamoDB caller for the ingest's hot path: the operations a commit needs, nothing else.

A boto3 call costs about 3 ms of CPU whatever it carries (parameter handling, events, the
retry handler, response parsing by shape walking); a commit makes four. This caller keeps what
matters of botocore — the client's endpoint, region and credentials, its SigV4 signer — and
speaks DynamoDB's JSON protocol (``application/x-amz-json-1.0``) over one urllib3 connection
pool: the request is the item dicts the store already holds, ``json.dumps``-ed; the response
is ``json.loads``-ed. Errors come back as botocore's own exception types (``ClientError`` with
``Error.Code`` and ``CancellationReasons``, ``ReadTimeoutError``, ``EndpointConnectionError``),
so :class:`skewgate.aws.store.Store` treats both callers alike. Every other method goes to
the boto3 client.

Binary attribute values travel base64-encoded in the protocol and come back as ``bytes``, as
boto3 gives them. Responses are checked against their ``x-amz-crc32`` header.

Example:
    >>> _wire({"Item": {"b": {"B": b"\\x00\\x01"}}})
    '{"Item":{"b":{"B":"AAE="}}}'
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Final

__all__ = ["LeanDynamoDB"]

_TARGET_PREFIX: Final = "DynamoDB_20120810."
_CONTENT_TYPE: Final = "application/x-amz-json-1.0"


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


class LeanDynamoDB:
    """``batch_get_item``, ``batch_write_item``, ``transact_write_items``, ``get_item`` and
    ``query`` over DynamoDB's JSON protocol; anything else through ``client`` (boto3)."""

    def __init__(
        self,
        client: Any,
        credentials: Any,
        *,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int = 10,
    ) -> None:
        import urllib3
        from botocore.auth import SigV4Auth

        if credentials is None:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()
        self._client = client
        self._url = client.meta.endpoint_url.rstrip("/") + "/"
        self._region = client.meta.region_name
        self._credentials = credentials
        self._signer_class = SigV4Auth
        self._pool = urllib3.PoolManager(
            maxsize=pool_size,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        import urllib3
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        body = _wire(params).encode()
        request = AWSRequest(
            method="POST",
            url=self._url,
            data=body,
            headers={"Content-Type": _CONTENT_TYPE, "X-Amz-Target": _TARGET_PREFIX + operation},
        )
        signer = self._signer_class(
            self._credentials.get_frozen_credentials(), "dynamodb", self._region
        )
        signer.add_auth(request)
        try:
            response = self._pool.request(
                "POST", self._url, body=body, headers=dict(request.headers.items())
            )
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.TimeoutError) as exc:
            raise ReadTimeoutError(endpoint_url=self._url, error=exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise EndpointConnectionError(endpoint_url=self._url, error=exc) from exc
        data = response.data
        crc = response.headers.get("x-amz-crc32")
        if crc is not None and int(crc) != zlib.crc32(data):
            raise EndpointConnectionError(
                endpoint_url=self._url, error=ValueError("response CRC32 mismatch")
            )
        parsed: dict[str, Any] = json.loads(data) if data else {}
        if response.status != 200:
            code = str(parsed.get("__type", "")).rsplit("#", 1)[-1] or f"HTTP{response.status}"
            error: dict[str, Any] = {
                "Error": {
                    "Code": code,
                    "Message": parsed.get("message") or parsed.get("Message") or "",
                },
                "ResponseMetadata": {"HTTPStatusCode": response.status},
            }
            if "CancellationReasons" in parsed:
                error["CancellationReasons"] = parsed["CancellationReasons"]
            raise ClientError(error, operation)
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
