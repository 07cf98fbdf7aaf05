"""template.yaml: a guided deploy that finishes on blank answers, and what the stack then runs.

- ``sam deploy --guided`` prompts every parameter; it re-prompts a blank answer forever for a
  ``NoEcho`` parameter (click's hidden prompt has no default) and otherwise takes the
  ``Default`` (``""`` when there is none) — see ``samcli/commands/deploy/guided_context.py``,
  ``prompt_parameters``. So: no ``NoEcho`` parameter, and every default must pass the
  parameter's own constraints. Checked against a model of that rule and, when ``.venv-sam``
  exists (``make sam-validate``), against SAM CLI's own prompt code fed blank lines.
- The functions' environment, evaluated from the template for several sets of answers (the
  defaults among them), is a valid configuration (``skewgate.aws.settings``) meaning what the
  parameters say: ``none`` is unset, secrets come from Secrets Manager.
- The ``Rules`` refuse ``ForwardTarget=otlp`` without an endpoint; the alarms and the access log
  exist.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from typing import Any

import pytest
from support import REPO

from skewgate.aws.settings import ForwardSettings, IngestSettings, ReadSettings
from skewgate_tools.local.dynamodb import load_template

TEMPLATE = load_template(REPO / "template.yaml")
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]
SAM_PYTHON = REPO / ".venv-sam" / "bin" / "python"
NO_VALUE = object()


def blank_answer(name: str, spec: Mapping[str, Any]) -> str | None:
    """What ``sam deploy --guided`` makes of a blank answer; ``None``: it asks again, forever."""
    if spec.get("NoEcho") in (True, "true", "True"):
        return None
    return str(spec.get("Default", ""))


def constraint_problem(spec: Mapping[str, Any], value: str) -> str | None:
    """Why CloudFormation would refuse ``value`` for a parameter, or ``None``."""
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return f"{value!r} is not one of {allowed}"
    if spec["Type"] == "Number":
        try:
            number = float(value)
        except ValueError:
            return f"{value!r} is not a number"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"{value} < MinValue {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"{value} > MaxValue {spec['MaxValue']}"
        return None
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"{value!r} is shorter than MinLength {spec['MinLength']}"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"{value!r} is longer than MaxLength {spec['MaxLength']}"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        return f"{value!r} does not match AllowedPattern {pattern}"
    return None


def test_every_parameter_takes_a_blank_guided_answer() -> None:
    problems = []
    for name, spec in PARAMETERS.items():
        value = blank_answer(name, spec)
        if value is None:
            problems.append(f"{name}: NoEcho, so the guided deploy re-prompts a blank answer")
            continue
        problem = constraint_problem(spec, value)
        if problem:
            problems.append(f"{name}: a blank answer gives {problem}")
    assert not problems, problems


def test_every_parameter_is_described_and_used() -> None:
    text = (REPO / "template.yaml").read_text()
    for name, spec in PARAMETERS.items():
        assert str(spec.get("Description", "")).strip(), f"{name} has no Description"
        uses = len(re.findall(rf"(!Ref {name}\b|\$\{{{name}\}})", text))
        assert uses, f"{name} is never used"


def test_the_rule_model_catches_what_sam_loops_on() -> None:
    assert blank_answer("K", {"Type": "String", "NoEcho": True, "Default": "none"}) is None
    spec = {"Type": "String", "MinLength": 1}
    assert constraint_problem(spec, blank_answer("K", spec) or "") is not None


def test_sam_cli_guided_prompts_finish_on_blank_answers() -> None:
    """SAM CLI's own ``prompt_parameters``, one blank line per parameter (and no more)."""
    if not SAM_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail("no .venv-sam: .ci/run makes it (make sam-validate) before the tests")
        pytest.skip("no .venv-sam (make sam-validate)")
    script = (
        "import json, sys\n"
        "from samcli.commands._utils.template import get_template_parameters\n"
        "from samcli.commands.deploy.guided_context import GuidedContext\n"
        "params = get_template_parameters(template_file=sys.argv[1])\n"
        "context = GuidedContext.__new__(GuidedContext)\n"
        "answers = GuidedContext.prompt_parameters(context, params, {}, '', '')\n"
        "print('\\nANSWERS', json.dumps({k: v['Value'] for k, v in answers.items()}))\n"
    )
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", script, str(REPO / "template.yaml")],
        input="\n" * len(PARAMETERS),
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # no controlling terminal: a hidden prompt reads stdin too
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    assert result.returncode == 0, f"the guided prompts did not finish:\n{result.stderr[-2000:]}"
    answers = json.loads(result.stdout.rsplit("ANSWERS ", 1)[1])
    assert answers == {name: blank_answer(name, spec) for name, spec in PARAMETERS.items()}


