"""The policy lab reads the decisions replicas wrote to PostgreSQL: `regua replay --db postgresql://…`
gives what it gives on a SQLite store (tests/test_lab.py), and a URL's password is never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from server_harness import ThreadedServer, b2b_order, fresh_document, sandbox_settings

from regua.cli import main

ROOT = Path(__file__).resolve().parent.parent
CHAMPION = ROOT / "policies" / "credito_b2b.regua"


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def served(tmp_path, store_location):
    settings = sandbox_settings(tmp_path, store={"url": store_location} if "://" in store_location else {})
    with ThreadedServer(settings) as server, server.client() as client:
        for i, profile in enumerate(["clean"] * 6 + ["low_score"] * 3 + ["negativated"] * 3):
            order = b2b_order(fresh_document(profile), valor_pedido=f"{5000 + 9000 * i}.00")
            assert client.post("/evaluate/credito_b2b", json={"input": order}).status_code == 200
    return settings.store.location, 12


def test_replaying_the_champion_changes_nothing_on_either_backend(served, tmp_path):
    location, count = served
    result = _invoke("replay", CHAMPION, "--db", location, "--json", tmp_path / "all.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "all.json").read_text())
    assert (report["replayed"], report["changed"], report["errors"]) == (count, 0, 0)
    sampled = _invoke("replay", CHAMPION, "--db", location, "--sample", 5, "--json", tmp_path / "sample.json")
    assert sampled.exit_code == 0, sampled.output
    assert json.loads((tmp_path / "sample.json").read_text())["replayed"] == 5


def test_an_unreachable_postgresql_is_a_usage_error_without_the_password():
    result = _invoke("replay", CHAMPION, "--db", "postgresql://lab:hunter2@127.0.0.1:1/regua")
    assert result.exit_code == 2 and "cannot connect to" in result.output and "hunter2" not in result.output


def test_a_replay_job_started_on_one_replica_is_answered_by_the_other(tmp_path, postgres_url):
    """POST /replays runs in the replica that accepted it; its row is in the shared store."""
    from server_harness import free_port
    from test_lab_http import CANDIDATE, _wait

    first = sandbox_settings(tmp_path / "a", store={"url": postgres_url})
    second = sandbox_settings(tmp_path / "b", store={"url": postgres_url}, server={"port": free_port()})
    with ThreadedServer(first) as a, a.client() as client:
        for i, profile in enumerate(["clean"] * 6 + ["low_score"] * 2):
            order = b2b_order(fresh_document(profile), valor_pedido=f"{5000 + 9000 * i}.00")
            assert client.post("/evaluate/credito_b2b", json={"input": order}).status_code == 200
        a.services.decision_log.wait_flushed()
        response = client.post("/replays", json={"candidate": CANDIDATE, "top": 3})
        assert response.status_code == 202, response.text
        job = _wait(client, response.headers["location"])
        assert job["status"] == "done" and job["report"]["replayed"] == 8, job
    with ThreadedServer(second) as b, b.client() as client:
        assert client.get(response.headers["location"]).json() == job
