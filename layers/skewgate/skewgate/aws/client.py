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
    return _session_and_client(service, endpoint_url, region, config)[1]


def _session_and_client(
    service: str, endpoint_url: str | None, region: str | None, config: Any
) -> tuple[Any, Any]:
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
    credentials = session.get_credentials()
    if local and credentials is None:
        kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")
    elif not local and credentials is None:
        raise MissingAwsConfig(
            f"no AWS credentials for {service} at {endpoint or 'the AWS endpoint'}: set "
            "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or use a loopback "
            "AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local)"
        )
    return session, session.client(service, config=config, **kwargs)


#: The functions' DynamoDB timeouts (seconds): one call takes at most their sum, which is the
#: store's ``CALL_BUDGET_S``.
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 2.5


def dynamodb_client() -> Any:
    """The functions' client: short timeouts and no retries of its own.

    A call takes at most ``connect_timeout + read_timeout`` (the store's ``CALL_BUDGET_S``),
    and the store starts none it could not finish before the request's deadline: a stalled
    table is a 503 with ``Retry-After`` that the exporter retries, well inside the function's
    timeout, never API Gateway's own timeout. Throttling is answered 429 the same way.

    The commit's operations go through :class:`skewgate.aws.dynamo.LeanDynamoDB` (botocore's
    endpoint, credentials and signer; DynamoDB's JSON protocol without botocore's per-call
    machinery, a third of its CPU); anything else through the boto3 client itself.
    """
    from botocore.config import Config

    from skewgate.aws.dynamo import LeanDynamoDB

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": 1},
        tcp_keepalive=True,
        parameter_validation=False,
    )
    session, client = _session_and_client("dynamodb", None, None, config)
    credentials = session.get_credentials()
    if credentials is None:  # a loopback endpoint: the dummies aws_client gave the client
        from botocore.credentials import Credentials

        credentials = Credentials("local", "local")
    return LeanDynamoDB(
        client, credentials, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S
    )
