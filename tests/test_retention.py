"""LGPD retention (issue 15 #6): `regua purge --before DATE` and `store.retention_days` remove the
personal data of old decisions and old cached bureau answers, keep anonymised decisions for
statistics, and leave an audit trail."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from server_harness import SANDBOX_HEADERS, ThreadedServer, b2b_order, sandbox_settings

from regua import postgres
from regua.engine.brazil import BRASILIA
from regua.plugins.cache import BureauCache
from regua.server.connector_cache import PostgresBureauCache
from regua.server.ids import id_floor
from regua.server.retention import purge, purges
from regua.server.store import DECISION_COLUMNS, open_store

REGUA = Path(sys.executable).with_name("regua")
CPF = "52998224725"


def _decision(when: dt.datetime, n: int) -> tuple:
    values = {"id": id_floor(when + dt.timedelta(milliseconds=n)), "policy": "credito_b2c", "version": "1",
              "revision": 1, "outcome": "deny",
              "body": json.dumps({"outcome": "deny", "outputs": {}, "reasons": [], "connector_calls": [], "trace": None}),
              "input": json.dumps({"cpf": CPF, "renda": "5000.00"}), "input_hash": "h" * 64,
              "document_hash": "d" * 64, "document_masked": "*******4725", "request_id": None, "api_key": "erp",
              "duration_ms": 0.5,
              "connector_answers": json.dumps([{"connector": "bureau.serasa", "args": ["*********25"], "status": "ok",
                                                "answer": {"score": {"value": 300}}}])}
    return tuple(values[c] for c in DECISION_COLUMNS)


def _store(location) -> str:
    """Three decisions (two from before 2020-06-01 in Brasília) and two cached bureau answers (one
    from before it) in the store at `location`: a SQLite path (or a folder, for regua.db in it) or
    a postgresql:// URL."""
    location = location if isinstance(location, str) else str(location / "regua.db")
    store = open_store(location)
    old = dt.datetime(2020, 5, 31, 23, 0, tzinfo=BRASILIA)
    recent = dt.datetime(2020, 6, 1, 0, 0, tzinfo=BRASILIA)  # the first instant of the cut-off day is kept
    store.insert_decisions([_decision(old, 0), _decision(old, 1), _decision(recent, 0)])
    for document, when in (("old", old), ("new", recent)):
        cache = PostgresBureauCache(location, clock=when.timestamp) if postgres.is_url(location) else \
            BureauCache(location, clock=when.timestamp)
        cache.put("bureau.serasa", document, {}, ttl=1, cost="1.00")
    store.close()
    return location


def _rows(location: str) -> list[dict]:
    return open_store(location).query("select * from decisions order by id")


def _cached(location: str) -> list[str]:
    keys = {BureauCache.key("bureau.serasa", document): document for document in ("old", "new")}
    return sorted(keys[row["key"]] for row in open_store(location).query("select key from connector_cache"))


def test_purge_anonymises_old_decisions_deletes_old_answers_and_is_audited(store_location):
    path = _store(store_location)
    report = purge(path, dt.date(2020, 6, 1), "dpo@example.com")
    assert (report.decisions, report.cache_entries) == (2, 1)
    old1, old2, recent = _rows(path)
    for row in (old1, old2):
        assert json.loads(row["input"]) == {} and row["purged_at"]
        assert row["document_hash"] is None and row["document_masked"] is None and row["input_hash"] is None
        assert row["connector_answers"] is None  # the lookups' answers go with the input
        assert row["outcome"] == "deny" and json.loads(row["body"])["outcome"] == "deny"  # statistics stay
    assert CPF in recent["input"] and recent["purged_at"] is None
    assert _cached(path) == ["new"]
    [audit] = purges(path)
    assert (str(audit["before"]), audit["by"], audit["decisions"], audit["cache_entries"]) == \
        ("2020-06-01", "dpo@example.com", 2, 1)
    again = purge(path, dt.date(2020, 6, 1), "dpo@example.com")
    assert (again.decisions, again.cache_entries) == (0, 0) and len(purges(path)) == 2


def test_a_dry_run_counts_and_changes_nothing(store_location):
    path = _store(store_location)
    before = _rows(path)
    report = purge(path, dt.date(2020, 6, 1), "x", dry_run=True)
    assert (report.decisions, report.cache_entries, report.dry_run) == (2, 1, True)
    assert _rows(path) == before and _cached(path) == ["new", "old"] and purges(path) == []


def test_the_command_line(tmp_path):
    path = _store(tmp_path)
    dry = subprocess.run([REGUA, "purge", "--before", "2020-06-01", "--db", path, "--dry-run", "--json"],
                         capture_output=True, text=True)
    assert dry.returncode == 0 and json.loads(dry.stdout) == {"before": "2020-06-01", "decisions": 2,
                                                              "cache_entries": 1, "replays": 0, "dry_run": True}
    done = subprocess.run([REGUA, "purge", "--before", "2020-06-01", "--db", path, "--by", "dpo"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "2 decision(s) were anonymised, 1 cached bureau answer(s) were deleted" in done.stdout
    assert purges(path)[0]["by"] == "dpo"
    missing = subprocess.run([REGUA, "purge", "--before", "2020-06-01", "--db", str(tmp_path / "nope.db")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no such database" in missing.stderr


def test_the_server_applies_retention_days_and_old_decisions_stay_readable(tmp_path, store_location):
    path = _store(store_location)
    old_id = _rows(path)[0]["id"]
    where = {"url": path} if postgres.is_url(path) else {"path": path}
    settings = sandbox_settings(tmp_path, store={**where, "flush_interval_ms": 10, "retention_days": 30})
    with ThreadedServer(settings) as server, server.client(SANDBOX_HEADERS) as client:
        new = client.post("/evaluate/credito_b2b", json={"input": b2b_order()}).json()["decision_id"]
        deadline = dt.datetime.now() + dt.timedelta(seconds=30)
        while not purges(path) and dt.datetime.now() < deadline:
            pass
        stored = client.get(f"/decisions/{old_id}")
        assert stored.status_code == 200 and stored.json()["outcome"] == "deny"
        assert CPF not in stored.text
        assert client.get(f"/decisions/{new}").status_code == 200
    [audit] = purges(path)
    assert audit["by"] == "store.retention_days" and audit["decisions"] == 3  # the 2020 ones; today's is kept
