"""The editor files (editors/vscode) agree with the language: the file extension, the grammar they
point to, comments and brackets, and the lines after which an editor indents are the lines that
open a block in the bundled policies. And `regua lsp` starts the way editors start it."""

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