# --- a small CloudFormation evaluator: enough for this template's environments and rules ----


class Stack:
    """Parameters (defaults + ``answers``) and the intrinsics this template uses."""

    def __init__(self, answers: Mapping[str, str]) -> None:
        unknown = set(answers) - set(PARAMETERS)
        assert not unknown, unknown
        self.params = {n: str(s.get("Default", "")) for n, s in PARAMETERS.items()} | dict(answers)
        for name, value in self.params.items():
            assert constraint_problem(PARAMETERS[name], value) is None, (name, value)
        self.conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.eval(TEMPLATE["Conditions"][name]))
        return self.conditions[name]

    def eval(self, node: Any) -> Any:
        if isinstance(node, list):
            values = [self.eval(n) for n in node]
            return [v for v in values if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {k: self.eval(v) for k, v in node.items()}
        ((key, arg),) = node.items()
        if key == "Ref":
            if arg == "AWS::NoValue":
                return NO_VALUE
            if arg in self.params:
                return self.params[arg]
            return f"<{arg}>"  # a resource's physical id or ARN
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::If":
            name, then, otherwise = arg
            return self.eval(then if self.condition(name) else otherwise)
        if key == "Fn::Equals":
            a, b = (self.eval(x) for x in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.eval(arg[0])
        if key == "Fn::And":
            return all(self.eval(x) for x in arg)
        if key == "Fn::Or":
            return any(self.eval(x) for x in arg)
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(v) for v in self.eval(items))
        if key == "Fn::Sub":
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self.eval({"Ref": m[1]})), arg)
        if key == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        return {key: self.eval(arg)}

    def resources(self) -> dict[str, dict[str, Any]]:
        return {
            name: r for name, r in TEMPLATE["Resources"].items()
            if "Condition" not in r or self.condition(r["Condition"])
        }

    def environment(self, function: str, secrets: Mapping[str, str]) -> dict[str, str] | None:
        """A function's variables (Globals merged), dynamic references resolved."""
        resource = self.resources().get(function)
        if resource is None:
            return None
        variables = {
            **TEMPLATE["Globals"]["Function"]["Environment"]["Variables"],
            **resource["Properties"].get("Environment", {}).get("Variables", {}),
        }
        env = {}
        for name, node in variables.items():
            value = self.eval(node)
            if value is NO_VALUE:
                continue
            env[name] = re.sub(
                r"\{\{resolve:secretsmanager:([^:}]+):SecretString\}\}",
                lambda m: secrets[m[1]],
                str(value),
            )
        return env

    def rule_failures(self) -> list[str]:
        failures = []
        for rule in TEMPLATE.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.eval(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self.eval(assertion["Assert"]):
                    failures.append(" ".join(assertion["AssertDescription"].split()))
        return failures


SECRETS = {"<ClockSyncSecret>": "generated-hmac-key", "collector-api": "x-api-key=s3cr%3Dt"}


def test_blank_answers_deploy_a_working_configuration() -> None:
    stack = Stack({})
    assert stack.rule_failures() == []
    ingest = stack.environment("IngestFunction", SECRETS)
    assert ingest is not None
    settings = IngestSettings.from_env(ingest)
    assert settings.origins() is None  # "*"
    assert settings.ingest_key_set() is None
    assert settings.max_correction_ms is None
    assert settings.cors().extra_headers == ()
    assert settings.clock_sync_key == "generated-hmac-key"  # signed by default
    read = stack.environment("ReadFunction", SECRETS)
    assert read is not None and ReadSettings.from_env(read).table_name == "<Table>"
    assert "CLOCK_SYNC_KEY" not in read  # a secret only where it is used
    assert stack.environment("ForwardFunction", SECRETS) is None  # ForwardTarget=none


def test_every_answer_reaches_the_function_that_reads_it() -> None:
    stack = Stack(
        {
            "AllowedOrigins": "https://shop.example,https://*.shop.example",
            "CorsAllowHeaders": "Authorization, X-Vendor-Key",
            "IngestKeys": "pk_1,pk_2",
            "SignClockReadings": "false",
            "MaxCorrectionMs": "86400000",
            "ForwardTarget": "otlp",
            "ForwardEndpoint": "https://collector.example:4318/v1/traces",
            "ForwardHeaders": "x-scope=tenant%20a",
            "ForwardHeadersSecret": "collector-api",
            "AlarmEmail": "oncall@example.com",
        }
    )
    assert stack.rule_failures() == []
    ingest = stack.environment("IngestFunction", SECRETS)
    assert ingest is not None
    settings = IngestSettings.from_env(ingest)
    assert settings.cors().problem("https://eu.shop.example") is None
    assert settings.cors().extra_headers == ("Authorization", "X-Vendor-Key")
    assert settings.ingest_key_set() == {"pk_1", "pk_2"}
    assert settings.max_correction_ms == 86_400_000
    assert settings.clock_sync_key is None
    forward = stack.environment("ForwardFunction", SECRETS)
    assert forward is not None
    fs = ForwardSettings.from_env(forward)
    assert fs.endpoint() == "https://collector.example:4318/v1/traces"
    assert fs.headers() == {"x-scope": "tenant a", "x-api-key": "s3cr=t"}
    assert {"AlarmTopic", "ForwardDeadLetteredAlarm"} <= set(stack.resources())


def test_xray_needs_no_endpoint_and_no_headers() -> None:
    stack = Stack({"ForwardTarget": "xray"})
    assert stack.rule_failures() == []
    forward = stack.environment("ForwardFunction", SECRETS)
    assert forward is not None
    fs = ForwardSettings.from_env({**forward, "AWS_REGION": "eu-west-1"})
    assert fs.endpoint() == "https://xray.eu-west-1.amazonaws.com/v1/traces"
    assert fs.headers() == {}


def test_otlp_without_an_endpoint_is_refused_by_the_rules() -> None:
    (failure,) = Stack({"ForwardTarget": "otlp"}).rule_failures()
    assert failure.startswith("ForwardTarget=otlp needs ForwardEndpoint")


def test_alarms_and_access_log() -> None:
    stack = Stack({"ForwardTarget": "otlp", "ForwardEndpoint": "http://collector:4318/v1/traces"})
    resources = stack.resources()
    metrics = {
        (r["Properties"]["Namespace"], r["Properties"]["MetricName"])
        for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert {
        ("AWS/ApiGateway", "5xx"),
        ("AWS/Lambda", "Errors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("Skewgate", "ForwardDeadLettered"),
        ("AWS/Lambda", "IteratorAge"),
    } <= metrics
    dead_lettered = stack.eval(resources["ForwardDeadLetteredAlarm"]["Properties"]["Dimensions"])
    # Powertools Metrics adds service=POWERTOOLS_SERVICE_NAME to the forwarder's `target`.
    assert {d["Name"]: d["Value"] for d in dead_lettered} == {"service": "skewgate",
                                                              "target": "otlp"}
    access = resources["HttpApi"]["Properties"]["AccessLogSettings"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    line = json.loads(access["Format"])  # what a request logs, with values substituted
    assert line["requestId"] == "$context.requestId" and line["status"] == "$context.status"
    assert not any("querystring" in v.lower() for v in line.values())
    retention = resources["ApiAccessLogGroup"]["Properties"]["RetentionInDays"]
    assert retention == {"Ref": "LogRetentionDays"}
    # Each is off with forwarding.
    assert "ForwardDeadLetterQueueAlarm" not in Stack({}).resources()
