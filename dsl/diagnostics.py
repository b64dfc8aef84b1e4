"""Diagnostics: every problem found in a policy carries a stable code and a location.

Codes never change meaning once released; tools and tests match on them.
The catalogue below is the single source of truth (docs/language.md lists it too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


# code -> short title. E0xx syntax, E1xx names, E2xx types, E3xx graph, E4xx tables, E5xx tests,
# W6xx lint warnings (dsl/lint.py).
CODES: dict[str, str] = {
    "E000": "unreadable policy file",
    "E001": "unexpected token",
    "E002": "unexpected character",
    "E003": "unexpected end of file",
    "E004": "inconsistent indentation",
    "E005": "invalid literal",
    "E006": "nested too deeply",
    "E007": "policy or literal too large",
    "E101": "undefined name",
    "E102": "duplicate name",
    "E103": "duplicate rule",
    "E104": "unknown type",
    "E105": "unknown connector",
    "E106": "unknown function",
    "E107": "unknown field",
    "E108": "unknown action",
    "E109": "unknown hit policy",
    "E110": "unknown enum value",
    "E111": "unknown output",
    "E112": "unknown policy kind",
    "E113": "missing default",
    "E114": "step or rule in the wrong kind of policy",
    "E115": "input declared in a collection or monitoring policy",
    "E116": "unknown step setting",
    "E117": "monitoring output missing or of the wrong type",
    "E118": "unknown actionable fact",
    "E119": "fact that may never be actionable",
    "E201": "type mismatch",
    "E202": "condition is not a bool",
    "E203": "wrong argument",
    "E204": "default value has the wrong type",
    "E205": "table cell has the wrong type",
    "E206": "missing reason",
    "E207": "actionable fact with bad bounds or type",
    "E301": "cycle",
    "E302": "chain of lets too long",
    "E303": "rules depend on each other in a cycle",
    "E401": "unreachable table row",
    "E402": "overlapping rows in a unique table",
    "E403": "wrong number of cells",
    "W404": "table does not cover every value",
    "W405": "table too large to analyse whole",
    "E501": "invalid test",
    "W601": "input never read",
    "W602": "let never read",
    "W603": "table never read",
    "W604": "reason code used by two rules",
    "W605": "condition can never be true",
    "W606": "condition is always true",
    "W607": "rule covered by an earlier deny",
    "W608": "comparison outside the declared range",
}


@dataclass(frozen=True, order=True)
class Span:
    """A 1-based position range in a policy file."""

    line: int
    column: int
    end_line: int = 0
    end_column: int = 0

    @classmethod
    def of(cls, meta) -> "Span":
        """Build a span from a Lark token or tree `meta`."""
        return cls(
            getattr(meta, "line", 1) or 1,
            getattr(meta, "column", 1) or 1,
            getattr(meta, "end_line", 0) or 0,
            getattr(meta, "end_column", 0) or 0,
        )


NO_SPAN = Span(1, 1)


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    file: str = "<policy>"
    severity: Severity = Severity.ERROR
    hint: str | None = None

    @property
    def sort_key(self):
        return (self.file, self.span.line, self.span.column, self.code, self.message)

    def location(self) -> str:
        return f"{self.file}:{self.span.line}:{self.span.column}"

    def headline(self) -> str:
        text = f"{self.location()}: {self.severity.value} {self.code}: {self.message}"
        if self.hint:
            text += f"; {self.hint}"
        return text

    def render(self, source: str | None) -> str:
        """The headline plus the offending line with a caret under the spot."""
        out = [self.headline()]
        if source is not None:
            lines = source.splitlines()
            if 1 <= self.span.line <= len(lines):
                text = lines[self.span.line - 1].expandtabs(1)
                width = 1
                if self.span.end_line == self.span.line and self.span.end_column > self.span.column:
                    width = self.span.end_column - self.span.column
                out.append(f"  {self.span.line:>4} | {text}")
                out.append("       | " + " " * (self.span.column - 1) + "^" * max(1, width))
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message + (f"; {self.hint}" if self.hint else ""),
            "location": {"file": self.file, "line": self.span.line, "column": self.span.column},
        }


class PolicyError(Exception):
    """Raised when a policy cannot be compiled; carries every diagnostic found, sorted."""

    code = "POLICY_INVALID"

    def __init__(self, diagnostics: list[Diagnostic], source: str | None = None):
        self.diagnostics = sorted(diagnostics, key=lambda d: d.sort_key)
        self.source = source
        first = self.errors[0] if self.errors else self.diagnostics[0]
        super().__init__(first.headline() + (f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    def render(self) -> str:
        return "\n".join(d.render(self.source) for d in self.diagnostics)


@dataclass
class DiagnosticBag:
    """Collects diagnostics across compiler passes so that all of them are reported at once."""

    file: str
    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        assert code in CODES, code
        self.items.append(Diagnostic(code, message, span, self.file, Severity.ERROR, hint))

    def warning(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        assert code in CODES, code
        self.items.append(Diagnostic(code, message, span, self.file, Severity.WARNING, hint))

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: d.sort_key)


def did_you_mean(word: str, candidates) -> str | None:
    """A 'did you mean' hint for a misspelt name or keyword, or None."""
    import difflib

    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
