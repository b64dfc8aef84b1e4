"""docs/operating.md: its configuration example is a valid configuration, and its table of limits
names real settings with their real defaults (so an operator who follows it sets what they mean).
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from regua.server.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "operating.md").read_text(encoding="utf-8")


def toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOC, re.S)


@pytest.mark.parametrize("block", toml_blocks())
def test_the_configuration_examples_load(tmp_path, block):
    path = tmp_path / "regua.toml"
    path.write_text(block, encoding="utf-8")
    settings = load_settings(path, environ={})
    assert isinstance(settings, Settings)


def limit_rows() -> list[list[str]]:
    section = DOC.split("## Limits on what comes from outside", 1)[1].split("\n\n", 2)[1]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in section.splitlines()]
    return rows[2:]  # after the header and the separator


def default_of(path: str):
    value = Settings()
    for part in path.split("."):
        value = getattr(value, part)
    return value


def documented_number(text: str) -> float:
    match = re.match(r"([\d,.]+)\s*(MiB)?", text)
    assert match, text
    number = float(match.group(1).replace(",", ""))
    return number * 1024 * 1024 if match.group(2) else number


def test_the_limits_table_names_real_settings_with_their_defaults():
    rows = limit_rows()
    assert len(rows) >= 15
    checked = 0
    for limit, where, default, refused in rows:
        assert limit and where and default and refused, (limit, where)
        setting = re.fullmatch(r"`((?:server|policies|store)\.\w+)`", where)
        if setting is None:
            continue
        actual = default_of(setting.group(1))  # AttributeError: the table names a setting that does not exist
        assert documented_number(default) == pytest.approx(float(actual)), (where, default, actual)
        checked += 1
    assert checked >= 9


@pytest.mark.parametrize("name", ["server.max_body_bytes", "server.max_list_items", "server.evaluation_budget",
                                  "server.connector_budget", "server.header_timeout", "server.body_timeout",
                                  "policies.max_source_chars", "policies.max_literal_chars"])
def test_every_limit_can_be_set_from_the_environment_as_documented(name):
    section, field = name.split(".")
    value = default_of(name)
    changed = value * 2
    settings = load_settings(environ={f"REGUA_{section.upper()}__{field.upper()}": str(changed)})
    assert msgspec.structs.asdict(getattr(settings, section))[field] == changed
    assert f"`{name}`" in DOC
