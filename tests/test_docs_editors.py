"""docs/editors.md says what is true: its policy checks cleanly, hover and definition answer on it
what the guide says they answer, its settings and Neovim configuration name what the extension and
the server really use, and its commands exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from doc_blocks import check_complete_policy, check_shell_commands, read_blocks

from regua.engine.builtins import default_environment
from regua.lsp import features
from regua.lsp.analysis import analyse
from regua.lsp.server import DEBOUNCE

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "editors.md").read_text(encoding="utf-8")
BLOCKS = read_blocks(DOC, "docs/editors.md")
[EXAMPLE] = [b for b in BLOCKS if b.kind == "regua"]
PACKAGE = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text(encoding="utf-8"))


def at(text: str, needle: str, offset: int = 0, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the `occurrence`-th `needle`, plus `offset`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    index += offset
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def test_the_example_policy_checks_cleanly(tmp_path):
    check_complete_policy(EXAMPLE, "credit", tmp_path)


def test_hover_and_definition_answer_what_the_guide_says():
    text = EXAMPLE.text
    analysis = analyse(text, "editor_example.regua", default_environment())
    tamanho = features.hover(analysis, *at(text, "tamanho ==", 1))
    assert "input tamanho: porte" in tamanho and "tamanho: porte  # porte declarado no cadastro" in tamanho
    assert "let score: int" in features.hover(analysis, *at(text, "score <", 1))
    value = features.hover(analysis, *at(text, "relatorio.score.value", len("relatorio.score.") + 1))
    assert "Score.value: int" in value and "the score" in value
    mei = features.definition(analysis, *at(text, '"mei"', 1))
    assert (mei.span.line, mei.span.column) == at(text, "mei |")
    assert f"({DEBOUNCE * 1000:.0f} ms)" in DOC  # the debounce the guide states


def test_the_vscode_settings_are_the_extensions():
    [block] = [b for b in BLOCKS if b.marked("layout") == "vscode-settings"]
    settings = json.loads(block.text)
    properties = PACKAGE["contributes"]["configuration"]["properties"]
    assert set(settings) <= set(properties)
    assert settings["regua.server.args"] == properties["regua.server.args"]["default"]


def test_the_neovim_configuration_starts_the_server_for_regua_files():
    [block] = [b for b in BLOCKS if b.marked("layout") == "neovim"]
    assert 'cmd = { "regua", "lsp" }' in block.text and 'filetypes = { "regua" }' in block.text
    [extension] = re.findall(r"extension = \{ (\w+) = \"regua\" \}", block.text)
    assert PACKAGE["contributes"]["languages"][0]["extensions"] == [f".{extension}"]


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "sh" and "regua" in b.text], ids=lambda b: b.id)
def test_commands_exist(block):
    if any(line.startswith("regua ") for line in block.text.splitlines()):
        check_shell_commands(block)
    for module in re.findall(r"python -m ([\w.]+)", block.text):
        assert (ROOT / module.replace("regua.", "").replace(".", "/")).with_suffix(".py").is_file()
    for copied in re.findall(r"^cp (\S+) (\S+)$", block.text, re.MULTILINE):
        assert all((ROOT / path).exists() for path in copied)
