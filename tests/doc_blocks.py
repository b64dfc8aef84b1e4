"""Reading the fenced blocks of a Markdown doc, for the tests that keep docs true.

A block may be preceded, on the line right above its fence, by a marker comment saying what it is:
`<!-- file: path -->`, `<!-- output of: command -->`, `<!-- layout: name -->`, `<!-- excerpt of: path -->`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"^```(.*)$")
MARKER = re.compile(r"^<!--\s*(file|output of|layout|excerpt of):\s*(.+?)\s*-->$")


@dataclass
class Block:
    doc: str  # e.g. docs/collection.md, for messages
    line: int  # of the opening fence, 1-based
    info: str
    text: str
    marker: tuple[str, str] | None  # ("file", path), ("output of", command), ...

    @property
    def kind(self) -> str:
        return self.info.split()[0] if self.info else ""

    @property
    def argument(self) -> str:
        parts = self.info.split()
        return parts[1] if len(parts) > 1 else ""

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.kind or 'plain'}" + (f"-{self.argument}" if self.argument else "")

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def marked(self, kind: str) -> str | None:
        return self.marker[1] if self.marker and self.marker[0] == kind else None


def read_blocks(text: str, doc: str) -> list[Block]:
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, info, body = i, match.group(1).strip(), []
        i += 1
        while i < len(lines) and lines[i] != "```":
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"{doc}:{start + 1}: fenced block is never closed"
        marker = MARKER.match(lines[start - 1].strip()) if start > 0 else None
        blocks.append(Block(doc, start + 1, info, "\n".join(body) + "\n", marker.groups() if marker else None))
        i += 1
    return blocks


def assert_subset(expected, actual, path="$") -> None:
    """Every key the doc shows has the value the command printed; lists match item by item."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}: missing key {key!r} (got {sorted(actual)})"
            assert_subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for n, (e, a) in enumerate(zip(expected, actual)):
            assert_subset(e, a, f"{path}[{n}]")
    else:
        assert expected == actual, f"{path}: doc says {expected!r}, the command printed {actual!r}"
