"""docs/experiments.md is kept true: its HTTP exchanges run, in order, against a real server (the
markers of docs/http-api.md: `<!-- http: METHOD PATH -->` then `<!-- status: CODE -->` and the
expected answer, compared as a subset), its ```sh blocks name real options and its links resolve."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from doc_blocks import broken_links, check_shell_commands, read_blocks
from server_harness import ThreadedServer, sandbox_settings
from test_docs_server import examples, matches

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "experiments.md"
BLOCKS = read_blocks(DOC.read_text(encoding="utf-8"), "docs/experiments.md")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("docs-exp")), today=lambda: dt.date(2026, 11, 22)) as s:
        yield s


def test_every_http_example_runs_as_documented(server):
    exchanges = examples(DOC.read_text(encoding="utf-8"))
    assert len(exchanges) >= 10
    with server.client() as client:
        for exchange in exchanges:
            server.services.decision_log.wait_flushed()
            response = client.request(exchange["method"], exchange["path"], json=exchange["body"])
            where = f"docs/experiments.md:{exchange['line']} {exchange['method']} {exchange['path']}"
            assert response.status_code == exchange["status"], f"{where}: {response.status_code} {response.text}"
            problems = matches(exchange["expected"], response.json())
            assert not problems, f"{where}:\n" + "\n".join(problems)


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS if b.kind == "sh"])
def test_shell_commands_name_real_options(block):
    check_shell_commands(block)


def test_links_resolve():
    assert not broken_links(DOC)


def test_the_readme_points_here():
    assert "docs/experiments.md" in (ROOT / "README.md").read_text(encoding="utf-8")
