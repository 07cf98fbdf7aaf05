"""CORS for the public routes: the origin allow-list, preflights and response headers. Pure.

The ingest function answers preflights itself (API Gateway has no ``CorsConfiguration``), so
the local runner and the deployed API behave the same.

Allowed origins (``ALLOWED_ORIGINS``) are exact ``scheme://host[:port]`` origins, ``null``,
``*`` (any), or wildcard-subdomain patterns like the OpenTelemetry Collector's confighttp:
``https://*.example.com`` matches one or more subdomain labels of ``example.com`` over https
on the default port, never ``example.com`` itself, never ``example.com.evil.com``, never
another scheme or port. Extra allowed request headers (``CORS_ALLOW_HEADERS``, e.g. an
exporter's ``Authorization``) are merged with the built-in list.

Example:
    >>> cors = Cors(frozenset({"https://app.example.com"}))
    >>> cors.problem("https://evil.example"), cors.problem(None)
    ("origin 'https://evil.example' is not allowed", None)
    >>> cors = parse_cors("https://*.example.com", "Authorization")
    >>> cors.problem("https://a.b.example.com"), cors.problem("https://example.com.evil.com")
    (None, "origin 'https://example.com.evil.com' is not allowed")
    >>> cors.allow_headers.endswith("X-Ingest-Key, Authorization")
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CORS_ALLOW_HEADERS",
    "Cors",
    "CorsConfigError",
    "OriginPattern",
    "parse_allow_headers",
    "parse_cors",
    "parse_origins",
]

#: The request headers every preflight allows (what the companion and the exporters send).
CORS_ALLOW_HEADERS: Final = (
    "Content-Type, Content-Encoding, X-Sent-At, X-Clock-Sync, X-Session-Id, X-Ingest-Key"
)

# An origin as browsers serialize it: scheme://host[:port], no path, no trailing slash.
_ORIGIN = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[0-9a-f:.]+\]|[^/:@?#\[\]\s*]+)"
    r"(?::(?P<port>[0-9]{1,5}))?",
    re.IGNORECASE,
)
_WILDCARD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://\*\.(?P<suffix>[a-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?",
    re.IGNORECASE,
)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.IGNORECASE)
# RFC 9110 token: a header field name.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class CorsConfigError(ValueError):
    """A malformed ``ALLOWED_ORIGINS`` or ``CORS_ALLOW_HEADERS`` entry (settings name it)."""


@dataclass(frozen=True, slots=True)
class OriginPattern:
    """``scheme://*.suffix[:port]``: one or more labels in front of ``suffix``."""

    text: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> OriginPattern:
        match = _WILDCARD.fullmatch(text)
        if match is None:
            raise CorsConfigError(
                f"{text!r}: a wildcard origin is scheme://*.domain[:port], "
                "e.g. https://*.example.com"
            )
        suffix = match["suffix"].lower()
        if not _DOMAIN.fullmatch(suffix) or ("." not in suffix and suffix != "localhost"):
            raise CorsConfigError(
                f"{text!r}: the part after '*.' must be a domain of two or more labels "
                "(https://*.example.com, not https://*.com)"
            )
        port = f":{match['port']}" if match["port"] else ""
        regex = re.compile(
            rf"{re.escape(match['scheme'].lower())}://(?:{_LABEL}\.)+"
            rf"{re.escape(suffix)}{re.escape(port)}",
            re.IGNORECASE,
        )
        return cls(text, regex)

    def matches(self, origin: str) -> bool:
        return self.regex.fullmatch(origin) is not None


@dataclass(frozen=True, slots=True)
class Cors:
    """``origins`` ``None`` allows any origin; ``patterns`` are wildcard-subdomain origins."""

    origins: frozenset[str] | None
    patterns: tuple[OriginPattern, ...] = ()
    extra_headers: tuple[str, ...] = ()

    def allowed(self, origin: str) -> bool:
        if self.origins is None:
            return True
        origin = origin.rstrip("/")
        return origin in self.origins or any(p.matches(origin) for p in self.patterns)

    def problem(self, origin: str | None) -> str | None:
        """Why a request from ``origin`` is refused (403), or ``None``."""
        if origin is None or self.allowed(origin):
            return None
        return f"origin {origin!r} is not allowed"

    @property
    def allow_headers(self) -> str:
        """The preflight's ``Access-Control-Allow-Headers``: built-in, then the extra ones."""
        return ", ".join((CORS_ALLOW_HEADERS, *self.extra_headers))

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
            "access-control-allow-headers": self.allow_headers,
            "access-control-max-age": "86400",
        }
        return {"statusCode": 204, "headers": headers, "body": "", "isBase64Encoded": False}


def _items(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_origins(text: str | None) -> tuple[frozenset[str] | None, tuple[OriginPattern, ...]]:
    """``ALLOWED_ORIGINS``: exact origins and wildcard patterns; ``(None, ())`` means any."""
    entries = _items(text)
    if not entries or "*" in entries:
        return None, ()
    exact: set[str] = set()
    patterns: list[OriginPattern] = []
    for entry in entries:
        entry = entry.rstrip("/")
        if "*" in entry:
            patterns.append(OriginPattern.parse(entry))
            continue
        if entry == "null":
            exact.add(entry)
            continue
        match = _ORIGIN.fullmatch(entry)
        if match is None:
            raise CorsConfigError(
                f"{entry!r} is not an origin: scheme://host[:port] with no path, "
                "e.g. https://app.example.com"
            )
        port = f":{match['port']}" if match["port"] else ""
        exact.add(f"{match['scheme'].lower()}://{match['host'].lower()}{port}")
    return frozenset(exact), tuple(patterns)


def parse_allow_headers(text: str | None) -> tuple[str, ...]:
    """``CORS_ALLOW_HEADERS``: header names not already allowed, in the given order."""
    seen = {name.strip().lower() for name in CORS_ALLOW_HEADERS.split(",")}
    extra: list[str] = []
    for name in _items(text):
        if not _TOKEN.fullmatch(name):
            raise CorsConfigError(f"{name!r} is not a header name")
        if name.lower() not in seen:
            seen.add(name.lower())
            extra.append(name)
    return tuple(extra)


def parse_cors(allowed_origins: str | None, allow_headers: str | None = None) -> Cors:
    """The :class:`Cors` of ``ALLOWED_ORIGINS`` and ``CORS_ALLOW_HEADERS``."""
    origins, patterns = parse_origins(allowed_origins)
    return Cors(origins, patterns, parse_allow_headers(allow_headers))
