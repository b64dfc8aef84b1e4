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


def test_the_scaling_out_commands_run_on_a_real_postgresql(tmp_path, postgres_url):
    """The `sh` block of "Scaling out" that works on the portfolio, line by line, against a real
    PostgreSQL database: every command succeeds (the URL replaced by the test's database)."""
    import os
    import subprocess
    import sys

    block = next(b for b in re.findall(r"```sh\n(.*?)```", DOC, re.S) if "export REGUA_STORE_URL" in b)
    lines = [line for line in block.splitlines() if line.startswith("regua ")]
    assert len(lines) >= 8
    environ = dict(os.environ, REGUA_STORE_URL=postgres_url, REGUA_STORE__PATH=str(tmp_path / "regua.db"),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for line in lines:
        done = subprocess.run(["bash", "-c", line], cwd=ROOT, env=environ, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
    # the import reached PostgreSQL, not a file
    from regua import dialect

    db = dialect.connect(postgres_url)
    try:
        assert db.execute("select count(*) from receivables").fetchone()[0] > 0
    finally:
        db.conn.close()
    assert not (tmp_path / "regua.db").exists()
