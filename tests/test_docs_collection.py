"""docs/collection.md is kept true by these tests: when the code or the guide drifts, one fails.

- ```regua blocks: a complete policy (starting with `policy`) compiles without warnings, is
  formatted and its `test` blocks pass; any other block is wrapped into a collection policy and
  must compile.
- Every fact (dsl.collection.INPUT), action (ACTIONS), step setting (STEP_SETTINGS), field of
  CollectionSettings and outbox status (store.OPEN_STATUSES + FINAL_STATUSES) is named in backticks.
- `<!-- output of: regua … -->` blocks are what the command prints, run in document order in one
  fresh folder holding copies of examples/ and policies/ and every `<!-- file: NAME -->` block
  (JSON: the doc's keys are a subset of the output; text: exact, except the run's duration in
  `seconds`). ```json blocks are valid JSON.
  The KPIs example is `regua kpis … --json` on that same folder.
- The ```toml block is a valid `[collection]` table (CollectionSettings, no problems()).
- ```sh blocks name real `regua` subcommands and options.
- Relative links resolve: files exist and #anchors name headings of the target document.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import msgspec
import pytest
from doc_blocks import (
    Block,
    anchors,
    broken_links,
    check_complete_policy,
    check_fragment,
    check_shell_commands,
    is_complete_policy,
    read_blocks,
    run_command_outputs,
    settings_table_problems,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "collection.md"
TEXT = DOC.read_text(encoding="utf-8")

BLOCKS = read_blocks(TEXT, "docs/collection.md")


def of_kind(kind: str) -> list:
    return [pytest.param(b, id=b.id) for b in BLOCKS if b.kind == kind]


def backticked(name: str) -> bool:
    return f"`{name}`" in TEXT


# ---- policies ------------------------------------------------------------------------------


def test_the_guide_has_policies_and_outputs():
    kinds = {b.kind for b in BLOCKS}
    assert {"regua", "sh", "toml", "json", "text"} <= kinds
    assert any(is_complete_policy(b.text) and "\ntest " in b.text for b in BLOCKS if b.kind == "regua")


@pytest.mark.parametrize("block", of_kind("regua"))
def test_policy_block(block: Block, tmp_path: Path):
    if is_complete_policy(block.text):
        check_complete_policy(block, "collection", tmp_path)
    else:
        check_fragment(block, "policy fragmento kind collection\n\n" + block.text)


@pytest.mark.parametrize("block", of_kind("json"))
def test_json_block(block: Block):
    json.loads(block.text)
    assert block.marker, f"{block.where}: say what it is: <!-- file: NAME --> or <!-- output of: COMMAND -->"


def test_file_names_are_unique():
    names = [b.marker[1] for b in BLOCKS if b.marker and b.marker[0] == "file"]
    assert len(names) == len(set(names)), names


# ---- names the guide must document ---------------------------------------------------------


def test_every_fact_action_and_step_setting_is_documented():
    from regua.dsl.collection import ACTIONS, INPUT, STEP_SETTINGS

    missing = [f"fact {n}" for n in INPUT if not backticked(n)]
    missing += [f"action {n}" for n in ACTIONS if not backticked(n)]
    missing += [f"step setting {n}" for n in STEP_SETTINGS if not backticked(n)]
    assert not missing, f"not documented in docs/collection.md: {missing}"


def test_the_facts_table_matches_the_input():
    """Each fact's row gives its type as dsl/collection.py does."""
    from regua.dsl.collection import INPUT

    wrong = []
    for name, (typ, _default, _meaning) in INPUT.items():
        row = re.search(rf"^\| `{re.escape(name)}` \| ([^|]+) \|", TEXT, re.M)
        if row is None or row.group(1).strip() != str(typ):
            wrong.append(f"{name}: {typ} (doc: {row.group(1).strip() if row else 'no row'})")
    assert not wrong, f"facts table out of step with dsl/collection.py: {wrong}"


