"""Issue 20, second part: bounced and failed deliveries move a step to the next channel (and never
prove a notice), the dispute guard, the sandbox's SMS/WhatsApp channels, receipts imported from
files, and runs for other dates judged on those dates by the sandbox bureau."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from collection_harness import CREDITOR, Gateway, SMTPServer, alfa, maria, notifications_config, portfolio, receivable, store_at

from regua.engine.compiler import compile_policy
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry
from regua.portfolio.collection.runner import Runner, run_time
from regua.portfolio.collection.settings import CollectionSettings
from regua.portfolio.collection.store import Receipt

DUE = dt.date(2026, 3, 10)
REGUA = Path(sys.executable).with_name("regua")
CARELESS = """
policy careless kind collection
step aviso at D+1
  notify_negativation "aviso_negativacao"
step negativar at D+1
  negativate
"""
# A régua that forgets `when not disputed`: the engine must hold its contacts during a dispute.
FORGETFUL = """
policy forgetful kind collection
step lembrete at D+1
  remind "cobranca_atraso"
step acordo at D+2
  offer_agreement "proposta_acordo"
  set discount = 10%
step aviso at D+3
  notify_negativation "aviso_negativacao"
"""


@pytest.fixture
def servers(collection_backend):
    """The SMTP server and the gateway, for a test run once per store backend (collection_backend)."""
    with SMTPServer() as smtp, Gateway() as gateway:
        yield smtp, gateway


def make_runner(tmp_path, servers, customers, receivables, regua, name="careless", **settings):
    smtp, gateway = servers
    db = store_at(tmp_path)
    portfolio(db, customers, receivables)
    config = {"notifications": notifications_config(smtp.port, gateway.url, str(tmp_path / "receipts.db")),
              "negativation": {"sandbox": {"path": str(tmp_path / "neg.db")}}}
    registry = Registry.load(PluginSettings(config=config))
    settings = CollectionSettings(**dict(creditor_name=CREDITOR[0], creditor_document=CREDITOR[1],
                                         creditor_address=CREDITOR[2], policies={"pf": name, "pj": name}, **settings))
    return Runner(db, {name: compile_policy(regua, f"{name}.regua")}, registry, settings)


def history(runner, rid):
    return [(e["kind"], e["code"]) for e in runner.store.history(rid)]


def status(runner, key):
    return runner.store.db.execute("select status, block_code, delivered_at from outbox where key = ?",
                                   [key]).fetchone()


# ---- bounced and failed deliveries ---------------------------------------------------------------

def test_a_bounced_notice_goes_through_the_next_channel_and_is_never_proof(tmp_path, servers):
    smtp, gateway = servers
    # Maria prefers e-mail, then WhatsApp.
    customers = [maria(channels=["email", "whatsapp"])]
    runner = make_runner(tmp_path, servers, customers, [receivable("t1", "maria", "900.00", DUE),
                                                        receivable("t2", "maria", "500.00", DUE + dt.timedelta(days=1))],
                         CARELESS)
    day = DUE + dt.timedelta(days=1)
    runner.run(day, now=run_time(day, 10))
    assert status(runner, "t1:aviso")[0] == "sent" and len(smtp.mailbox.messages) == 1
    # The provider first says delivered, then reports a hard bounce: the proof is withdrawn.
    assert runner.store.record_delivery("t1:aviso", run_time(day, 10).replace(minute=5), now=run_time(day, 11)) \
        == "first"
    bounce = Receipt("t1:aviso", run_time(day, 11), "bounced", "", "550 5.1.1 maria@example.com: user unknown")
    assert runner.store.record_receipt(bounce, now=run_time(day, 12)) == "bounced"
    assert status(runner, "t1:aviso") == ("pending", "BOUNCED", None)
    event = next(e for e in runner.store.history("t1") if e["kind"] == "bounced")
    assert event["code"] == "BOUNCED" and "maria@example.com" not in json.dumps(event)
    assert event["detail"]["withdrawn_delivery"]
    # A duplicate bounce changes nothing.
    assert runner.store.record_receipt(bounce, now=run_time(day, 12)) == "stale"
    runner.run(day, now=run_time(day, 14))
    # Same step, next channel (WhatsApp through the gateway, which proves delivery at once).
    assert [r["key"] for r in gateway.requests] == ["t1:aviso"]
    assert status(runner, "t1:aviso")[0] == "delivered"
    sent = [e["detail"]["kind"] for e in runner.store.history("t1") if e["kind"] == "sent" or
            (e["kind"] == "delivered" and e["code"] != "RECEIPT")]
    assert sent == ["email", "whatsapp"]
    # The e-mail is not relied on again for Maria: t2's notice goes straight to WhatsApp.
    runner.run(day + dt.timedelta(days=1), now=run_time(day + dt.timedelta(days=1), 10))
    assert [r["key"] for r in gateway.requests] == ["t1:aviso", "t2:aviso"] and len(smtp.mailbox.messages) == 1
    # The wait runs from the WhatsApp delivery (11/03): the record opens from 24/03, not earlier.
    for offset in range(2, 14):
        runner.run(DUE + dt.timedelta(days=offset), now=run_time(DUE + dt.timedelta(days=offset), 10))
    assert not any(kind == "negativated" for kind, _ in history(runner, "t1"))
    runner.run(dt.date(2026, 3, 24), now=run_time(dt.date(2026, 3, 24), 10))
    assert ("negativated", "NOTICE_SENT") in history(runner, "t1")
    runner.close()


def test_a_bounce_with_no_channel_left_fails_the_step_and_nothing_is_negativated(tmp_path, servers):
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)], CARELESS)
    day = DUE + dt.timedelta(days=1)
    runner.run(day, now=run_time(day, 10))
    assert runner.store.record_receipt(Receipt("t1:aviso", run_time(day, 10).replace(minute=1), "failed", "",
                                               "mailbox full"), now=run_time(day, 11)) == "bounced"
    # A delivered receipt for the bounced send is not proof any more.
    from regua.portfolio.collection.store import ReceiptRefused

    with pytest.raises(ReceiptRefused) as refused:
        runner.store.record_delivery("t1:aviso", run_time(day, 11), now=run_time(day, 12))
    assert refused.value.code == "STEP_NOT_SENT"
    runner.run(day, now=run_time(day, 14))
    assert status(runner, "t1:aviso")[:2] == ("failed", "NO_CHANNEL")
    failed = next(e for e in runner.store.history("t1") if e["kind"] == "failed")
    assert failed["detail"]["unusable"] == ["email"]
    for offset in (15, 40):
        runner.run(DUE + dt.timedelta(days=offset), now=run_time(DUE + dt.timedelta(days=offset), 10))
    assert status(runner, "t1:negativar")[:2] == ("blocked", "NO_DELIVERED_NOTICE")
    assert not any(kind == "negativated" for kind, _ in history(runner, "t1"))
    runner.close()


def test_a_bounce_about_an_earlier_send_changes_nothing(tmp_path, servers):
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE)], CARELESS)
    day = DUE + dt.timedelta(days=1)
    runner.run(day, now=run_time(day, 10))
    stale = Receipt("t1:aviso", run_time(day, 10).replace(minute=2), "bounced", "some-other-message", "550")
    assert runner.store.record_receipt(stale, now=run_time(day, 11)) == "stale"
    assert status(runner, "t1:aviso")[0] == "sent"
    assert ("later_receipt", "BOUNCED") in history(runner, "t1")
    assert runner.store.unusable_contacts("alfa") == set()
    runner.close()


def test_an_invalid_number_at_send_time_moves_to_the_next_channel_at_once(tmp_path, servers):
    smtp, gateway = servers
    customers = [maria(phone="123", channels=["whatsapp", "email"])]
    runner = make_runner(tmp_path, servers, customers, [receivable("t1", "maria", "900.00", DUE)], CARELESS)
    day = DUE + dt.timedelta(days=1)
    runner.run(day, now=run_time(day, 10))
    assert ("bounced", "INVALID_RECIPIENT") in history(runner, "t1")
    assert status(runner, "t1:aviso")[0] == "sent" and len(smtp.mailbox.messages) == 1 and not gateway.requests
    assert {kind for kind, _ in runner.store.unusable_contacts("maria")} == {"whatsapp"}
    runner.close()


# ---- disputed debts ------------------------------------------------------------------------------

def test_no_collection_contact_while_disputed_whatever_the_policy_says(tmp_path, servers):
    smtp, gateway = servers
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE, disputed=True)],
                         FORGETFUL, "forgetful")
    for offset in (1, 2, 3, 4):
        runner.run(DUE + dt.timedelta(days=offset), now=run_time(DUE + dt.timedelta(days=offset), 10))
    assert not smtp.mailbox.messages and not gateway.requests
    blocked = [code for kind, code in history(runner, "t1") if kind == "blocked"]
    assert blocked == ["DISPUTED", "DISPUTED", "DISPUTED"]  # one per step, logged once
    runner.close()


def test_disputed_reminders_allow_the_neutral_reminder_only(tmp_path, servers):
    smtp, gateway = servers
    runner = make_runner(tmp_path, servers, [alfa()], [receivable("t1", "alfa", "900.00", DUE, disputed=True)],
                         FORGETFUL, "forgetful", disputed_reminders=True)
    for offset in (1, 2, 3):
        runner.run(DUE + dt.timedelta(days=offset), now=run_time(DUE + dt.timedelta(days=offset), 10))
    steps = dict(runner.store.db.execute("select step, status from outbox").fetchall())
    assert steps == {"lembrete": "sent", "acordo": "blocked", "aviso": "blocked"}
    assert len(smtp.mailbox.messages) == 1
    runner.close()


# ---- the sandbox bureau judges by the run's moment -----------------------------------------------

@pytest.mark.parametrize("due", [dt.date(2019, 3, 11), dt.date(2031, 3, 10)])
def test_a_run_for_another_date_is_judged_on_that_date_by_the_sandbox_bureau(tmp_path, servers, due):
    runner = make_runner(tmp_path, servers, [maria()], [receivable("t1", "maria", "900.00", due)], CARELESS)
    day = due + dt.timedelta(days=1)
    runner.run(day, now=run_time(day, 10))  # WhatsApp proves delivery at once
    ready = due + dt.timedelta(days=30)
    runner.run(ready, now=run_time(ready, 10))
    record = runner.store.db.execute("select status from negative_records where receivable_id = 't1'").fetchone()
    assert record == ("notice_sent",), history(runner, "t1")  # not rejected as too old / not yet due
    import sqlite3

    bureau = sqlite3.connect(tmp_path / "neg.db")
    (stamped,) = bureau.execute("select notice_sent_at from records").fetchone()
    bureau.close()
    assert dt.datetime.fromisoformat(stamped).date() == ready  # stamped on the run's day, not the machine's
    runner.close()


# ---- the sandbox's SMS channel and receipts from files -------------------------------------------

def _regua(*args, cwd, folder):
    # store.path: the sandbox writes its files next to it (with --db postgresql://… too)
    environ = dict(os.environ, REGUA_STORE__PATH=str(folder / "regua.db"))
    return subprocess.run([str(REGUA), *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=environ)


def test_sandbox_sms_and_receipts_imported_from_files(tmp_path, collection_backend):
    db = collection_backend  # a SQLite file, then a PostgreSQL database
    sms_only = maria(email="", whatsapp="", channels=["sms"])
    portfolio(str(db), [sms_only], [receivable("t1", "maria", "400.00", DUE), receivable("t2", "maria", "300.00", DUE)])
    cwd = str(Path(__file__).resolve().parent.parent)
    run = _regua("collect", "--db", str(db), "--sandbox", "--as-of", DUE.isoformat(), "--at", "10:00", "--json",
                 cwd=cwd, folder=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["outcomes"] == {"sent": 2}
    texts = sorted((tmp_path / "outbox").glob("*.sms.txt"))
    assert len(texts) == 2 and "Régua Sandbox Ltda" in texts[0].read_text(encoding="utf-8")
    from regua.portfolio.collection.store import CollectionStore

    store = CollectionStore(str(db))
    (sent_at,) = store.db.execute("select sent_at from outbox where key = 't1:vencimento'").fetchone()
    store.close()
    sent = dt.datetime.fromisoformat(sent_at)
    # Excel pt-BR: `;`, Windows-1252. One row is refused: nothing is written, every refusal is named.
    bad = (f"key;status;delivered_at;failed_at;reason;provider_id\r\n"
           f"t1:vencimento;delivered;{(sent + dt.timedelta(minutes=2)).isoformat()};;;sms-1\r\n"
           f"t2:vencimento;bounced;;{(sent - dt.timedelta(hours=1)).isoformat()};número inválido;\r\n"
           f"t9:nada;delivered;{sent.isoformat()};;;\r\n"
           f"t1:vencimento;perdido;;;;\r\n")
    (tmp_path / "bad.csv").write_bytes(bad.encode("cp1252"))
    refused = _regua("deliveries", "import", str(tmp_path / "bad.csv"), "--db", str(db), cwd=cwd, folder=tmp_path)
    assert refused.returncode == 1
    assert "line 3: key: RECEIPT_BEFORE_SEND" in refused.stderr and "line 4: key: UNKNOWN_STEP" in refused.stderr
    assert "line 5: status: VALUE" in refused.stderr and "nothing written" in refused.stderr
    store = CollectionStore(str(db))
    assert store.db.execute("select count(*) from outbox where delivered_at is not null or block_code = 'BOUNCED'"
                            ).fetchone()[0] == 0
    assert store.db.execute("select count(*) from collection_events where kind in ('delivered', 'bounced', "
                            "'receipt_refused')").fetchone()[0] == 0
    store.close()
    good = [{"key": "t1:vencimento", "delivered_at": (sent + dt.timedelta(minutes=2)).isoformat(), "provider_id": "a"},
            {"key": "t2:vencimento", "status": "bounced", "failed_at": (sent + dt.timedelta(minutes=1)).isoformat(),
             "reason": "invalid number"}]
    (tmp_path / "good.jsonl").write_text("\n".join(json.dumps(r) for r in good) + "\n", encoding="utf-8")
    imported = _regua("deliveries", "import", str(tmp_path / "good.jsonl"), "--db", str(db), "--json", cwd=cwd, folder=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["outcomes"] == {"bounced": 1, "first": 1}
    store = CollectionStore(str(db))
    assert dict(store.db.execute("select key, status from outbox where key like '%vencimento'").fetchall()) == \
        {"t1:vencimento": "delivered", "t2:vencimento": "pending"}
    assert {kind for kind, _ in store.unusable_contacts("maria")} == {"sms"}
    store.close()
