"""One OTLP/HTTP export with retries: gzip, headers or SigV4, backoff, ``Retry-After``.

``Sender.send`` posts one serialized ``ExportTraceServiceRequest`` and keeps retrying the
retryable answers (429, 502, 503, 504 — and 500 for X-Ray, as the AWS SDKs do — plus
connection errors and timeouts) until it succeeds, gets a final answer, or the time budget
runs out. It never splits or drops anything itself: a 413 or a 400 is returned to the caller
(``skewgate.forward``), which splits or isolates and decides what is permanent.

Waits: ``Retry-After`` (delta-seconds or an HTTP date) when the receiver sends one, otherwise
exponential backoff with jitter (0.25 s doubling to 8 s, each wait drawn from [½, 1] of the
step). A ``Retry-After`` longer than the remaining budget ends the attempt at once, and the
sender remembers it: a later call on the same container waits until then before sending again,
so a throttled receiver is not hit again early by the next Lambda retry.

Example:
    >>> parse_retry_after("3", now=0.0)
    3.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412480.0)
    5.0
    >>> parse_retry_after("soon", now=0.0) is None
    True
"""

from __future__ import annotations

import email.utils
import gzip
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Protocol

__all__ = [
    "Attempt",
    "HttpResult",
    "Outcome",
    "SendResult",
    "Sender",
    "SigV4Auth",
    "StaticHeaders",
    "Urllib3Transport",
    "parse_retry_after",
]

logger = logging.getLogger("skewgate.forward")

CONTENT_TYPE: Final = "application/x-protobuf"
RETRYABLE: Final = frozenset({429, 502, 503, 504})
_MAX_REASON: Final = 512


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class HttpResult:
    """A response, or ``status=None`` and ``error`` when no response came back."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None


class Transport(Protocol):
    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResult: ...


class Urllib3Transport:
    """HTTP(S) with connection reuse (urllib3 ships with botocore in every Lambda runtime)."""

    def __init__(self, connect_timeout_s: float = 3.0) -> None:
        import urllib3

        self._urllib3 = urllib3
        self._connect_timeout_s = connect_timeout_s
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=2, retries=False)

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResult:
        urllib3 = self._urllib3
        timeout = urllib3.Timeout(connect=min(self._connect_timeout_s, timeout_s), read=timeout_s)
        try:
            response = self._pool.request(
                "POST",
                url,
                body=body,
                headers=dict(headers),
                timeout=timeout,
                retries=False,
                redirect=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return HttpResult(None, error=f"{type(exc).__name__}: {exc}")
        return HttpResult(
            response.status, {k.lower(): v for k, v in response.headers.items()}, response.data
        )


class Authenticator(Protocol):
    def headers(self, url: str, body: bytes, headers: Mapping[str, str]) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class StaticHeaders:
    """The configured ``FORWARD_HEADERS`` (e.g. an API key), added to every request."""

    extra: Mapping[str, str] = field(default_factory=dict)

    def headers(self, url: str, body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
        return {**headers, **self.extra}


class SigV4Auth:
    """AWS Signature Version 4 for the X-Ray OTLP endpoint (service ``xray``).

    Credentials come from botocore's default chain (the Lambda role's environment variables);
    refreshable credentials are frozen per request, so every retry is signed afresh.
    """

    def __init__(
        self,
        region: str,
        service: str = "xray",
        credentials: Any = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        if credentials is None:
            import botocore.session

            credentials = botocore.session.get_session().get_credentials()
            if credentials is None:
                raise RuntimeError("FORWARD_TARGET=xray: no AWS credentials found")
        self.region = region
        self.service = service
        self._credentials = credentials
        self._extra = dict(extra or {})

    def headers(self, url: str, body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth as BotocoreSigV4
        from botocore.awsrequest import AWSRequest

        frozen = (
            self._credentials.get_frozen_credentials()
            if hasattr(self._credentials, "get_frozen_credentials")
            else self._credentials
        )
        request = AWSRequest(method="POST", url=url, data=body, headers={**headers, **self._extra})
        BotocoreSigV4(frozen, self.service, self.region).add_auth(request)
        return {k: v for k, v in request.headers.items()}


class Outcome(Enum):
    OK = "ok"
    TOO_LARGE = "too_large"  # 413: split and send the halves
    REJECTED = "rejected"  # 400: the data is refused; isolate the offending records
    PERMANENT = "permanent"  # any other final answer: configuration or auth, not the data
    TRANSIENT = "transient"  # still failing when the time budget ran out: retry later


@dataclass(frozen=True, slots=True)
class Attempt:
    status: int | None
    error: str | None
    waited_s: float


@dataclass(slots=True)
class SendResult:
    outcome: Outcome
    status: int | None = None
    reason: str = ""
    rejected_spans: int = 0
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)


def _reason(result: HttpResult) -> str:
    if result.status is None:
        return result.error or "no response"
    text = _status_message(result)
    return f"HTTP {result.status}" + (f": {text}" if text else "")


def _status_message(result: HttpResult) -> str:
    """The receiver's explanation: a ``google.rpc.Status`` message (protobuf), or the text."""
    body = result.body[:65536]
    if not body:
        return ""
    if "protobuf" in result.headers.get("content-type", ""):
        try:
            from google.rpc.status_pb2 import Status

            message = str(Status.FromString(body).message)
            if message:
                return message[:_MAX_REASON]
        except Exception:  # a body that is not a Status: fall back to text
            pass
    return body.decode("utf-8", "replace").strip()[:_MAX_REASON]


