"""The rooms hold: pure rooms import no AWS SDK, imports only run downwards, the Lambda layer
ships no tooling, and nothing in the repository points outside it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

PACKAGE = REPO / "layers" / "skewgate" / "skewgate"
ROOMS = ("wire", "clock", "aws")
# Which rooms each room may import (besides itself).
ALLOWED = {"wire": set(), "clock": {"wire"}, "aws": {"wire", "clock"}}

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("boto3", "botocore", "urllib3", "s3transfer"):
            raise ImportError(f"{name} is blocked: the pure rooms must not import it")
        return None
sys.meta_path.insert(0, Block())
"""


def test_pure_rooms_import_without_the_aws_sdk() -> None:
    code = BLOCKER + """
import skewgate.wire, skewgate.clock
from skewgate.wire import JSON, Limits
from skewgate.wire.scan import scan_request
from skewgate.clock import PlanConfig, RequestFacts, plan_batch
body = (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + b"ab" * 16 +
        b'","spanId":"' + b"cd" * 8 + b'","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}')
plan = plan_batch(scan_request(body, JSON, Limits()),
                  RequestFacts(received_at_ms=1.0, sent_at="0.5"), {}, PlanConfig())
assert plan.span_count == 1
mods = [m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "urllib3")]
assert not mods, mods
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("room", ROOMS)
def test_imports_only_run_downwards(room: str) -> None:
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            assert parts[0] != "skewgate_tools", f"{path} imports the tools"
            if parts[0] == "skewgate" and len(parts) > 1 and parts[1] in ROOMS:
                assert parts[1] == room or parts[1] in ALLOWED[room], (
                    f"{path.relative_to(REPO)} imports {name}"
                )
            if room in ("wire", "clock"):
                assert parts[0] not in ("boto3", "botocore", "urllib3"), f"{path} imports {name}"


def test_the_layer_holds_the_package_only() -> None:
    layer = REPO / "layers" / "skewgate"
    assert sorted(p.name for p in layer.iterdir() if not p.name.endswith(".egg-info")) == [
        "requirements.txt",
        "skewgate",
    ]
    assert not any(PACKAGE.rglob("static")), "static assets belong to the tools"


def test_the_built_layer_ships_no_tooling() -> None:
    """After ``sam build`` (``.ci/run`` builds first): no CLI, dashboard, runner or demo."""
    built = REPO / ".aws-sam" / "build" / "SkewgateLayer" / "python"
    if not built.is_dir():
        if os.environ.get("CI"):
            pytest.fail("no .aws-sam/build: .ci/run builds the layer before the tests")
        pytest.skip("no sam build output (make sam-build)")
    assert (built / "skewgate" / "clock" / "plan.py").is_file()
    assert not (built / "skewgate_tools").exists()
    shipped = {p.name for p in (built / "skewgate").rglob("*")}
    for name in ("cli.py", "dashboard.py", "plot.py", "demo.py", "run.py", "demo.js", "local"):
        assert name not in shipped, f"the layer ships {name}"


def test_nothing_points_outside_the_repository() -> None:
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in files:
        if name.startswith("docs/") or name.endswith((".lock", "-lock.json")):
            continue
        path = REPO / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        # Spelled in parts, so that this test is not itself a reference to look for.
        outside = "sha" + "red"
        for needle in (f"../{outside}", f"{outside}/fixtures", "DESIGN" + ".md"):
            if needle in text:
                offenders.append(f"{name}: {needle}")
    assert not offenders, offenders


def test_the_aws_room_exports_resolve_lazily() -> None:
    import skewgate.aws as aws

    assert sorted(aws.__all__) == sorted(aws._HOMES)
    for name in aws.__all__:
        assert getattr(aws, name).__name__ == name
