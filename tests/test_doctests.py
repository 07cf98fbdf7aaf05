"""The examples in the package's docstrings run and say what they show.

Every module of the ``skewgate`` package is collected; the pure rooms' modules (wire and
clock) and the aws room's pure helpers must carry at least one example.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import skewgate

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(skewgate.__path__, "skewgate.") if not m.ispkg
)
MUST_HAVE_EXAMPLES = {
    m for m in MODULES if m.startswith(("skewgate.wire.", "skewgate.clock."))
} | {
    "skewgate.aws.apigw",
    "skewgate.aws.client",
    "skewgate.aws.codec",
    "skewgate.aws.cors",
    "skewgate.aws.forward.app",
    "skewgate.aws.forward.records",
    "skewgate.aws.forward.send",
    "skewgate.aws.metrics",
    "skewgate.aws.settings",
}


def test_every_listed_module_exists() -> None:
    assert MUST_HAVE_EXAMPLES <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    if name in MUST_HAVE_EXAMPLES:
        assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
