"""The editor files (editors/vscode) agree with the language: the file extension, the grammar they
point to, comments and brackets, and the lines after which an editor indents are the lines that
open a block in the grammar and in the bundled policies. And `regua lsp` starts the way editors start it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regua.dsl.highlight import SCOPE, ReguaLexer
from regua.dsl.parser import GRAMMAR_PATH, _lark

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
PACKAGE = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
CONFIGURATION = json.loads((VSCODE / "language-configuration.json").read_text(encoding="utf-8"))
REGUA = Path(sys.executable).with_name("regua")


def test_the_extension_declares_the_language_and_its_grammar():
    [language] = PACKAGE["contributes"]["languages"]
    [grammar] = PACKAGE["contributes"]["grammars"]
    assert language["id"] == grammar["language"] == "regua"
    assert language["extensions"] == [name.lstrip("*") for name in ReguaLexer.filenames]
    assert grammar["scopeName"] == SCOPE
    assert json.loads((VSCODE / grammar["path"]).read_text(encoding="utf-8"))["scopeName"] == SCOPE
    assert (VSCODE / language["configuration"]).is_file() and (VSCODE / PACKAGE["main"]).is_file()
    assert PACKAGE["contributes"]["configuration"]["properties"]["regua.server.args"]["default"] == ["lsp"]


def test_comments_and_brackets_are_the_grammars():
    terminals = {t.name: t.pattern.value for t in _lark().terminals}
    comment = re.search(r"^COMMENT: /(.)", GRAMMAR_PATH.read_text(encoding="utf-8"), re.MULTILINE).group(1)
    assert comment == CONFIGURATION["comments"]["lineComment"]
    pairs = {(terminals[o].replace("\\", ""), terminals[c].replace("\\", ""))
             for o, c in (("LPAR", "RPAR"), ("LSQB", "RSQB"), ("LBRACE", "RBRACE"))}
    assert {tuple(pair) for pair in CONFIGURATION["brackets"]} == pairs


def test_the_editor_indents_after_the_lines_that_open_a_block():
    increase = re.compile(CONFIGURATION["indentationRules"]["increaseIndentPattern"])
    checked = 0
    for path in sorted((ROOT / "policies").glob("*.regua")):
        lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()
                 and not line.lstrip().startswith("#")]
        for line, following in zip(lines, lines[1:]):
            opens = len(following) - len(following.lstrip()) > len(line) - len(line.lstrip())
            assert bool(increase.match(line)) == opens, f"{path.name}: {line!r}"
            checked += opens
    assert checked > 50


# What stands for each part of a block's first line in a sample of it (a new part fails below, saying so).
SAMPLES = {"NAME": "nome", "STRING": '"texto"', "INT": "5", "step_day": "D+5", "expr": "valor"}


def _keyword(symbol) -> str | None:
    """The word a grammar symbol is, when it is a keyword (an anonymous terminal like "rule")."""
    terminal = next((t for t in _lark().terminals if t.name == symbol.name), None) if symbol.is_term else None
    value = getattr(terminal.pattern, "value", "") if terminal is not None and terminal.pattern.type == "str" else ""
    return value if value.isidentifier() else None


def block_openers() -> dict[str, set[str]]:
    """Every line that opens an indented block, from dsl/grammar.lark (the rules where `_NL _INDENT`
    follows): its first keyword -> sample lines of it."""
    openers: dict[str, set[str]] = {}
    for rule in _lark().rules:
        symbols = list(rule.expansion)
        names = [symbol.name for symbol in symbols]
        if "_INDENT" not in names:
            continue
        head = [symbol for symbol in symbols[: names.index("_NL")] if not symbol.name.startswith("__")]
        words = []
        for symbol in head:
            word = _keyword(symbol)
            if word is None and symbol.is_term:
                word = next(t.pattern.value for t in _lark().terminals if t.name == symbol.name) \
                    if symbol.name in ("LPAR", "RPAR") else SAMPLES.get(symbol.name)
            elif word is None:
                word = SAMPLES.get(symbol.name)
            assert word is not None, f"tests/test_editors.py: give SAMPLES a sample of {symbol.name} ({rule.origin.name})"
            words.append(word)
        openers.setdefault(_keyword(head[0]), set()).add(" ".join(words))
    return openers


def test_the_editor_indents_after_every_block_the_grammar_opens():
    """A new block keyword in dsl/grammar.lark fails here until the editor indents after it (CI once
    failed on `actionable`, found only when a bundled policy used it)."""
    pattern = CONFIGURATION["indentationRules"]["increaseIndentPattern"]
    alternatives = re.match(r"\^\\s\*\((.*?)\)\\s\*\(#", pattern).group(1).split("|")
    listed = {re.match(r"\w+", alternative).group() for alternative in alternatives}
    openers = block_openers()
    assert {"input", "rule", "actionable", "given"} <= set(openers)  # the grammar was read
    assert listed == set(openers), (
        "editors/vscode/language-configuration.json: increaseIndentPattern must list the keywords that open a "
        f"block in dsl/grammar.lark; add {sorted(set(openers) - listed)}, remove {sorted(listed - set(openers))}")
    increase = re.compile(pattern)
    for lines in openers.values():
        for line in lines:
            for indent in ("", "  "):
                assert increase.match(indent + line + "  # nota"), \
                    f"editors/vscode/language-configuration.json: increaseIndentPattern does not match {line!r}"


def test_the_language_server_cuts_items_at_the_grammars_item_keywords():
    from regua.lsp.incremental import ITEM_WORDS

    alternatives = {rule.expansion[0].name for rule in _lark().rules if rule.origin.name == "item"}
    words = {_keyword(rule.expansion[0]) for rule in _lark().rules if rule.origin.name in alternatives}
    assert None not in words and "rule" in words
    assert ITEM_WORDS == words, f"lsp/incremental.py: ITEM_WORDS must be the first words of dsl/grammar.lark's items; " \
                                f"add {sorted(words - ITEM_WORDS)}, remove {sorted(ITEM_WORDS - words)}"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_extension_script_is_valid_javascript():
    subprocess.run(["node", "--check", str(VSCODE / "extension.js")], check=True, timeout=60)


def test_regua_lsp_starts_as_editors_start_it():
    # VS Code's client adds --stdio; the server answers `initialize` and exits on `exit`.
    messages = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": None, "rootUri": None,
                                                                              "capabilities": {}}},
                {"jsonrpc": "2.0", "method": "initialized", "params": {}},
                {"jsonrpc": "2.0", "id": 2, "method": "shutdown", "params": None},
                {"jsonrpc": "2.0", "method": "exit", "params": None}]
    data = b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    for body in (json.dumps(m).encode() for m in messages))
    result = subprocess.run([str(REGUA), "lsp", "--stdio"], input=data, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    answer = json.loads(result.stdout.split(b"\r\n\r\n", 1)[1].split(b"Content-Length")[0])
    capabilities = answer["result"]["capabilities"]
    assert capabilities["hoverProvider"] and capabilities["definitionProvider"] and capabilities["referencesProvider"]
    assert capabilities["documentFormattingProvider"] and capabilities["completionProvider"]["triggerCharacters"] == ["."]
    assert answer["result"]["serverInfo"]["name"] == "regua"
