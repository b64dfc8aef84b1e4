"""A small server-side highlighter for policy source: each line becomes escaped HTML with spans
for comments, strings, keywords and numbers (classes styled in console.css). Enough to read a
policy in the console; a Pygments lexer can replace it later without touching the templates."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

KEYWORDS = frozenset(
    "policy kind version description input let table rule when deny review approve default output test given "
    "expect as of fixture failure and or not in if then else for where step at remind set by first all "
    "sum count min max true false".split())

_TOKEN = re.compile(r"""(?P<comment>\#.*$)|(?P<string>"(?:[^"\\]|\\.)*"?)|(?P<number>\b\d[\d_]*(?:\.\d+)?%?)"""
                    r"""|(?P<word>\b[A-Za-z_][A-Za-z0-9_]*\b)""")


def highlight_line(line: str) -> Markup:
    out, last = [], 0
    for match in _TOKEN.finditer(line):
        out.append(escape(line[last:match.start()]))
        kind, text = match.lastgroup, match.group()
        if kind == "word":
            out.append(Markup('<span class="kw">{}</span>').format(text) if text in KEYWORDS else escape(text))
        else:
            out.append(Markup('<span class="{}">{}</span>').format(kind[:3], text))
        last = match.end()
    out.append(escape(line[last:]))
    return Markup("").join(out)


def highlight(source: str) -> list[Markup]:
    """One Markup per line (line numbers are the list index + 1)."""
    return [highlight_line(line) for line in source.split("\n")]
