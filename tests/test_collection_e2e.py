"""The bundled réguas, end to end: two months of daily runs against a real SMTP server, a real
messaging gateway and a real negativation provider on 127.0.0.1, with the state in SQLite files."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from collection_harness import CREDITOR, Gateway, SMTPServer, alfa, maria, notifications_config, policies, portfolio, receivable

from regua.engine.brazil import is_holiday, zone_of
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry
from regua.portfolio import Portfolio
from regua.portfolio.collection.guards import DEFAULT_WINDOWS
from regua.portfolio.collection.runner import Runner, run_time
from regua.portfolio.collection.settings import CollectionSettings
from regua.portfolio.model import Payment

DUE = dt.date(2026, 3, 10)  # a Tuesday


@pytest.fixture
def world(tmp_path, regua_negativation_provider, collection_backend):
    with SMTPServer() as smtp, Gateway() as gateway:
        db = collection_backend  # a SQLite file, then a PostgreSQL database
        portfolio(db, [maria(), alfa()], [receivable("t-pf", "maria", "400.00", DUE),
                                         receivable("t-pj", "alfa", "12000.00", DUE)])
        provider = regua_negativation_provider
        config = {"notifications": notifications_config(smtp.port, gateway.url, str(tmp_path / "receipts.db")),
                  "negativation": {"http": [provider.connector_config(name="serasa")]}}
        registry = Registry.load(PluginSettings(config=config))
        settings = CollectionSettings(creditor_name=CREDITOR[0], creditor_document=CREDITOR[1],
                                  creditor_address=CREDITOR[2], bureau="serasa")
        runner = Runner(db, policies(), registry, settings)
        yield runner, smtp.mailbox, gateway, provider, db
        runner.close()


def run_days(runner, provider, first: dt.date, last: dt.date, summaries=None) -> None:
    day = first
    while day <= last:
        for hour in (9, 14):
            now = run_time(day, hour)
            provider.now = now.astimezone(dt.timezone.utc)
            summary = runner.run(day, now=now)
            again = runner.run(day, now=now)  # re-running the same moment does nothing
            assert again.planned == {} and again.outcomes == {}, (day, hour, again.to_dict())
            if summaries is not None:
                summaries.append(summary)
        day += dt.timedelta(days=1)


def events(runner, rid):
    return runner.store.history(rid)


def test_the_bundled_reguas_run_end_to_end(world):
    runner, mailbox, gateway, provider, db = world
    run_days(runner, provider, DUE - dt.timedelta(days=6), DUE + dt.timedelta(days=39))

    # B2C: WhatsApp first (the customer's preference), delivered, so the notice is proven.
    pf = {e["key"].split(":")[1]: e for e in events(runner, "t-pf") if e["kind"] in ("delivered", "negativated")}
    assert ["lembrete", "vencimento", "primeira_cobranca", "segunda_cobranca", "proposta_acordo", "aviso",
            "negativacao"] == list(pf)
    assert {request["key"] for request in gateway.requests} == {f"t-pf:{s}" for s in list(pf)[:-1]}
    assert len(gateway.requests) == 6  # each step once, never twice
    notice = dt.datetime.fromisoformat(pf["aviso"]["at"])
    negativated = dt.datetime.fromisoformat(pf["negativacao"]["at"])
    assert (negativated.date() - notice.date()).days >= 10  # the waiting period after the delivered notice
    assert negativated.date() >= DUE + dt.timedelta(days=30)
    includes = [c for c in provider.calls if c[0] == "POST"]
    assert len(includes) == 1

    # B2B: e-mail only. SMTP proves sending, not delivery: no negativation. 12k goes to protest at D+60.
    pj = [e for e in events(runner, "t-pj") if e["kind"] == "sent"]
    assert [e["key"].split(":")[1] for e in pj] == ["lembrete", "vencimento", "primeira_cobranca", "negociacao",
                                                    "aviso"]
    assert len(mailbox.messages) == 5 and len({m["Message-ID"] for m in mailbox.messages}) == 5
    for message in mailbox.messages:  # CDC art. 42-A: the creditor's name and CNPJ in every message
        text = message.get_body(("plain",)).get_content()
        assert CREDITOR[0] in text and CREDITOR[1] in text
    for request in gateway.requests:
        assert CREDITOR[1] in request["body"]["text"]

    # Every contact inside the debtor's window: never on Sundays or holidays, within the hours.
    for rid, uf in (("t-pf", "SP"), ("t-pj", "RJ")):
        for event in events(runner, rid):
            if event["kind"] in ("sent", "delivered"):
                local = dt.datetime.fromisoformat(event["at"]).astimezone(zone_of(uf))
                assert DEFAULT_WINDOWS[uf].allows(local, uf) and not is_holiday(local.date(), uf), event

    # D+60: protest of the larger B2B debt (no prior notice needed: the notary serves it).
    run_days(runner, provider, DUE + dt.timedelta(days=40), DUE + dt.timedelta(days=61))
    kinds = [e["kind"] for e in events(runner, "t-pj")]
    assert "protested" in kinds and "negativated" not in kinds
    assert [c for c in provider.calls if c[0] == "POST"][-1] != includes[0]


def test_full_payment_stops_the_cadence_and_removes_the_record_in_time(world):
    runner, mailbox, gateway, provider, db = world
    run_days(runner, provider, DUE - dt.timedelta(days=6), DUE + dt.timedelta(days=31))
    assert any(e["kind"] == "negativated" for e in events(runner, "t-pf"))
    sent_before = len(gateway.requests)

    paid_on = DUE + dt.timedelta(days=33)  # a Friday
    store = Portfolio(db)
    store.save([Payment("p1", "t-pf", "150.00", DUE + dt.timedelta(days=32)),
                Payment("p2", "t-pf", "250.00", paid_on)])
    store.close()
    run_days(runner, provider, DUE + dt.timedelta(days=32), DUE + dt.timedelta(days=60))

    history = events(runner, "t-pf")
    paid = next(e for e in history if e["kind"] == "paid")
    assert paid["detail"]["paid_on"] == paid_on.isoformat()
    removal = next(e for e in history if e["kind"] == "removal_requested")
    assert removal["code"] == "PAID" and removal["detail"]["late"] is False
    assert dt.date.fromisoformat(removal["at"][:10]) <= dt.date.fromisoformat(removal["detail"]["deadline"])
    assert [c[0] for c in provider.calls].count("DELETE") == 1
    assert len(gateway.requests) == sent_before  # nothing more was sent to a debtor who paid
    assert not any(e["kind"] in ("sent", "delivered") and e["at"] > paid["at"] for e in history)


def test_a_partial_payment_keeps_collecting_the_rest(world):
    runner, mailbox, gateway, provider, db = world
    store = Portfolio(db)
    store.save([Payment("p1", "t-pf", "100.00", DUE - dt.timedelta(days=1))])
    store.close()
    run_days(runner, provider, DUE, DUE + dt.timedelta(days=1))
    message = gateway.requests[-1]["body"]["text"]
    assert "R$ 300,00" in message  # the open amount, not the original one
    assert runner.store.db.execute("select status from receivables where id = 't-pf'").fetchone()[0] == "open"


def test_the_run_summary_counts_what_happened(world):
    runner, mailbox, gateway, provider, db = world
    summaries = []
    run_days(runner, provider, DUE + dt.timedelta(days=15), DUE + dt.timedelta(days=15), summaries)
    first = summaries[0].to_dict()
    assert first["receivables"] == 2 and first["planned"]
    assert sum(first["outcomes"].values()) == sum(first["planned"].values())
    stored = json.loads(runner.store.db.execute("select summary from collection_runs order by id limit 1").fetchone()[0])
    assert stored["planned"] == first["planned"]
