"""The examples in the core modules' docstrings run and say what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "skewgate.clock",
    "skewgate.otlp",
    "skewgate.otlp_encode",
    "skewgate.correct",
    "skewgate.config",
    "skewgate.http",
    "skewgate.forward_wire",
    "skewgate.forward",
    "skewgate.store",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
