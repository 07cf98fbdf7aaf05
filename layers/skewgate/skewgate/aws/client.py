"""One boto3 client per container, with the timeouts and credentials rules of the gateway.

``AWS_ENDPOINT_URL_DYNAMODB`` (read by botocore itself) selects another DynamoDB, such as
DynamoDB Local. One rule for every tool and function: a *loopback* endpoint without
credentials gets dummy ones (DynamoDB Local accepts any); anything else uses the SDK's own
credential chain, and missing credentials or region fail with one line naming what is missing.

Example:
    >>> is_loopback("http://127.0.0.1:8000"), is_loopback("https://dynamodb.eu-west-1.amazonaws.com")
    (True, False)
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOCAL_REGION",
    "MissingAwsConfig",
    "aws_client",
    "dynamodb_client",
    "is_loopback",
    "is_loopback_host",
]

#: Region used for loopback endpoints when none is configured (DynamoDB Local ignores it).
LOCAL_REGION = "us-east-1"
#: botocore's service-specific endpoint variable is ``AWS_ENDPOINT_URL_<service id>``; the
#: service id is not always the client name.
_ENDPOINT_ENV = {"dynamodbstreams": "AWS_ENDPOINT_URL_DYNAMODB_STREAMS"}


class MissingAwsConfig(RuntimeError):
    """No region or no credentials for a non-loopback endpoint: one line, naming what to set."""


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``127.x.y.z``, ``::1`` (bracketed or not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback(url: str | None) -> bool:
    """Whether an endpoint URL points at this machine."""
    if not url:
        return False
    return is_loopback_host(urlsplit(url).hostname or "")


def aws_client(
    service: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    config: Any = None,
) -> Any:
    """A boto3 client for ``service`` under the loopback rule above."""
    import boto3

    env_name = _ENDPOINT_ENV.get(service, f"AWS_ENDPOINT_URL_{service.upper()}")
    endpoint = endpoint_url or os.environ.get(env_name) or os.environ.get("AWS_ENDPOINT_URL")
    # botocore reads AWS_DEFAULT_REGION and profiles, not AWS_REGION (which Lambda also sets).
    session = boto3.session.Session(region_name=region or os.environ.get("AWS_REGION") or None)
    kwargs: dict[str, Any] = {}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    local = is_loopback(endpoint)
    if session.region_name is None:
        if not local:
            raise MissingAwsConfig(
                f"no AWS region for {service} at {endpoint or 'the AWS endpoint'}: set "
                "AWS_REGION (or AWS_DEFAULT_REGION, a profile's region, --region)"
            )
        kwargs["region_name"] = LOCAL_REGION
    if local and session.get_credentials() is None:
        kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")
    elif not local and session.get_credentials() is None:
        raise MissingAwsConfig(
            f"no AWS credentials for {service} at {endpoint or 'the AWS endpoint'}: set "
            "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or use a loopback "
            "AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local)"
        )
    return session.client(service, config=config, **kwargs)


def dynamodb_client() -> Any:
    """The ingest and read functions' client. Timeouts are short: API Gateway gives up after
    30 s, and a slow table must become a 503 the exporter retries, not a hung request."""
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "max_attempts": 3},
        tcp_keepalive=True,
    )
    return aws_client("dynamodb", config=config)
