"""Friendly syntax errors, kept as data (the Lark `match_examples` way).

Each message maps to broken snippets that fail in the same parser state; when a
real file fails in that state, the user sees the message instead of a list of tokens.
Add an entry whenever a confusing error is reported: the snippet is the test.
"""

_H = "policy p kind credit\n"

SYNTAX_EXAMPLES: dict[str, list[str]] = {
    "a policy starts with a header line: policy NAME kind credit|collection|monitoring": [
        "rule r\n",
        "input\n  x: int\n",
        "let x = 1\n",
    ],
    "the header names the kind: policy NAME kind credit": [
        "policy p\n",
        "policy p credit\n",
    ],
    "a rule starts with a `when` line, then its action": [
        _H + "rule r\n  deny \"A\" \"b\"\n",
        _H + "rule r\n  approve\n",
    ],
    "a rule needs an action line after `when`, e.g. deny \"CODE\" \"message\"": [
        _H + "rule r\n  when x > 1\n",
        _H + "let y = 2\nrule r\n  when x > 1\nlet z = 3\n",
    ],
    "a rule's body must be indented under `rule NAME`": [
        _H + "rule r\nwhen x > 1\n",
    ],
    "a field is written `name: type` (optionally `= default`)": [
        _H + "input\n  x\n",
        _H + "input\n  x int\n",
    ],
    "use `==` to compare; `=` only names a value": [
        _H + "rule r\n  when x = 1\n  deny \"A\" \"b\"\n",
        _H + "let y = x = 1\n",
    ],
    "a table row is written `cells -> result` (or `else -> result`)": [
        _H + "table t (first) by x\n  1 2\n",
        _H + "table t (first) by x\n  >= 1 : 2\n",
    ],
    "a table names its hit policy in parentheses, e.g. table limite (first) by score": [
        _H + "table t by x\n  1 -> 2\n",
        _H + "table t first by x\n  1 -> 2\n",
    ],
    "a block (input, rule, table, test) needs an indented body on the next lines": [
        _H + "input\nlet x = 1\n",
        _H + "input x: int\n",
    ],
    "an expression is missing after this operator": [
        _H + "let y = 1 +\n",
        _H + "let y = 1 *\n",
        _H + "let y = 1 >\n",
    ],
}

# Characters the language does not use, and what the author most likely meant.
CHARACTER_HINTS: dict[str, str] = {
    "$": "money is written with the currency after the number, e.g. 5_000 BRL",
    "'": "texts are written in double quotes, e.g. \"RESTRICAO\"",
    "=": "use `==` to compare",
    "&": "write `and` instead of `&`/`&&`",
    "|": "write `or` instead of `|`/`||`",
    "!": "write `not` instead of `!`",
    ";": "statements end at the end of the line; no `;` needed",
}

# How expected tokens are named in messages, in words an analyst understands.
TERMINAL_WORDS: dict[str, str] = {
    "NAME": "a name",
    "STRING": "a text in double quotes",
    "INT": "a whole number",
    "DECIMAL": "a number",
    "DATE": "a date (YYYY-MM-DD)",
    "COMPARATOR": "a comparison (==, !=, <, <=, >, >=)",
    "_NL": "end of line",
    "_INDENT": "an indented block",
    "_DEDENT": "end of the block",
    "$END": "end of file",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "DOT": "'.'",
    "EQUAL": "'='",
    "MINUS": "'-'",
    "PLUS": "'+'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "PERCENT": "'%'",
    "VBAR": "'|'",
}