def test_actions_are_listed_in_escalation_order():
    from regua.dsl.collection import ACTIONS

    rows = [m.group(1) for m in re.finditer(r"^\| `(\w+)` \| (?:yes|no) \|", TEXT, re.M)]
    assert rows == sorted(ACTIONS, key=ACTIONS.get), f"actions table: {rows}"


def test_every_collection_setting_is_documented():
    from regua.portfolio.collection.settings import CollectionSettings

    missing = [f for f in CollectionSettings.__struct_fields__
               if not backticked(f"collection.{f}") and not backticked(f)]
    assert not missing, f"[collection] fields not documented: {missing}"


def test_every_outbox_status_is_documented():
    from regua.portfolio.collection.store import FINAL_STATUSES, OPEN_STATUSES

    rows = {m.group(1) for m in re.finditer(r"^\| `(\w+)` \| (?:waiting|final) \|", TEXT, re.M)}
    missing = [s for s in OPEN_STATUSES + FINAL_STATUSES if s not in rows]
    assert not missing, f"outbox statuses missing from the statuses table: {missing}"
    extra = rows - set(OPEN_STATUSES + FINAL_STATUSES)
    assert not extra, f"the statuses table names statuses the store does not have: {extra}"
    for status in OPEN_STATUSES:
        assert re.search(rf"^\| `{status}` \| waiting \|", TEXT, re.M), f"{status} is a waiting status"
    for status in FINAL_STATUSES:
        assert re.search(rf"^\| `{status}` \| final \|", TEXT, re.M), f"{status} is a final status"


def test_every_guard_code_is_documented():
    from regua.portfolio.collection.dispatch import _FINAL, _WAITING

    codes = set(_FINAL) | set(_WAITING) | {"NO_DELIVERED_NOTICE", "DISPUTED", "OUT_OF_WINDOW", "FREQUENCY_CAP"}
    missing = sorted(c for c in codes if not backticked(c))
    assert not missing, f"guard codes not documented: {missing}"


def test_the_default_windows_are_the_documented_ones():
    from regua.portfolio.collection.guards import DEFAULT_WINDOWS, SP_HOURS

    special = sorted(uf for uf, window in DEFAULT_WINDOWS.items() if window != SP_HOURS)
    documented = sorted(re.findall(r"^\| `([A-Z]{2})` \| ", TEXT, re.M))
    assert special == documented, f"UFs with their own window: code {special}, doc {documented}"


# ---- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("block", of_kind("toml"))
def test_toml_block_is_a_valid_collection_table(block: Block):
    from regua.portfolio.collection.settings import CollectionSettings

    data = tomllib.loads(block.text)
    assert set(data) == {"collection"}, f"{block.where}: show the [collection] table only"
    try:
        settings = msgspec.convert(data["collection"], CollectionSettings)
    except msgspec.ValidationError as error:
        pytest.fail(f"{block.where}: not a valid [collection] table: {error}")
    assert settings.problems() == [], f"{block.where}: {settings.problems()}"


def test_the_settings_table_gives_the_defaults():
    from regua.portfolio.collection.settings import CollectionSettings

    wrong = settings_table_problems(TEXT, CollectionSettings)
    assert not wrong, f"settings table: {wrong}"


# ---- commands and their output -------------------------------------------------------------


@pytest.mark.parametrize("block", of_kind("sh"))
def test_shell_commands_exist(block: Block):
    check_shell_commands(block)


def test_command_outputs_in_order(tmp_path: Path):
    """The quick start, for real: every `output of:` command in document order, in one folder."""
    run_command_outputs(BLOCKS, tmp_path, with_stderr=True)


# ---- links ---------------------------------------------------------------------------------


def test_links_resolve():
    broken = broken_links(DOC)
    assert not broken, f"broken links in docs/collection.md: {broken}"


def test_the_kpis_anchor_other_docs_link_to_exists():
    assert "kpis" in anchors(TEXT)
    for other in (ROOT / "docs").glob("*.md"):
        for anchor in re.findall(r"\]\(collection\.md#([^)]+)\)", other.read_text(encoding="utf-8")):
            assert anchor in anchors(TEXT), f"{other.name} links to collection.md#{anchor}, which does not exist"
