"""Retention of the policy lab's replay jobs: `regua purge` deletes the jobs created before its
cut-off with the decisions' personal data (a running job is kept), `--replays-only` and
`store.replay_retention_days` delete them alone; every purge is audited with how many; and
`DELETE /replays/{id}` deletes one (409 while it runs). Both store backends."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from server_harness import SANDBOX_HEADERS, ThreadedServer, assert_error, sandbox_settings

from regua.server.retention import purge, purges
from regua.server.store import open_store

REGUA = Path(sys.executable).with_name("regua")
OLD = dt.datetime(2020, 5, 31, 12, 0, tzinfo=dt.timezone.utc)
RECENT = dt.datetime.now(dt.timezone.utc)


def _job(job_id: str, created: dt.datetime, status: str = "done", heartbeat: float | None = None) -> dict:
    return {"id": job_id, "status": status, "policy": "credito_b2b", "request": "{}", "candidate_name": "credito_b2b",
            "candidate_version": "1", "candidate_hash": "h" * 64, "api_key": "lab", "total": 10, "processed": 10,
            "purged_skipped": 0, "created_at": created.isoformat(timespec="microseconds"),
            "heartbeat_at": time.time() if heartbeat is None else heartbeat, "finished_at": None,
            "report": json.dumps({"cuts": {"uf": [{"value": "SP", "replayed": 10, "changed": 1}]}}), "error": None}


def _with_jobs(location: str) -> None:
    store = open_store(location)
    try:
        store.insert_row("replays", _job("old-done", OLD))
        store.insert_row("replays", _job("old-failed", OLD, "failed"))
        store.insert_row("replays", _job("old-running", OLD, "running"))  # heartbeat now: still running
        store.insert_row("replays", _job("old-dead", OLD, "running", heartbeat=time.time() - 3600))  # interrupted
        store.insert_row("replays", _job("recent", RECENT))
    finally:
        store.close()


def _ids(location: str) -> list[str]:
    store = open_store(location)
    try:
        return sorted(row["id"] for row in store.query("select id from replays"))
    finally:
        store.close()


def test_a_purge_deletes_old_replay_jobs_and_says_how_many(store_location):
    _with_jobs(store_location)
    dry = purge(store_location, dt.date(2020, 6, 1), "dpo", dry_run=True)
    assert dry.replays == 3 and len(_ids(store_location)) == 5 and purges(store_location) == []
    report = purge(store_location, dt.date(2020, 6, 1), "dpo")
    assert report.replays == 3
    assert _ids(store_location) == ["old-running", "recent"]
    [audit] = purges(store_location)
    assert (audit["by"], audit["replays"], audit["decisions"]) == ("dpo", 3, 0)


def test_replays_only_leaves_the_decisions(tmp_path):
    settings = sandbox_settings(tmp_path)
    with ThreadedServer(settings) as server, server.client(SANDBOX_HEADERS) as client:
        from server_harness import b2b_order

        assert client.post("/evaluate/credito_b2b", json={"input": b2b_order()}).status_code == 200
    location = settings.store.location
    _with_jobs(location)
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    done = subprocess.run([REGUA, "purge", "--before", tomorrow, "--db", location, "--replays-only", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"before": tomorrow, "decisions": 0, "cache_entries": 0, "replays": 4,
                                       "dry_run": False}
    assert _ids(location) == ["old-running"]
    store = open_store(location)
    assert store.query("select count(*) as n from decisions where purged_at is null") == [{"n": 1}]
    store.close()
    printed = subprocess.run([REGUA, "purge", "--before", tomorrow, "--db", location, "--replays-only", "--dry-run"],
                             capture_output=True, text=True)
    assert printed.returncode == 0 and "0 replay job(s) would be deleted" in printed.stderr
    assert "decision" not in printed.stderr


def test_the_server_applies_replay_retention_days(tmp_path):
    settings = sandbox_settings(tmp_path, store={"replay_retention_days": 30})
    location = settings.store.location
    _with_jobs(location)
    with ThreadedServer(settings):
        deadline = time.monotonic() + 30
        while not purges(location) and time.monotonic() < deadline:
            time.sleep(0.1)
    [audit] = purges(location)
    assert (audit["by"], audit["replays"], audit["decisions"]) == ("store.replay_retention_days", 3, 0)
    assert _ids(location) == ["old-running", "recent"]


def test_delete_one_replay_job_over_http(backend, tmp_path):
    settings = sandbox_settings(tmp_path)
    _with_jobs(settings.store.location)
    with ThreadedServer(settings) as server, server.client(SANDBOX_HEADERS) as client:
        assert client.delete("/replays/recent").status_code == 204
        assert_error(client.get("/replays/recent"), 404, "UNKNOWN_REPLAY")
        assert_error(client.delete("/replays/recent"), 404, "UNKNOWN_REPLAY")
        assert_error(client.delete("/replays/old-running"), 409, "REPLAY_RUNNING")
        assert client.delete("/replays/old-dead").status_code == 204  # interrupted: its worker is gone
    assert _ids(settings.store.location) == ["old-done", "old-failed", "old-running"]
