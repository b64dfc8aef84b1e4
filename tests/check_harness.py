"""Helpers of the static-check tests (tests/test_checker*.py): minimal policies (`H` header, `D`
default) and their diagnostics, with 1-based positions to compare against."""

from __future__ import annotations

from regua.dsl.diagnostics import Diagnostic, PolicyError
from regua.engine.compiler import check_source

H = "policy p kind credit\n"
D = "default approve\n"


def position_of(source: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of `needle`."""
    index = -1
    for _ in range(occurrence):
        index = source.index(needle, index + 1)
    return source.count("\n", 0, index) + 1, index - (source.rfind("\n", 0, index) + 1) + 1


# Most snippets here declare inputs and lets only to type an expression: the "never read" warnings
# are left out unless a test asks for them.
UNUSED = {"W601", "W602", "W603"}


def diagnostics(source: str, unused: bool = False) -> list[Diagnostic]:
    """Every diagnostic (errors and warnings) of a policy, in reported order."""
    try:
        checked = check_source(source, "f.regua")
    except PolicyError as error:
        return error.diagnostics
    return [w for w in checked.warnings if unused or w.code not in UNUSED]


def codes(source: str) -> list[str]:
    return [d.code for d in diagnostics(source)]


def single(source: str, code: str) -> Diagnostic:
    found = [d for d in diagnostics(source, unused=code in UNUSED) if d.code == code]
    assert len(found) == 1, f"expected one {code}, got {[(d.code, d.message) for d in diagnostics(source)]}"
    return found[0]


def at(d: Diagnostic) -> tuple[int, int]:
    return d.span.line, d.span.column
