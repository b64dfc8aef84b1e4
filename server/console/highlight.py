"""Policy source in the console, highlighted on the server by the policy lexer: dsl/highlight.py's
ReguaLexer, built from the same table of patterns as the TextMate grammar of the editors, and used
by the terminal (`regua check`) and documentation sites, so a policy is coloured the same way
everywhere and the console needs no JavaScript highlighter. Each line becomes escaped HTML with a
span per token, classed with Pygments' short token names (`kd` a declaration word, `s2` a string,
`c1` a comment, `bp` an action...), which console.css colours."""

from __future__ import annotations

from markupsafe import Markup, escape
from pygments.token import STANDARD_TYPES, Name, Punctuation, Text, Whitespace

from regua.dsl.highlight import ReguaLexer

_LEXER = ReguaLexer()
#: Left without a span: names, spaces, punctuation and stray characters are most of a policy and stay plain.
PLAIN = frozenset((Text, Whitespace, Name, Punctuation))


def css_class(token) -> str:
    """Pygments' short name of a token type (its nearest standard ancestor's)."""
    while token not in STANDARD_TYPES:
        token = token.parent
    return STANDARD_TYPES[token]


def highlight(source: str) -> list[Markup]:
    """One Markup per line (line numbers are the list index + 1). The text is lexed as it is (no
    newline normalised or added), so the lines are exactly source.split("\\n")."""
    lines: list[list[Markup]] = [[]]
    for _index, token, value in _LEXER.get_tokens_unprocessed(source):
        for number, part in enumerate(value.split("\n")):
            if number:
                lines.append([])
            if part:
                lines[-1].append(escape(part) if token in PLAIN
                                 else Markup('<span class="{}">{}</span>').format(css_class(token), part))
    return [Markup("").join(line) for line in lines]


def highlight_line(line: str) -> Markup:
    return highlight(line)[0]
