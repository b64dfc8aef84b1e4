"""What the parser tests share: the bundled example policy, a policy header, and helpers that
expect a syntax error and find where a piece of text sits in a source."""

from __future__ import annotations

from pathlib import Path

import pytest

from regua.dsl.diagnostics import PolicyError
from regua.dsl.parser import parse

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "policies" / "credito_b2b.regua"
H = "policy p kind credit\n"


def errors_of(source: str, file: str = "f.regua"):
    with pytest.raises(PolicyError) as info:
        parse(source, file)
    return info.value


def only(source: str, file: str = "f.regua"):
    error = errors_of(source, file)
    assert len(error.diagnostics) == 1, error.render()
    return error.diagnostics[0]


def position_of(source: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of `needle` in `source`."""
    index = -1
    for _ in range(occurrence):
        index = source.index(needle, index + 1)
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return line, column
