"""The functions' AWS clients, with the timeouts and credentials rules of the gateway.

``AWS_ENDPOINT_URL_DYNAMODB`` (as botocore reads it) selects another DynamoDB, such as
DynamoDB Local. One rule for every tool and function: a *loopback* endpoint without
credentials gets dummy ones (DynamoDB Local accepts any); anything else uses the SDK's own
credential chain, and missing credentials or region fail with one line naming what is missing.
DynamoDB goes through :class:`skewgate.aws.dynamo.LeanDynamoDB`; other services through boto3.

Example:
    >>> is_loopback("http://127.0.0.1:8000"), is_loopback("https://dynamodb.eu-west-1.amazonaws.com")
    (True, False)
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any
from urllib.parse import urlsplit

from skewgate.aws.dynamo import Credentials, LeanDynamoDB, default_endpoint

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

    endpoint = endpoint_url or _configured_endpoint(service)
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


def dynamodb_client(*, endpoint_url: str | None = None, region: str | None = None) -> LeanDynamoDB:
    """The functions' client: short timeouts, no retries of its own, no boto3 on the hot path.

    A call takes at most ``connect_timeout + read_timeout`` (the store's ``CALL_BUDGET_S``),
    and the store starts none it could not finish before the request's deadline: a stalled
    table is a 503 with ``Retry-After`` that the exporter retries, well inside the function's
    timeout, never API Gateway's own timeout. Throttling is answered 429 the same way.

    The store's operations go through :class:`skewgate.aws.dynamo.LeanDynamoDB`. Where the
    environment names credentials and region, as Lambda's does, nothing of boto3 is imported
    until a tool asks for another operation (a cold start's ~210 ms); otherwise (profiles,
    SSO, instance roles, FIPS or dual-stack endpoints) boto3 resolves them as usual.

    Example:
        >>> client = dynamodb_client(endpoint_url="http://127.0.0.1:8000")  # doctest: +SKIP
        >>> client.endpoint_url, client.region  # doctest: +SKIP
        ('http://127.0.0.1:8000', 'us-east-1')
    """
    env = os.environ
    endpoint = endpoint_url or _configured_endpoint("dynamodb")
    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    credentials = _env_credentials()
    kwargs: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": READ_TIMEOUT_S,
    }
    plain_endpoint = endpoint is not None or not any(
        env.get(flag, "").lower() == "true"
        for flag in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT")
    )
    if (
        credentials is not None
        and region
        and plain_endpoint
        and (endpoint is not None or "AWS_PROFILE" not in env)
        and not region.startswith(("us-iso", "eu-iso"))
    ):
        url = endpoint or default_endpoint(region)
        keys = credentials

        def boto3_factory() -> Any:
            import boto3

            return boto3.client(
                "dynamodb", endpoint_url=url, region_name=region, config=_boto3_config(),
                aws_access_key_id=keys.access_key, aws_secret_access_key=keys.secret_key,
                aws_session_token=keys.token,
            )

        return LeanDynamoDB(url, region, lambda: credentials, boto3_factory=boto3_factory,
                            **kwargs)

    session, client = _session_and_client("dynamodb", endpoint_url, region, _boto3_config())
    resolved = session.get_credentials()
    if resolved is None:  # a loopback endpoint: the dummies _session_and_client gave the client
        dummies = Credentials("local", "local")
        return LeanDynamoDB(client.meta.endpoint_url, client.meta.region_name, lambda: dummies,
                            boto3_client=client, **kwargs)

    def frozen() -> Credentials:
        return Credentials(*resolved.get_frozen_credentials())

    return LeanDynamoDB(client.meta.endpoint_url, client.meta.region_name, frozen,
                        boto3_client=client, **kwargs)


def _configured_endpoint(service: str) -> str | None:
    """The endpoint the environment names for ``service``, as botocore reads it."""
    env = os.environ
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    name = _ENDPOINT_ENV.get(service, f"AWS_ENDPOINT_URL_{service.upper()}")
    return env.get(name) or env.get("AWS_ENDPOINT_URL") or None


def _env_credentials() -> Credentials | None:
    """botocore's first credential provider: ``AWS_ACCESS_KEY_ID`` and friends."""
    env = os.environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
    return Credentials(key, secret, token)


def _boto3_config() -> Any:
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": 1},
        tcp_keepalive=True,
        parameter_validation=False,
    )
