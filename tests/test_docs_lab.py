"""docs/lab.md is kept true: its `output of:` commands print what it shows (run in a fresh folder
with copies of examples/ and policies/), its ```sh blocks name real options, its links resolve."""

from __future__ import annotations

from pathlib import Path

import doc_blocks
import pytest
from doc_blocks import broken_links, check_shell_commands, read_blocks, run_command_outputs

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "lab.md"
BLOCKS = read_blocks(DOC.read_text(encoding="utf-8"), "docs/lab.md")


def test_the_guide_shows_commands_and_outputs():
    assert {"sh", "text"} <= {b.kind for b in BLOCKS}


def test_outputs_are_what_the_commands_print(tmp_path):
    run_command_outputs(BLOCKS, tmp_path, with_stderr=False)


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS if b.kind == "sh"])
def test_shell_commands_name_real_options(block):
    check_shell_commands(block)


def test_links_resolve():
    assert not broken_links(DOC)


def test_the_readme_points_here():
    assert "docs/lab.md" in (ROOT / "README.md").read_text(encoding="utf-8")


assert doc_blocks.REGUA  # the regua executable next to this interpreter
