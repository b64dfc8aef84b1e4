"""`regua monitor` as a user runs it: a real process on a real SQLite file, sandbox channels."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from collection_harness import alfa, maria, receivable

from regua.portfolio import Portfolio
from regua.portfolio.model import Payment
from regua.portfolio.monitoring.store import MonitoringStore

REGUA = Path(sys.executable).with_name("regua")
ROOT = Path(__file__).resolve().parent.parent
AS_OF = dt.date(2026, 11, 20)


def regua(*args: str) -> subprocess.CompletedProcess:
    # A wide terminal, so table cells are not wrapped across lines.
    return subprocess.run([str(REGUA), *args], capture_output=True, text=True, timeout=120, cwd=str(ROOT),
                          env={**os.environ, "COLUMNS": "200"})


def _portfolio(db: str) -> None:
    """alfa: 4 months paid on time, limit set long ago (a raise is due); maria: 40 days late."""
    portfolio = Portfolio(str(db))
    rows = [alfa(manager="gerente@empresa.example.com"), maria()]
    payments = []
    for month in range(4):
        due = dt.date(2026, 7 + month, 10)
        rows.append(receivable(f"a{month}", "alfa", "1000.00", due, status="paid"))
        payments.append(Payment(f"pa{month}", f"a{month}", "1000.00", due - dt.timedelta(days=1)))
    rows.append(receivable("m1", "maria", "300.00", AS_OF - dt.timedelta(days=40)))
    portfolio.save(rows + payments)
    portfolio.close()
    store = MonitoringStore(str(db))
    from decimal import Decimal

    from regua.dialect import transaction

    long_ago = dt.datetime(2026, 1, 5, 12, tzinfo=dt.timezone.utc)
    with transaction(store.db) as conn:
        for customer, amount in (("alfa", "10000.00"), ("maria", "2000.00")):
            store.change_limit(conn, customer, Decimal(amount), False, long_ago, actor="user:test", source="person",
                               reasons=["MANUAL"], note="initial limit")
    store.close()


def test_monitor_rechecks_the_portfolio_within_a_budget(tmp_path, collection_backend, monkeypatch):
    db = collection_backend  # a SQLite file, then a PostgreSQL database
    monkeypatch.setenv("REGUA_STORE__PATH", str(tmp_path / "regua.db"))  # the sandbox writes its files next to it
    _portfolio(db)
    dry = regua("monitor", "--portfolio", "--db", str(db), "--sandbox", "--as-of", AS_OF.isoformat(), "--dry-run",
                "--json")
    assert dry.returncode == 0, dry.stderr
    summary = json.loads(dry.stdout)
    assert summary["customers"] == 2 and summary["evaluated"] == 2 and summary["dry_run"]
    assert summary["raised"] == 1 and summary["reduced"] == 1 and summary["limit_changes"] == 2
    store = MonitoringStore(str(db))
    assert store.limit("alfa").amount == 10000 and len(store.history("alfa")) == 1  # a dry run writes nothing

    real = regua("monitor", "--portfolio", "--db", str(db), "--sandbox", "--as-of", AS_OF.isoformat(), "--budget", "3")
    assert real.returncode == 0, real.stderr
    assert "limit changes" in real.stdout and "0 of 3" in real.stdout  # this policy needs no bureau on a re-check
    assert str(store.limit("alfa").amount) == "12000.00"  # +20% after 3+ cycles without delay
    assert str(store.limit("maria").amount) == "1000.00"  # halved: more than 30 days late
    change = store.history("alfa")[0]
    assert change["actor"].startswith("policy:monitoramento_credito@") and change["reasons"] == ["BOM_PAGADOR"]
    assert change["decision_id"] and change["policy_version"]
    mails = [p.read_text(encoding="utf-8") for p in (tmp_path / "outbox").glob("*.eml")]
    assert any("12.000,00" in m for m in mails)  # alfa told about the new limit
    store.close()

    again = regua("monitor", "--segment", "varejo", "--db", str(db), "--sandbox", "--as-of", AS_OF.isoformat(),
                  "--json")
    assert again.returncode == 0, again.stderr
    # only maria is in `varejo`; her limit changed today, so the 30-day rule does not cut it again
    assert json.loads(again.stdout)["customers"] == 1 and json.loads(again.stdout)["limit_changes"] == 0


def test_monitor_reports_bad_usage_without_a_traceback(tmp_path):
    nothing = regua("monitor", "--db", str(tmp_path / "x.db"), "--sandbox")
    assert nothing.returncode == 2 and "--portfolio" in nothing.stderr
    missing = regua("monitor", "--portfolio", "--db", str(tmp_path / "nope.db"), "--sandbox")
    assert missing.returncode == 2 and "no such database" in missing.stderr and "Traceback" not in missing.stderr
    negative = regua("monitor", "--portfolio", "--budget", "-1", "--db", str(tmp_path / "x.db"))
    assert negative.returncode == 2 and "Traceback" not in negative.stderr
    db = tmp_path / "regua.db"
    _portfolio(db)
    poll = regua("monitor", "--poll", "--db", str(db), "--sandbox")
    assert poll.returncode == 0 and "no monitoring source" in poll.stdout


def test_monitor_lists_the_customers_to_look_at_and_limits_shows_a_history(tmp_path, collection_backend, monkeypatch):
    db = collection_backend  # a SQLite file, then a PostgreSQL database
    monkeypatch.setenv("REGUA_STORE__PATH", str(tmp_path / "regua.db"))  # the sandbox writes its files next to it
    _portfolio(db)
    dry = regua("monitor", "--portfolio", "--db", str(db), "--sandbox", "--as-of", AS_OF.isoformat(), "--dry-run",
                "--json")
    results = {r["customer_id"]: r for r in json.loads(dry.stdout)["results"]}
    assert results["alfa"]["outcome"] == "raise" and results["alfa"]["limit_after"] == "12000.00"
    assert results["maria"]["limit_before"] == "2000.00" and results["maria"]["limit_after"] == "1000.00"
    assert results["alfa"]["reasons"] == ["BOM_PAGADOR"]
    real = regua("monitor", "--portfolio", "--db", str(db), "--sandbox", "--as-of", AS_OF.isoformat())
    assert real.returncode == 0, real.stderr
    assert "customers to look at" in real.stdout and "R$ 12.000,00" in real.stdout and "R$ 1.000,00" in real.stdout
    assert "Maria" not in real.stdout  # ids, never names
    shown = regua("monitor", "--portfolio", "--db", str(db), "--sandbox", "--as-of", AS_OF.isoformat(), "--dry-run",
                  "--show", "1")
    assert "and 1 more" in shown.stdout or "customers to look at" not in shown.stdout

    history = regua("limits", "alfa", "--db", str(db))
    assert history.returncode == 0, history.stderr
    assert "limit R$ 12.000,00" in history.stdout and "R$ 10.000,00" in history.stdout
    assert "BOM_PAGADOR" in history.stdout and "user:test" in history.stdout
    data = json.loads(regua("limits", "alfa", "--db", str(db), "--json").stdout)
    assert data["limit"]["amount"] == "12000.00" and [c["amount"] for c in data["history"]] == ["12000.00", "10000.00"]
    unknown = regua("limits", "ninguem", "--db", str(db))
    assert unknown.returncode == 1 and "no customer with id 'ninguem'" in unknown.stderr
