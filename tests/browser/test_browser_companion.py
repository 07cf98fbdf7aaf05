"""The companion's own tests (Node's test runner) and its size budget, run with the suite."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from support import REPO

COMPANION = REPO / "clients" / "browser"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")


def test_node_unit_tests_pass() -> None:
    run = subprocess.run(
        [str(NODE), "--test"], cwd=COMPANION, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.search(r"^# pass (\d+)$", run.stdout, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", run.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) >= 40, run.stdout
    assert failed and int(failed.group(1)) == 0


def test_minified_gzipped_size_is_within_2_kb() -> None:
    run = subprocess.run(
        [str(NODE), "scripts/size.js"], cwd=COMPANION, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
    size = re.search(r"(\d+) bytes minified\+gzipped", run.stdout)
    assert size is not None, run.stdout
    assert int(size.group(1)) <= 2048
