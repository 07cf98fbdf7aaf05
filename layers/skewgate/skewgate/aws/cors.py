"""CORS for the public routes: the origin allow-list, preflights and response headers. Pure.

The ingest function answers preflights itself (API Gateway has no ``CorsConfiguration``), so
the local runner and the deployed API behave the same.

Example:
    >>> cors = Cors(frozenset({"https://app.example.com"}))
    >>> cors.problem("https://evil.example"), cors.problem(None)
    ("origin 'https://evil.example' is not allowed", None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = ["CORS_ALLOW_HEADERS", "Cors"]

CORS_ALLOW_HEADERS: Final = (
    "Content-Type, Content-Encoding, X-Sent-At, X-Clock-Sync, X-Session-Id, X-Ingest-Key"
)


@dataclass(frozen=True, slots=True)
class Cors:
    """``origins`` ``None`` allows any origin."""

    origins: frozenset[str] | None

    def problem(self, origin: str | None) -> str | None:
        """Why a request from ``origin`` is refused (403), or ``None``."""
        if origin is None or self.origins is None:
            return None
        if origin.rstrip("/") not in self.origins:
            return f"origin {origin!r} is not allowed"
        return None

    def headers(self, origin: str | None) -> dict[str, str]:
        """What every response to an allowed origin carries."""
        if origin is None:
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": "Retry-After",
            "vary": "Origin",
        }

    def preflight(self, origin: str | None, methods: tuple[str, ...]) -> dict[str, Any]:
        headers = {
            **self.headers(origin),
            "access-control-allow-methods": ", ".join(methods),
            "access-control-allow-headers": CORS_ALLOW_HEADERS,
            "access-control-max-age": "86400",
        }
        return {"statusCode": 204, "headers": headers, "body": "", "isBase64Encoded": False}
