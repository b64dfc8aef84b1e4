"""Choosing the store: a SQLite path (the default, nothing else needed) or a PostgreSQL URL, from the
TOML, the environment or `--db`; and the clear errors when PostgreSQL cannot be used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from server_harness import ROOT

from regua.server.config import ConfigError, load_settings


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_no_setting_keeps_the_embedded_sqlite_file(tmp_path):
    settings = load_settings(write(tmp_path / "regua.toml", ""), {})
    assert settings.store.url == "" and settings.store.location == "var/regua.db"


def test_store_url_comes_from_the_toml_or_the_environment(tmp_path):
    config = write(tmp_path / "regua.toml", '[store]\nurl = "postgresql://regua@db.internal/regua"\n')
    assert load_settings(config, {}).store.location == "postgresql://regua@db.internal/regua"
    assert load_settings(None, {"REGUA_STORE_URL": "postgresql://a/b"}).store.url == "postgresql://a/b"
    both = {"REGUA_STORE_URL": "postgresql://short/x", "REGUA_STORE__URL": "postgresql://long/x"}
    assert load_settings(None, both).store.url == "postgresql://long/x"  # the long form wins


def test_a_store_url_that_is_not_postgresql_is_refused_with_its_field(tmp_path):
    with pytest.raises(ConfigError, match="store.url: expected a postgresql:// URL"):
        load_settings(None, {"REGUA_STORE_URL": "mysql://x/y"})


def test_the_collection_scheduler_and_the_monitoring_poller_run_on_a_postgresql_store(tmp_path):
    environ = {"REGUA_STORE_URL": "postgresql://a/b", "REGUA_SANDBOX": "true", "REGUA_COLLECTION__ENABLED": "true",
               "REGUA_MONITORING__POLL": "true"}
    settings = load_settings(None, environ)
    assert settings.store.location == "postgresql://a/b"
    assert settings.collection.enabled and settings.monitoring.poll


def test_db_option_picks_the_setting_by_the_form_of_its_value():
    from regua.cli.common import store_variable

    assert store_variable("postgresql://regua@db/regua") == "REGUA_STORE__URL"
    assert store_variable("postgres://regua@db/regua") == "REGUA_STORE__URL"
    assert store_variable("var/regua.db") == "REGUA_STORE__PATH"


def test_without_psycopg_a_postgresql_store_says_which_extra_to_install():
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from regua.server.store import open_store\n"
            "open_store('postgresql://regua@127.0.0.1:1/regua')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "pip install 'regua[postgres]'" in result.stderr.splitlines()[-1]


def test_serve_on_an_unreachable_postgresql_is_one_clear_line_without_the_password(tmp_path):
    regua = Path(sys.executable).parent / "regua"
    url = "postgresql://regua:s3cret-pw@127.0.0.1:1/regua"
    result = subprocess.run([str(regua), "serve", "--sandbox", "--db", url, "--policies", str(ROOT / "policies")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "cannot connect to" in result.stderr and "Traceback" not in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_portfolio_commands_on_an_unreachable_postgresql_say_so_in_one_line_without_the_password(tmp_path):
    from click.testing import CliRunner

    from regua.cli import main

    for command in (["collect", "--sandbox"], ["import", "customers", str(ROOT / "pyproject.toml")]):
        result = CliRunner().invoke(main, [*command, "--db", "postgresql://regua:pw@127.0.0.1:1/regua"])
        assert result.exit_code == 1, result.output
        assert "cannot connect to" in result.output and "pw@" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
