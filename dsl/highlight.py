"""One highlighting grammar for policies: a Pygments lexer (rich in the terminal, documentation
sites, anything that speaks Pygments) and the TextMate grammar of editors/ (VS Code, Sublime,
GitHub-style highlighters) are both built from the word lists and patterns below.

The lists are spelled out, not read from the Lark grammar at import (building the parser costs
a few hundred milliseconds, too much for colouring one error line); tests/test_highlight.py checks
them against the grammar's keywords and terminals, the built-in environment and the policy kinds,
so they cannot drift, and tokenises every bundled policy and docs example with both grammars.

    python -m regua.dsl.highlight > editors/regua.tmLanguage.json    # regenerate the TextMate grammar
"""

from __future__ import annotations

import json
import re
import sys

from pygments.lexer import RegexLexer, bygroups
from pygments.token import Comment, Keyword, Literal, Name, Number, Operator, Punctuation, String, Text, Whitespace

# ---- words (tests/test_highlight.py keeps them equal to the grammar's keywords) ------------------

#: Words that open an item or a block: the outline of a policy.
DECLARATION_WORDS = ("policy", "kind", "version", "description", "input", "record", "enum", "let", "rule", "step",
                     "table", "default", "on", "error", "output", "actionable", "test")
#: The other keywords (clauses, tests, durations, collection steps).
CLAUSE_WORDS = ("when", "set", "by", "priority", "else", "if", "then", "otherwise", "for", "where", "list", "of",
                "given", "as", "expect", "reasons", "returns", "fails", "at", "due", "before", "after", "steps", "day",
                "days", "business", "D")
OPERATOR_WORDS = ("and", "or", "not", "in")
CONSTANT_WORDS = ("true", "false")
#: `BRL` after a number marks money.
UNIT_WORDS = ("BRL",)

#: Built-in type names (dsl.types.BUILTIN_TYPES), names in the grammar but types to a reader.
TYPE_NAMES = ("int", "decimal", "money", "percent", "bool", "text", "date", "duration", "business_days", "cpf", "cnpj")
#: Built-in functions (engine.builtins), aggregates and the rule functions (dsl.infer).
FUNCTION_NAMES = ("round", "floor", "ceil", "round_to", "floor_to", "ceil_to", "abs", "days_between", "years_between",
                  "business_days_between", "add_business_days", "is_business_day", "sum", "count", "min", "max", "avg",
                  "any", "all", "fired", "available")
#: Names every policy can read without declaring them (dsl.infer.BUILTIN_NAMES).
BUILTIN_NAMES = ("today",)
#: Actions of every policy kind (dsl.kinds.KINDS): the verb of a rule, a step, `default`, `on error`.
ACTION_WORDS = ("approve", "review", "deny", "wait", "remind", "offer_agreement", "notify_negativation", "negativate",
                "protest", "send_to_agency", "send_to_legal", "keep", "raise", "reduce", "block")

# ---- one table of patterns, both grammars built from it --------------------------------------------
#
# Patterns use only the part of regular-expression syntax Python and Oniguruma (TextMate) share.
# Each entry: (pattern, what it is) or (pattern, [what each group is]); "what" is a pair of a Pygments
# token and a TextMate scope. Earlier entries win, as in both engines.

NAME = r"[^\W\d]\w*"
_ACTIONS = "|".join(ACTION_WORDS)

DECLARATION = (Keyword.Declaration, "storage.type.regua")
ACTION = (Name.Builtin.Pseudo, "support.function.action.regua")
SPACE = (Whitespace, None)
TYPE = (Keyword.Type, "support.type.regua")
_TYPES = "|".join(TYPE_NAMES)

