"""Positions between the checker and the editor. The checker counts 1-based lines and columns in
code points; the Language Server Protocol counts 0-based lines and UTF-16 code units (an emoji in
a message text is two units, an accented letter one)."""

from __future__ import annotations

from lsprotocol import types as lsp

from regua.dsl.diagnostics import Span


class Positions:
    def __init__(self, text: str):
        self.lines = text.split("\n")

    def _line(self, index: int) -> str:
        return self.lines[index] if 0 <= index < len(self.lines) else ""

    def to_lsp(self, line: int, column: int) -> lsp.Position:
        """1-based code-point position -> LSP position."""
        index = max(line - 1, 0)
        prefix = self._line(index)[: max(column - 1, 0)]
        # surrogatepass: a lone surrogate (a broken paste) still counts as one unit, never an error.
        return lsp.Position(index, len(prefix.encode("utf-16-le", "surrogatepass")) // 2)

    def from_lsp(self, position: lsp.Position) -> tuple[int, int]:
        """LSP position -> 1-based code-point (line, column)."""
        text, units, column = self._line(position.line), 0, 0
        while column < len(text) and units < position.character:
            units += 2 if ord(text[column]) > 0xFFFF else 1
            column += 1
        return position.line + 1, column + 1

    def range(self, span: Span) -> lsp.Range:
        """The range of a span; a span with no end covers the word at its start (or one character)."""
        if span.end_line and (span.end_line, span.end_column) > (span.line, span.column):
            return lsp.Range(self.to_lsp(span.line, span.column), self.to_lsp(span.end_line, span.end_column))
        text = self._line(span.line - 1)
        end = span.column - 1
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        end = max(end, min(span.column, len(text)))
        return lsp.Range(self.to_lsp(span.line, span.column), self.to_lsp(span.line, end + 1))

    def line_range(self, first: int, last: int) -> lsp.Range:
        """Lines first..last (1-based, inclusive), whole."""
        return lsp.Range(self.to_lsp(first, 1), self.to_lsp(last, len(self._line(last - 1)) + 1))