def _partial_success(result: HttpResult) -> tuple[int, str]:
    """``ExportTraceServiceResponse.partial_success`` of a 2xx (protobuf or JSON body)."""
    if not result.body:
        return 0, ""
    content_type = result.headers.get("content-type", "")
    try:
        if "json" in content_type:
            import json

            partial = json.loads(result.body).get("partialSuccess") or {}
            return int(partial.get("rejectedSpans") or 0), str(partial.get("errorMessage") or "")
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        response = ExportTraceServiceResponse.FromString(result.body)
        ps = response.partial_success
        return int(ps.rejected_spans), str(ps.error_message)
    except Exception:  # an unparseable 2xx body is still a success
        return 0, ""


class Sender:
    """Posts gzip-compressed OTLP protobuf to one URL, retrying within a time budget."""

    def __init__(
        self,
        url: str,
        auth: Authenticator,
        transport: Transport | None = None,
        *,
        timeout_s: float = 10.0,
        retryable: frozenset[int] = RETRYABLE,
        gzip_level: int = 6,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 8.0,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.auth = auth
        self.transport = transport if transport is not None else Urllib3Transport()
        self.timeout_s = timeout_s
        self.retryable = retryable
        self.gzip_level = gzip_level
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.sleep = sleep
        self.clock = clock
        self.wall_clock = wall_clock
        self._not_before = 0.0  # monotonic time before which the receiver asked us not to send

    def _wait(self, seconds: float, deadline: float) -> bool:
        """Sleep ``seconds`` unless that passes ``deadline``; False if it would."""
        if seconds <= 0:
            return True
        if self.clock() + seconds > deadline:
            return False
        self.sleep(seconds)
        return True

    def send(self, payload: bytes, deadline: float) -> SendResult:
        """Send one request (uncompressed protobuf) before the monotonic ``deadline``."""
        body = gzip.compress(payload, self.gzip_level)
        base_headers = {"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip"}
        result = SendResult(Outcome.TRANSIENT)
        step = self.backoff_initial_s
        waited = 0.0
        pending_wait = max(0.0, self._not_before - self.clock())
        while True:
            if pending_wait > 0:
                if not self._wait(pending_wait, deadline):
                    # Not enough time left to honour the wait: sleep out the budget (no point in
                    # returning early only to be invoked again at once), then give up for now.
                    self.sleep(max(0.0, deadline - self.clock()))
                    result.reason = result.reason or "time budget exhausted while waiting"
                    return result
                waited = pending_wait
            remaining = deadline - self.clock()
            if remaining < 0.2:
                result.reason = result.reason or "time budget exhausted"
                return result
            headers = self.auth.headers(self.url, body, base_headers)
            response = self.transport.post(self.url, body, headers, min(self.timeout_s, remaining))
            result.attempts.append(Attempt(response.status, response.error, waited))
            result.status = response.status
            status = response.status
            if status is not None and 200 <= status < 300:
                result.outcome = Outcome.OK
                result.rejected_spans, result.reason = _partial_success(response)
                return result
            result.reason = _reason(response)
            if status == 413:
                result.outcome = Outcome.TOO_LARGE
                return result
            if status == 400:
                result.outcome = Outcome.REJECTED
                return result
            if status is not None and status not in self.retryable:
                result.outcome = Outcome.PERMANENT
                return result
            retry_after = parse_retry_after(
                response.headers.get("retry-after"), now=self.wall_clock()
            )
            if retry_after is not None:
                pending_wait = retry_after
                self._not_before = self.clock() + retry_after
            else:
                pending_wait = random.uniform(step / 2, step)
                step = min(step * 2, self.backoff_max_s)
            logger.info(
                "forward: %s, retrying in %.2f s", result.reason, pending_wait,
                extra={"status": status, "retry_in_s": round(pending_wait, 3)},
            )