RULES: list[tuple[str, object]] = [
    (r"#.*$", (Comment.Single, "comment.line.number-sign.regua")),
    (r'"(?:[^"\\]|\\.)*"', (String.Double, "string.quoted.double.regua")),
    (r"\b\d{4}-\d{2}-\d{2}\b", (Literal.Date, "constant.numeric.date.regua")),
    (r"\b\d[\d_]*\.\d[\d_]*", (Number.Float, "constant.numeric.decimal.regua")),
    (r"\b\d[\d_]*", (Number.Integer, "constant.numeric.integer.regua")),
    # A field after a dot is a field, even when it is spelt like a type (`restricao.date`).
    (r"(\.)([ \t]*)(" + NAME + ")", [(Punctuation, "punctuation.accessor.regua"), SPACE,
                                  (Name.Attribute, "variable.other.member.regua")]),
    # A built-in type where a type is written: `renda: money`, `list of date` (elsewhere `cnpj` is
    # as often an input named after its type).
    (r"(:)([ \t]*)(" + _TYPES + r")\b", [(Punctuation, "punctuation.separator.regua"), SPACE, TYPE]),
    (r"\b(of)([ \t]+)(" + _TYPES + r")\b", [(Keyword, "keyword.control.regua"), SPACE, TYPE]),
    (r"->|\.\.", (Operator, "keyword.operator.regua")),
    (r"==|!=|<=|>=|<|>", (Operator, "keyword.operator.comparison.regua")),
    (r"[-+*/%=|]", (Operator, "keyword.operator.arithmetic.regua")),
    (r"[()\[\]{},:.]", (Punctuation, "punctuation.regua")),
    # The action of a rule or step (first word of a body line), of `default` and of `on error`.
    (r"^([ \t]+)(" + _ACTIONS + r")\b", [SPACE, ACTION]),
    (r"\b(default)([ \t]+)(" + _ACTIONS + r")\b", [DECLARATION, SPACE, ACTION]),
    (r"\b(on)([ \t]+)(error)([ \t]+)(" + _ACTIONS + r")\b", [DECLARATION, SPACE, DECLARATION, SPACE, ACTION]),
    (None, ("DECLARATION_WORDS", *DECLARATION)),
    (None, ("OPERATOR_WORDS", Operator.Word, "keyword.operator.word.regua")),
    (None, ("CONSTANT_WORDS", Keyword.Constant, "constant.language.regua")),
    (None, ("UNIT_WORDS", Keyword.Type, "support.type.unit.regua")),
    (None, ("CLAUSE_WORDS", Keyword, "keyword.control.regua")),
    (r"\b(?:" + "|".join(FUNCTION_NAMES) + r")\b(?=\s*\()", (Name.Builtin, "support.function.builtin.regua")),
    (None, ("BUILTIN_NAMES", Name.Builtin.Pseudo, "variable.language.regua")),
    (NAME + r"(?=\s*\()", (Name.Function, "entity.name.function.regua")),
    (NAME, (Name, "variable.other.regua")),
]


def _word_pattern(names) -> str:
    # Longest first: an engine that takes the first alternative that matches must not read `days`
    # as `day` (the \\b after it fails, but the order makes it plain).
    return r"\b(?:" + "|".join(sorted(names, key=len, reverse=True)) + r")\b"


def rules() -> list[tuple[str, object]]:
    """RULES with the word lists expanded into patterns: [(pattern, (token, scope) | [(token, scope)...])]."""
    expanded = []
    for pattern, what in RULES:
        if pattern is None:
            list_name, token, scope = what  # type: ignore[misc]
            expanded.append((_word_pattern(globals()[list_name]), (token, scope)))
        else:
            expanded.append((pattern, what))
    return expanded


def _pygments_rules():
    found = [(r"\n", Whitespace)]
    for pattern, what in rules():
        if isinstance(what, list):
            found.append((pattern, bygroups(*(token for token, _scope in what))))
        else:
            found.append((pattern, what[0]))
    # White space last: a body line's indentation must reach the action-line rule first.
    found.append((r"[ \t\f\r]+", Whitespace))
    found.append((r".", Text))
    return found


class ReguaLexer(RegexLexer):
    """Pygments lexer for Régua policies (`.regua`)."""

    name = "Régua"
    aliases = ["regua", "regua-fragment", "regua-error", "regua-warning"]
    filenames = ["*.regua"]
    mimetypes = ["text/x-regua"]

    flags = re.MULTILINE | re.UNICODE
    tokens = {"root": _pygments_rules()}


# ---- the TextMate grammar ------------------------------------------------------------------------

SCOPE = "source.regua"


def textmate_grammar() -> dict:
    """The TextMate grammar (editors/regua.tmLanguage.json), from the same table."""
    patterns = []
    for pattern, what in rules():
        if isinstance(what, list):
            captures = {str(i): {"name": scope} for i, (_token, scope) in enumerate(what, start=1) if scope}
            patterns.append({"match": pattern, "captures": captures})
        else:
            patterns.append({"name": what[1], "match": pattern})
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "Régua",
        "scopeName": SCOPE,
        "fileTypes": ["regua"],
        "comment": "Generated by `python -m regua.dsl.highlight` from dsl/highlight.py; do not edit by hand.",
        "patterns": patterns,
    }


def textmate_json() -> str:
    return json.dumps(textmate_grammar(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(textmate_json())
