"""The runner's rules, one at a time: guards enforced whatever the policy says, deferral, supersession,
dry runs, routing, simulation — with real SQLite files and real SMTP/HTTP servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from collection_harness import (
    CREDITOR,
    Gateway,
    SMTPServer,
    alfa,
    maria,
    notifications_config,
    policies,
    portfolio,
    receivable,
    store_at,
)

from regua.engine.compiler import compile_policy
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry
from regua.portfolio import Portfolio
from regua.portfolio.collection.runner import Runner, run_time
from regua.portfolio.collection.settings import CollectionSettings
from regua.portfolio.collection.simulate import simulate
from regua.portfolio.model import Agreement, Instalment

DUE = dt.date(2026, 3, 10)
REGUA = Path(sys.executable).with_name("regua")

# A careless régua: it negativates the day after the due date, notice or not.
CARELESS = """
policy careless kind collection
step aviso at D+1
  notify_negativation "aviso_negativacao"
step negativar at D+1
  negativate
"""


@pytest.fixture
def servers(collection_backend):
    """The SMTP server and the gateway, for a test run once per store backend (collection_backend)."""
    with SMTPServer() as smtp, Gateway() as gateway:
        yield smtp, gateway


def make_runner(tmp_path, servers, customers, receivables, regua=None, **settings):
    smtp, gateway = servers
    db = store_at(tmp_path)
    portfolio(db, customers, receivables)
    config = {"notifications": notifications_config(smtp.port, gateway.url, str(tmp_path / "receipts.db")),
              "negativation": {"sandbox": {"path": str(tmp_path / "neg.db")}}}
    registry = Registry.load(PluginSettings(config=config))
    chosen = {"careless": compile_policy(regua, "careless.regua")} if regua else policies()
    if regua:
        settings.setdefault("policies", {"pf": "careless", "pj": "careless"})
    settings = dict(dict(creditor_name=CREDITOR[0], creditor_document=CREDITOR[1], creditor_address=CREDITOR[2]),
                    **settings)
    settings = CollectionSettings(**settings)
    return Runner(db, chosen, registry, settings)


def history(runner, rid):
    return [(e["kind"], e["code"]) for e in runner.store.history(rid)]


def test_no_negativation_without_a_delivered_notice_whatever_the_policy_says(tmp_path, servers):
    # Alfa has e-mail only: the notice is sent, but SMTP cannot prove delivery.
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)], CARELESS)
    runner.run(DUE + dt.timedelta(days=1), now=run_time(DUE + dt.timedelta(days=1), 10))
    assert ("blocked", "NO_DELIVERED_NOTICE") in history(runner, "t1")
    runner.run(DUE + dt.timedelta(days=2), now=run_time(DUE + dt.timedelta(days=2), 10))
    assert history(runner, "t1").count(("blocked", "NO_DELIVERED_NOTICE")) == 1  # logged once, checked every run
    assert runner.store.db.execute("select status from outbox where key = 't1:negativar'").fetchone()[0] == "blocked"
    # A delivery receipt arrives (a provider callback): the waiting period starts from it.
    delivered = run_time(DUE + dt.timedelta(days=2), 11)
    assert runner.store.record_delivery("t1:aviso", delivered)
    runner.run(DUE + dt.timedelta(days=3), now=run_time(DUE + dt.timedelta(days=3), 10))
    assert ("deferred", "NOTICE_WAIT") in history(runner, "t1")
    not_before = runner.store.db.execute("select not_before from outbox where key = 't1:negativar'").fetchone()[0]
    # Delivered Thursday 12/03: 10 days run to Sunday 22/03, moved to Monday 23/03, the last day to pay;
    # the record may open from 24/03 (Código Civil art. 132).
    assert dt.datetime.fromisoformat(not_before).astimezone(run_time(DUE).tzinfo).date() == dt.date(2026, 3, 24)
    last_day = dt.date(2026, 3, 23)
    for hour in (9, 14, 19):
        runner.run(last_day, now=run_time(last_day, hour))
    assert not any(kind == "negativated" for kind, _ in history(runner, "t1"))
    runner.run(last_day + dt.timedelta(days=1), now=run_time(last_day + dt.timedelta(days=1), 0))
    assert ("negativated", "NOTICE_SENT") in history(runner, "t1")
    runner.close()


def test_a_disputed_debt_is_never_negativated(tmp_path, servers):
    runner = make_runner(tmp_path, servers, [maria()], [receivable("t1", "maria", "900.00", DUE, disputed=True)],
                         CARELESS)
    for offset in (1, 15, 40):
        day = DUE + dt.timedelta(days=offset)
        runner.run(day, now=run_time(day, 10))
    assert ("blocked", "DISPUTED") in history(runner, "t1")
    assert not any(kind == "negativated" for kind, _ in history(runner, "t1"))
    runner.close()


def test_a_debt_older_than_five_years_is_not_negativated(tmp_path, servers):
    old_due = DUE.replace(year=2020)
    runner = make_runner(tmp_path, servers, [maria()], [receivable("t1", "maria", "900.00", old_due)], CARELESS)
    runner.run(DUE, now=run_time(DUE, 10))
    assert ("blocked", "TOO_OLD") in history(runner, "t1")
    assert runner.store.db.execute("select status from outbox where key = 't1:negativar'").fetchone()[0] == "cancelled"
    runner.close()


def test_out_of_window_contacts_are_deferred_not_dropped(tmp_path, servers):
    smtp, gateway = servers
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)])
    sunday = DUE - dt.timedelta(days=2) + dt.timedelta(days=(6 - (DUE - dt.timedelta(days=2)).weekday()) % 7)
    runner.run(sunday, now=run_time(sunday, 10))
    assert ("deferred", "OUT_OF_WINDOW") in history(runner, "t1") and not smtp.mailbox.messages
    monday = sunday + dt.timedelta(days=1)
    runner.run(monday, now=run_time(monday, 10))  # RJ opens at 9h
    assert len(smtp.mailbox.messages) == 1
    runner.close()


def test_the_frequency_cap_defers_the_fourth_contact(tmp_path, servers):
    smtp, gateway = servers
    receivables = [receivable(f"t{n}", "alfa", "100.00", DUE + dt.timedelta(days=5)) for n in range(4)]
    runner = make_runner(tmp_path, servers, [alfa()], receivables)
    day = DUE  # D-5 of every receivable: four reminders due for the same debtor
    summary = runner.run(day, now=run_time(day, 10))
    assert summary.outcomes == {"sent": 3, "deferred": 1} and summary.reasons == {"deferred:FREQUENCY_CAP": 1}
    runner.close()


def test_stale_contacts_are_superseded_by_the_latest(tmp_path, servers):
    smtp, gateway = servers
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)])
    day = DUE + dt.timedelta(days=8)  # imported late: D0, D+1 and D+7 are due; D-5 lapsed at the due date
    summary = runner.run(day, now=run_time(day, 10))
    assert summary.superseded == 2 and summary.planned == {"offer_agreement": 1}
    assert {r[0] for r in runner.store.db.execute("select step from outbox")} == \
        {"vencimento", "primeira_cobranca", "negociacao"}
    assert len(smtp.mailbox.messages) == 1
    assert "Proposta" in smtp.mailbox.messages[0]["Subject"]
    runner.close()


def test_a_dry_run_writes_and_sends_nothing(tmp_path, servers):
    smtp, gateway = servers
    runner = make_runner(tmp_path, servers, [maria(), alfa()], [receivable("t1", "maria", "400.00", DUE),
                                                                receivable("t2", "alfa", "900.00", DUE)])
    summary = runner.run(DUE, now=run_time(DUE, 10), dry_run=True)
    assert summary.planned == {"remind": 2} and summary.superseded == 2
    assert runner.store.db.execute("select count(*) from outbox").fetchone()[0] == 0
    assert runner.store.db.execute("select count(*) from collection_runs").fetchone()[0] == 0
    assert not smtp.mailbox.messages and not gateway.requests
    runner.close()


def test_receivables_in_an_active_agreement_leave_the_cadence(tmp_path, servers):
    smtp, gateway = servers
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)])
    store = Portfolio(runner.path)
    store.save([Agreement("a1", "alfa", ["t1"], DUE, [Instalment(DUE + dt.timedelta(days=30), "900.00")])])
    store.close()
    summary = runner.run(DUE + dt.timedelta(days=1), now=run_time(DUE + dt.timedelta(days=1), 10))
    assert summary.settled == 1 and summary.receivables == 0 and not smtp.mailbox.messages
    assert ("renegotiated", "AGREEMENT") in history(runner, "t1")
    runner.close()


def test_a_customer_without_a_regua_is_reported(tmp_path, servers):
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)],
                         policies={"pf": "cobranca_b2c"})
    summary = runner.run(DUE, now=run_time(DUE, 10))
    assert summary.unrouted == 1 and summary.planned == {}
    runner.close()


def test_simulation_prints_timelines_and_leaves_the_database_alone(tmp_path, servers):
    runner = make_runner(tmp_path, servers, [maria()], [receivable("t1", "maria", "400.00", DUE)])
    runner.close()
    timelines = simulate(runner.path, policies(), runner.settings, DUE - dt.timedelta(days=4),
                         DUE + dt.timedelta(days=31))
    steps = [(e.step, e.kind) for e in timelines["t1"] if e.kind in ("delivered", "negativated")]
    assert steps == [("lembrete", "delivered"), ("vencimento", "delivered"), ("primeira_cobranca", "delivered"),
                     ("segunda_cobranca", "delivered"), ("proposta_acordo", "delivered"), ("aviso", "delivered"),
                     ("negativacao", "negativated")]
    assert all(e.at.utcoffset() == dt.timedelta(hours=-3) for e in timelines["t1"])
    runner = make_runner(tmp_path / "again", servers, [], [])
    runner.close()
    from regua.dialect import connect

    db = connect(store_at(tmp_path))
    assert db.execute("select count(*) from outbox").fetchone()[0] == 0
    db.conn.close()
    with pytest.raises(ValueError, match="ends before it starts"):
        simulate(store_at(tmp_path), policies(), runner.settings, DUE, DUE - dt.timedelta(days=1))


def test_collect_and_simulate_from_the_command_line(tmp_path):
    db = tmp_path / "regua.db"
    portfolio(str(db), [maria()], [receivable("t1", "maria", "400.00", DUE)])
    env_cwd = {"cwd": str(Path(__file__).resolve().parent.parent)}
    dry = subprocess.run([str(REGUA), "collect", "--db", str(db), "--sandbox", "--as-of", DUE.isoformat(), "--dry-run",
                          "--json"], capture_output=True, text=True, timeout=120, **env_cwd)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["planned"] == {"remind": 1}
    real = subprocess.run([str(REGUA), "collect", "--db", str(db), "--sandbox", "--as-of", DUE.isoformat(),
                           "--at", "10:00"], capture_output=True, text=True, timeout=120, **env_cwd)
    assert real.returncode == 0, real.stderr
    # Maria prefers WhatsApp: the sandbox writes it as a text file next to the e-mails.
    assert "sent" in real.stdout and list((tmp_path / "outbox").glob("*.whatsapp.txt"))
    sim = subprocess.run([str(REGUA), "simulate", "--db", str(db), "--sandbox", "--from", DUE.isoformat(),
                          "--to", (DUE + dt.timedelta(days=2)).isoformat()], capture_output=True, text=True,
                         timeout=120, **env_cwd)
    assert sim.returncode == 0, sim.stderr
    assert "primeira_cobranca" in sim.stdout
    missing = subprocess.run([str(REGUA), "collect", "--db", str(tmp_path / "nope.db"), "--sandbox"],
                             capture_output=True, text=True, timeout=120, **env_cwd)
    assert missing.returncode == 2 and "no such database" in missing.stderr and "Traceback" not in missing.stderr
    unidentified = subprocess.run([str(REGUA), "collect", "--db", str(db), "--as-of", DUE.isoformat()],
                                  capture_output=True, text=True, timeout=120, **env_cwd)
    assert unidentified.returncode == 1 and "CDC art. 42-A" in unidentified.stderr


def test_a_deferred_contact_is_superseded_when_a_newer_one_is_planned(tmp_path, servers):
    smtp, gateway = servers
    monday = dt.date(2026, 3, 16)
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", monday)])
    saturday = monday - dt.timedelta(days=2)  # RJ: no contacts on weekends
    runner.run(saturday, now=run_time(saturday, 10))
    assert ("deferred", "OUT_OF_WINDOW") in history(runner, "t1") and not smtp.mailbox.messages
    runner.run(monday, now=run_time(monday, 10))  # D0: the due-day reminder replaces the D-5 one
    assert ("superseded", "SUPERSEDED") in history(runner, "t1")
    assert len(smtp.mailbox.messages) == 1
    steps = dict(runner.store.db.execute("select step, status from outbox").fetchall())
    assert steps == {"lembrete": "superseded", "vencimento": "sent"}
    runner.close()


# ---- delivery receipts, the notice's deadline, futile notices, creditor, deferral reasons ----

def _negativar(runner):
    return runner.store.db.execute("select status, block_code, not_before from outbox where key = 't1:negativar'"
                                   ).fetchone()


def test_a_receipt_dated_before_the_send_in_the_future_or_for_an_unsent_step_is_refused(tmp_path, servers):
    from regua.portfolio.collection.store import ReceiptRefused

    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)], CARELESS)
    sent_day = DUE + dt.timedelta(days=1)
    sent_at = run_time(sent_day, 10)
    runner.run(sent_day, now=sent_at)  # e-mail: sent, not proven delivered; negativar blocked
    assert _negativar(runner)[0] == "blocked"
    cases = [("t1:aviso", sent_at - dt.timedelta(days=20), "RECEIPT_BEFORE_SEND"),  # the provider's clock is wrong
             ("t1:aviso", sent_at - dt.timedelta(seconds=1), "RECEIPT_BEFORE_SEND"),
             ("t1:aviso", sent_at + dt.timedelta(days=3), "RECEIPT_IN_FUTURE"),  # now is 5 hours after the send
             ("t1:negativar", sent_at + dt.timedelta(hours=1), "STEP_NOT_SENT"),
             ("t9:aviso", sent_at + dt.timedelta(hours=1), "UNKNOWN_STEP")]
    for key, delivered_at, code in cases:
        with pytest.raises(ReceiptRefused) as refused:
            runner.store.record_delivery(key, delivered_at, now=sent_at + dt.timedelta(hours=5))
        assert refused.value.code == code, key
    refusals = [e["code"] for e in runner.store.history("t1") if e["kind"] == "receipt_refused"]
    assert refusals == ["RECEIPT_BEFORE_SEND", "RECEIPT_BEFORE_SEND", "RECEIPT_IN_FUTURE", "STEP_NOT_SENT"]
    assert runner.store.db.execute("select status, delivered_at from outbox where key = 't1:aviso'").fetchone() == \
        ("sent", None)
    # Five hours later nothing was shifted: still no proven delivery, so no negativation.
    runner.run(sent_day, now=sent_at + dt.timedelta(hours=5))
    assert _negativar(runner)[0] == "blocked"
    assert not any(kind == "negativated" for kind, _ in history(runner, "t1"))
    runner.close()


def test_a_later_receipt_keeps_the_first_delivery(tmp_path, servers):
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)], CARELESS)
    sent_day = DUE + dt.timedelta(days=1)
    runner.run(sent_day, now=run_time(sent_day, 10))
    first = run_time(sent_day, 11)
    assert runner.store.record_delivery("t1:aviso", first, "p1", now=run_time(sent_day, 12)) == "first"
    later = run_time(sent_day + dt.timedelta(days=6), 11)
    assert runner.store.record_delivery("t1:aviso", later, "p2", now=later) == "later"
    stored = runner.store.db.execute("select delivered_at from outbox where key = 't1:aviso'").fetchone()[0]
    assert dt.datetime.fromisoformat(stored) == first
    kinds = [(e["kind"], e["detail"].get("delivered_at")) for e in runner.store.history("t1")
             if e["kind"] in ("delivered", "later_receipt")]
    assert [k for k, _ in kinds] == ["delivered", "later_receipt"]
    # The wait counts from the first delivery (11/03: the last day to pay is 23/03, Monday, after Saturday 21/03).
    runner.run(DUE + dt.timedelta(days=2), now=run_time(DUE + dt.timedelta(days=2), 10))
    opening = dt.datetime.fromisoformat(_negativar(runner)[2]).astimezone(run_time(DUE).tzinfo)
    assert opening == dt.datetime.combine(dt.date(2026, 3, 24), dt.time(0), opening.tzinfo)
    runner.close()


def test_the_notice_prints_the_date_that_is_enforced(tmp_path, servers):
    smtp, gateway = servers
    # Maria prefers WhatsApp: the gateway proves delivery at once, so printed and enforced are the same day.
    runner = make_runner(tmp_path, servers, [maria()], [receivable("t1", "maria", "900.00", DUE)], CARELESS)
    day = dt.date(2026, 3, 13)  # Friday
    runner.run(day, now=run_time(day, 10))
    deadline = runner.store.db.execute("select deadline from outbox where key = 't1:aviso'").fetchone()[0]
    assert deadline == "2026-03-23"
    notice = next(r for r in gateway.requests if r["key"] == "t1:aviso")
    assert "23/03/2026" in notice["body"]["text"]
    for moment in (run_time(dt.date(2026, 3, 23), 9), run_time(dt.date(2026, 3, 23), 23)):
        runner.run(moment.date(), now=moment)
    assert not any(kind == "negativated" for kind, _ in history(runner, "t1"))
    runner.run(dt.date(2026, 3, 24), now=run_time(dt.date(2026, 3, 24), 9))
    assert ("negativated", "NOTICE_SENT") in history(runner, "t1")
    runner.close()


def test_a_notice_delivered_late_is_enforced_from_its_delivery_never_before_its_printed_day(tmp_path, servers):
    smtp, gateway = servers
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", dt.date(2026, 2, 20))],
                         CARELESS)
    sent_day = dt.date(2026, 3, 2)
    runner.run(sent_day, now=run_time(sent_day, 10))  # e-mail printed 12/03
    assert runner.store.db.execute("select deadline from outbox where key = 't1:aviso'").fetchone()[0] == "2026-03-12"
    assert any("12/03/2026" in m.get_body(("plain",)).get_content() for m in smtp.mailbox.messages)
    delivered = run_time(sent_day + dt.timedelta(days=8), 10)  # eight days late
    runner.store.record_delivery("t1:aviso", delivered, now=delivered)
    for offset in (9, 10, 11, 18):
        day = sent_day + dt.timedelta(days=offset)
        runner.run(day, now=run_time(day, 10))
        assert not any(kind == "negativated" for kind, _ in history(runner, "t1")), day
    day = dt.date(2026, 3, 21)  # 10 days after the delivery of 10/03 run through Friday 20/03
    runner.run(day, now=run_time(day, 0))
    assert ("negativated", "NOTICE_SENT") in history(runner, "t1")
    runner.close()


def test_no_notice_threatens_a_negativation_the_five_year_limit_forbids(tmp_path, servers):
    smtp, gateway = servers
    old = dt.date(2021, 3, 15)  # 5 years on 15/03/2026
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", old),
                                                       receivable("t2", "alfa", "900.00", dt.date(2021, 3, 25))],
                         CARELESS)
    day = dt.date(2026, 3, 10)  # t1: the earliest inclusion would be 21/03, past its limit; t2: 26/03 is not past
    summary = runner.run(day, now=run_time(day, 10))
    steps = dict(runner.store.db.execute("select key, status from outbox").fetchall())
    assert steps["t1:aviso"] == "cancelled" and steps["t2:aviso"] == "sent"
    assert ("cancelled", "TOO_OLD") in history(runner, "t1")
    assert summary.planned.get("notify_negativation") == 1 and summary.reasons["cancelled:TOO_OLD"] >= 1
    assert len(smtp.mailbox.messages) == 1 and "t2" in smtp.mailbox.messages[0].get_body(("plain",)).get_content()
    runner.close()


def test_collection_messages_carry_the_creditors_address_and_a_run_refuses_without_it(tmp_path, servers):
    from regua.portfolio.collection.runner import CreditorNotIdentified

    smtp, gateway = servers
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)])
    runner.run(DUE, now=run_time(DUE, 10))
    body = smtp.mailbox.messages[0].get_body(("plain",)).get_content()
    assert CREDITOR[0] in body and CREDITOR[1] in body and CREDITOR[2] in body
    runner.close()
    (tmp_path / "b").mkdir()
    unaddressed = make_runner(tmp_path / "b", servers, [alfa()], [receivable("t2", "alfa", "900.00", DUE)],
                              creditor_address="")
    with pytest.raises(CreditorNotIdentified, match=r"collection\.creditor_address") as refused:
        unaddressed.run(DUE, now=run_time(DUE, 10))
    assert refused.value.missing == ["collection.creditor_address"]
    # (on PostgreSQL both runners share the test's database: t1's steps are the first run's)
    assert unaddressed.store.db.execute("select count(*) from outbox where receivable_id = 't2'").fetchone()[0] == 0
    assert unaddressed.run(DUE, now=run_time(DUE, 10), dry_run=True).planned  # a dry run sends nothing: allowed
    unaddressed.close()


def test_a_cap_deferral_outside_the_window_is_logged_as_the_cap(tmp_path, servers):
    friday, saturday = dt.date(2026, 3, 13), dt.date(2026, 3, 14)  # alfa is in RJ: no contacts on weekends
    receivables = [receivable(f"t{n}", "alfa", "100.00", friday + dt.timedelta(days=5)) for n in range(3)]
    receivables.append(receivable("t9", "alfa", "100.00", saturday + dt.timedelta(days=5)))
    runner = make_runner(tmp_path, servers, [alfa()], receivables)
    assert runner.run(friday, now=run_time(friday, 10)).outcomes == {"sent": 3}
    summary = runner.run(saturday, now=run_time(saturday, 10))
    assert summary.reasons == {"deferred:FREQUENCY_CAP": 1}
    assert ("deferred", "FREQUENCY_CAP") in history(runner, "t9")
    runner.close()


def test_startup_and_runs_name_the_missing_creditor_setting(tmp_path):
    from regua.server.config import ConfigError, load_settings

    environ = {"REGUA_COLLECTION__ENABLED": "true", "REGUA_COLLECTION__CREDITOR_NAME": CREDITOR[0],
               "REGUA_COLLECTION__CREDITOR_DOCUMENT": CREDITOR[1]}
    with pytest.raises(ConfigError, match=r"collection\.creditor_address"):
        load_settings(environ=environ)
    assert load_settings(environ=dict(environ, REGUA_COLLECTION__CREDITOR_ADDRESS=CREDITOR[2])).collection.enabled
    # Sandbox with no creditor at all: the test company, address included.
    assert load_settings(environ={"REGUA_COLLECTION__ENABLED": "true", "REGUA_SANDBOX": "true"})
    db = tmp_path / "regua.db"
    portfolio(str(db), [maria()], [receivable("t1", "maria", "400.00", DUE)])
    cwd = str(Path(__file__).resolve().parent.parent)
    env = {"PATH": str(REGUA.parent), "REGUA_COLLECTION__CREDITOR_NAME": CREDITOR[0],
           "REGUA_COLLECTION__CREDITOR_DOCUMENT": CREDITOR[1]}
    refused = subprocess.run([str(REGUA), "collect", "--db", str(db), "--as-of", DUE.isoformat()],
                             capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    assert refused.returncode == 1 and "collection.creditor_address" in refused.stderr
    assert "collection.creditor_name" not in refused.stderr and "Traceback" not in refused.stderr
