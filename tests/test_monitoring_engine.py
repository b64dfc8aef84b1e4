"""The credit monitor through the server's own MonitoringService (server.services.build_services),
on a real store of each backend (a SQLite file, then PostgreSQL: the `backend` fixture), real
channels (the sandbox .eml outbox, an aiosmtpd SMTP server) and a real
HTTP bureau on 127.0.0.1 — no mocks.

- next_limit: what a policy outcome can do to a limit (property);
- alerts: decided with a limit history row, replayed from the store, conflicts, documents outside
  the portfolio, customers no monitoring policy covers, reviews and blocks that only a person lifts;
- notifications: manager and customer notices, NO_RECIPIENT, rows left pending/sending are sent
  by the next pass under the same idempotency key, never twice;
- re-check: the budget of paid bureau queries, cached reports first and free, segments, dry runs.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import json
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import msgspec
import pytest
from collection_harness import SMTPServer, alfa, maria, notifications_config, receivable
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import LoopbackHTTP, reply_json
from server_harness import ROOT, sandbox_settings

from regua.dsl import monitoring as M
from regua.plugins.builtin.sandbox_bureau import sandbox_document
from regua.plugins.contracts import MonitoringAlert
from regua.portfolio import Portfolio
from regua.portfolio.model import Customer, Payment
from regua.portfolio.monitoring.monitor import AlertConflict, Result, next_limit
from regua.portfolio.monitoring.store import Limit
from regua.server.services import build_services

TODAY = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 15, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
MANAGER = "gerente.alfa@loja.example.com"
BUNDLED_VERSION = next(line for line in (ROOT / "policies" / "monitoramento_credito.regua").read_text().splitlines()
                       if line.startswith("policy ")).split('version "')[1].rstrip('"')
ACTOR = f"policy:monitoramento_credito@{BUNDLED_VERSION}"
TABLES = ("decisions", "limit_changes", "credit_limits", "monitoring_alerts", "monitoring_reviews",
          "monitoring_outbox")


# ---------------------------------------------------------------- next_limit

money = st.decimals(min_value=0, max_value=10**9, places=2)
targets = st.none() | st.decimals(min_value=-10**9, max_value=10**10, places=2) \
    | st.decimals(min_value=-10**3, max_value=10**6, places=6)


@settings(max_examples=300, deadline=None)
@given(amount=money, blocked=st.booleans(), exists=st.booleans(), outcome=st.sampled_from(list(M.ACTIONS)),
       target=targets)
def test_next_limit_moves_only_the_way_the_outcome_says(amount, blocked, exists, outcome, target):
    current = Limit(amount.quantize(Decimal("0.01")), blocked, exists)
    new_amount, new_blocked = next_limit(current, outcome, target)
    assert new_amount >= 0 and new_amount == new_amount.quantize(Decimal("0.01"))
    assert new_amount.as_tuple().exponent == -2, new_amount
    assert new_blocked or not blocked, "no policy outcome lifts a block"
    if outcome == "block":
        assert (new_amount, new_blocked) == (current.amount, True)
    elif outcome in ("keep", "review"):
        assert (new_amount, new_blocked) == (current.amount, current.blocked)
    elif outcome == "reduce":
        assert new_amount <= current.amount and new_blocked == blocked
        if target is not None:
            assert new_amount == min(current.amount, max(target, Decimal(0)).quantize(Decimal("0.01")))
    else:  # raise
        assert new_amount >= current.amount and new_blocked == blocked
        if target is not None:
            assert new_amount == max(current.amount, target.quantize(Decimal("0.01")))


# ---------------------------------------------------------------- a real service


@contextmanager
def service(tmp_path: Path, customers=(), receivables=(), payments=(), policies: dict[str, str] | None = None,
            **sections):
    settings = sandbox_settings(tmp_path, **sections)
    for name, source in (policies or {}).items():
        (Path(settings.policies.folder) / f"{name}.regua").write_text(source, encoding="utf-8")
    services = build_services(settings, today=lambda: TODAY)
    store = Portfolio(settings.store.location)
    for batch in (customers, receivables, payments):
        if batch:
            store.save(list(batch))
    store.close()
    try:
        yield services
    finally:
        services.stop()


def alert(alert_id: str, kind: str, document: str, **fields) -> MonitoringAlert:
    return MonitoringAlert(id=alert_id, kind=kind, bureau="serasa", document=document, occurred_at=NOW, **fields)


def handle(services, item: MonitoringAlert, now: dt.datetime = NOW):
    """Handle an alert and wait for its notifications, sent by the service's own thread: the result
    is then the alert's stored answer, which says what was sent (the answer itself says queued)."""
    result, replayed = services.monitoring.handle(item, msgspec.json.encode(item), now)
    if replayed or not result.notifications:
        return result, replayed
    assert {n["status"] for n in result.notifications} == {"queued"}, result.notifications
    services.monitoring.drain()
    return Result(**services.monitoring.monitor().store.alert(result.alert)["response"]), replayed


def counts(services) -> dict[str, int]:
    db = services.monitoring.monitor().store.db
    return {table: db.execute(f"select count(*) from {table}").fetchone()[0] for table in TABLES}


def outbox(services) -> list[dict]:
    db = services.monitoring.monitor().store.db
    return list(db.query("select * from monitoring_outbox order by key"))


def emails(folder: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(folder.glob("*.eml"))] if folder.exists() else []


ALFA_DOC = "11.222.333/0001-81"  # alfa(), as a bureau writes it


# ---------------------------------------------------------------- alerts


def test_an_alert_is_decided_recorded_with_its_history_row_and_replayed_from_the_store(tmp_path, backend):
    with service(tmp_path, [alfa(manager=MANAGER)]) as services:
        monitor = services.monitoring.monitor()
        monitor.set_limit("alfa", Decimal("40000"), False, "person:ana", "limite inicial", NOW - 10 * DAY)
        negativation = alert("evt-1", "negativation", ALFA_DOC, amount=Decimal("2500.00"), creditor="Banco X")

        result, replayed = handle(services, negativation)
        assert not replayed
        assert (result.status, result.customer_id, result.alert) == ("decided", "alfa", "serasa:evt-1")
        assert (result.policy, result.version, result.outcome) == ("monitoramento_credito", BUNDLED_VERSION, "reduce")
        assert [r["code"] for r in result.reasons] == ["NEGATIVACAO_NOVA"]
        assert result.limit_before["amount"] == "40000.00" and result.limit_after["amount"] == "20000.00"
        assert monitor.store.limit("alfa") == Limit(Decimal("20000.00"), False, True, NOW.isoformat())

        row = monitor.store.history("alfa")[0]
        assert row["id"] == result.limit_change
        assert {k: row[k] for k in ("previous_amount", "amount", "previous_blocked", "blocked", "actor", "source",
                                    "policy", "policy_version", "decision_id", "alert", "reasons")} == {
            "previous_amount": "40000.00", "amount": "20000.00", "previous_blocked": False, "blocked": False,
            "actor": ACTOR, "source": "policy", "policy": "monitoramento_credito", "policy_version": BUNDLED_VERSION,
            "decision_id": result.decision_id, "alert": "serasa:evt-1", "reasons": ["NEGATIVACAO_NOVA"]}

        # the decision is in the decision log like any other, without the document in clear
        db = monitor.store.db
        logged = db.execute("select policy, version, outcome, api_key, input, document_masked, body from decisions"
                            " where id = ?", [result.decision_id]).fetchone()
        assert logged[:4] == ("monitoramento_credito", BUNDLED_VERSION, "reduce", "monitoring")
        assert "11222333000181" not in logged[4] + (logged[5] or "") + logged[6]
        assert json.loads(logged[4])["amount"] == "2500.00" and json.loads(logged[4])["event"] == "negativation"
        assert [n["status"] for n in result.notifications] == ["sent", "sent"]

        before = counts(services)
        again, replayed = handle(services, negativation)
        assert replayed and again.to_dict() == result.to_dict()
        assert counts(services) == before, "a replay writes nothing"
        assert monitor.store.limit("alfa").amount == Decimal("20000.00"), "and does not cut the limit twice"

        changed = msgspec.structs.replace(negativation, amount=Decimal("2600.00"))
        with pytest.raises(AlertConflict) as conflict:
            handle(services, changed)
        assert conflict.value.key == "serasa:evt-1"
        assert counts(services) == before
        # another bureau may use the same id: that is another alert
        other, replayed = handle(services, msgspec.structs.replace(negativation, bureau="spc"))
        assert not replayed and other.alert == "spc:evt-1" and other.decision_id != result.decision_id


def test_alerts_outside_the_portfolio_are_recorded_and_not_decided(tmp_path, backend):
    with service(tmp_path, [alfa()]) as services:
        stranger = sandbox_document("clean", kind="cpf", n=9_001)
        unmatched, replayed = handle(services, alert("evt-u", "protest", stranger, amount=Decimal("10")))
        assert not replayed and unmatched.status == "unmatched" and unmatched.customer_id is None
        assert unmatched.decision_id is None and unmatched.alert == "serasa:evt-u"

        invalid, _ = handle(services, alert("evt-i", "protest", "123.456.789-00", amount=Decimal("10")))
        assert invalid.status == "invalid_document" and invalid.customer_id is None

        assert counts(services) == dict.fromkeys(TABLES, 0) | {"monitoring_alerts": 2}
        again, replayed = handle(services, alert("evt-u", "protest", stranger, amount=Decimal("10")))
        assert replayed and again.to_dict() == unmatched.to_dict()
        with pytest.raises(AlertConflict):
            handle(services, alert("evt-i", "protest", "123.456.789-00", amount=Decimal("11")))


def test_a_customer_no_monitoring_policy_covers_is_not_decided(tmp_path, backend):
    joao = Customer(id="joao", document=sandbox_document("clean", kind="cpf", n=9_002), name="João Lima", uf="SP")
    routes = {"atacado": "monitoramento_credito", "varejo": "politica_que_nao_existe", "pf": "credito_b2c"}
    with service(tmp_path, [alfa(), maria(), joao], monitoring={"policies": routes}) as services:
        monitor = services.monitoring.monitor()
        for customer in ("alfa", "maria", "joao"):
            monitor.set_limit(customer, Decimal("1000"), False, "person:ana", "inicial", NOW - DAY)
        before = counts(services)
        # maria (varejo) routes to a policy that is not loaded; joao (default, pf) to a credit policy
        for n, (customer, document) in enumerate((("maria", "529.982.247-25"), ("joao", joao.document))):
            result, _ = handle(services, alert(f"evt-{n}", "protest", document, amount=Decimal("5000")))
            assert (result.status, result.customer_id, result.decision_id) == ("no_policy", customer, None)
            assert monitor.store.limit(customer) == Limit(Decimal("1000.00"), False, True, (NOW - DAY).isoformat())
        assert counts(services) == before | {"monitoring_alerts": before["monitoring_alerts"] + 2}
        # alfa's segment is routed to the monitoring policy: decided (a protest blocks)
        result, _ = handle(services, alert("evt-a", "protest", ALFA_DOC, amount=Decimal("5000")))
        assert (result.status, result.outcome, result.limit_after["blocked"]) == ("decided", "block", True)


def test_reviews_and_blocks_are_lifted_by_a_person_never_by_a_policy(tmp_path, backend):
    # three purchase cycles paid on time: the re-check's good-payer rule wants to raise the limit
    dues = [TODAY - d * DAY for d in (100, 70, 40)]
    receivables = [receivable(f"t{i}", "alfa", "5000.00", due, status="paid") for i, due in enumerate(dues)]
    payments = [Payment(f"p{i}", f"t{i}", "5000.00", due - 2 * DAY) for i, due in enumerate(dues)]
    with service(tmp_path, [alfa(manager=MANAGER)], receivables, payments) as services:
        monitor = services.monitoring.monitor()
        monitor.set_limit("alfa", Decimal("40000"), False, "person:ana", "inicial", NOW - 150 * DAY)

        blocked, _ = handle(services, alert("evt-1", "protest", ALFA_DOC, amount=Decimal("3200")), NOW - 120 * DAY)
        assert blocked.outcome == "block" and not blocked.review
        assert monitor.store.limit("alfa")[:2] == (Decimal("40000.00"), True)

        summary = services.monitoring.recheck()  # a raise: the amount goes up, the block stays
        assert summary.outcomes == {"raise": 1} and summary.raised == 1
        assert monitor.store.limit("alfa")[:2] == (Decimal("48000.00"), True)

        review, _ = handle(services, alert("evt-2", "negativation", ALFA_DOC, amount=Decimal("300"), creditor="B"))
        assert review.outcome == "review" and review.review and review.limit_change is None
        assert [(r["customer_id"], r["decision_id"], r["reasons"]) for r in monitor.store.reviews()] == [
            ("alfa", review.decision_id, ["NEGATIVACAO_PEQUENA"])]
        assert [n["role"] for n in review.notifications] == ["manager"]

        reduced, _ = handle(services, alert("evt-3", "negativation", ALFA_DOC, amount=Decimal("2500"), creditor="C"))
        kept, _ = handle(services, alert("evt-4", "registration_change", ALFA_DOC, registration_status="active"))
        assert (reduced.outcome, kept.outcome) == ("reduce", "keep")
        assert monitor.store.limit("alfa")[:2] == (Decimal("24000.00"), True)
        assert all(row["blocked"] for row in monitor.store.history("alfa")[:3])
        assert len(monitor.store.reviews()) == 1, "the reduce did not close the review"

        before, after, change, closed = monitor.set_limit("alfa", Decimal("30000"), False, "person:ana@loja",
                                                          "conversou com o cliente", NOW)
        assert (before.blocked, after.blocked, after.amount, closed) == (True, False, Decimal("30000.00"), 1)
        assert monitor.store.reviews() == []
        closed_row = monitor.store.reviews(open_only=False)[0]
        assert (closed_row["closed_by"], closed_row["closed_at"]) == ("person:ana@loja", NOW.isoformat())
        row = monitor.store.history("alfa")[0]
        assert (row["id"], row["actor"], row["source"], row["reasons"], row["note"], row["previous_blocked"]) == (
            change, "person:ana@loja", "person", ["MANUAL"], "conversou com o cliente", True)
        # a person may also just lift the block, keeping the amount
        monitor.set_limit("alfa", Decimal("30000"), True, "person:ana@loja", "bloqueio", NOW)
        _, after, _, _ = monitor.set_limit("alfa", Decimal("30000"), False, "person:ana@loja", "desbloqueio", NOW)
        assert after[:2] == (Decimal("30000.00"), False)


# ---------------------------------------------------------------- notifications


def test_manager_and_customer_notices_go_to_the_outbox_and_the_customer_only_hears_of_changes(tmp_path, backend):
    bia = Customer(id="bia", document=sandbox_document("clean", kind="cnpj", n=9_003), name="Bia Modas Ltda",
                   uf="SP", segment="atacado", email="bia@modas.example.com", manager=MANAGER)
    with service(tmp_path, [alfa(manager=MANAGER), bia]) as services:
        monitor = services.monitoring.monitor()
        monitor.set_limit("alfa", Decimal("40000"), False, "person:ana", "inicial", NOW - DAY)
        result, _ = handle(services, alert("evt-1", "negativation", ALFA_DOC, amount=Decimal("2500"), creditor="X"))
        assert sorted((n["role"], n["channel"], n["status"]) for n in result.notifications) == [
            ("customer", "outbox", "sent"), ("manager", "outbox", "sent")]
        assert [(r["role"], r["status"]) for r in monitor.store.notifications(result.decision_id)] == [
            ("customer", "sent"), ("manager", "sent")]
        messages = {m["To"]: m for m in emails(tmp_path / "outbox")}
        assert set(messages) == {MANAGER, "financeiro@alfa.example.com"}
        manager_text = messages[MANAGER].get_body(("plain",)).get_content()
        assert "Comercial Alfa" in manager_text and result.decision_id in manager_text

        # bia has no limit yet: the policy reduces "to half of nothing" — nothing changes, so only
        # the manager hears about it, although the policy names both
        result, _ = handle(services, alert("evt-2", "negativation", bia.document, amount=Decimal("2500"), creditor="X"))
        assert result.outcome == "reduce" and result.limit_change is None
        assert [n["role"] for n in result.notifications] == ["manager"]
        assert [r["role"] for r in monitor.store.notifications(result.decision_id)] == ["manager"]
        assert len(emails(tmp_path / "outbox")) == 3


def test_a_manager_without_an_address_is_a_no_recipient_failure(tmp_path, backend):
    no_sandbox = {"sandbox": False,
                  "plugins": {"config": {"notifications": {"outbox": {"directory": str(tmp_path / "outbox")}}}}}
    with service(tmp_path, [alfa()], **no_sandbox) as services:  # alfa() names no account manager
        monitor = services.monitoring.monitor()
        result, _ = handle(services, alert("evt-1", "negativation", ALFA_DOC, amount=Decimal("300"), creditor="X"))
        assert result.outcome == "review"
        assert result.notifications == [{"role": "manager", "channel": None, "status": "failed",
                                         "error": "NO_RECIPIENT"}]
        [row] = outbox(services)
        assert (row["role"], row["status"], row["error"], row["attempts"]) == ("manager", "failed", "NO_RECIPIENT", 1)
        assert monitor.send(NOW) == [] and outbox(services)[0]["attempts"] == 1  # failed: not retried
        assert emails(tmp_path / "outbox") == []
        # the stored answer of the alert shows the failure too
        again, replayed = handle(services, alert("evt-1", "negativation", ALFA_DOC, amount=Decimal("300"),
                                                 creditor="X"))
        assert replayed and again.notifications == result.notifications

    other = tmp_path / "with_default"
    no_sandbox["plugins"]["config"]["notifications"]["outbox"]["directory"] = str(other / "outbox")
    with service(other, [alfa()], monitoring={"manager_email": "credito@loja.example.com"}, **no_sandbox) as services:
        # (evt-2: on PostgreSQL both services share the test's database, where evt-1 is answered already)
        result, _ = handle(services, alert("evt-2", "negativation", ALFA_DOC, amount=Decimal("300"), creditor="X"))
        assert [n["status"] for n in result.notifications] == ["sent"]
        assert [m["To"] for m in emails(other / "outbox")] == ["credito@loja.example.com"]


def test_a_row_left_pending_or_sending_is_sent_by_the_next_pass_under_the_same_key(tmp_path, backend):
    with service(tmp_path, [alfa(manager=MANAGER)]) as services:
        monitor = services.monitoring.monitor()
        monitor.set_limit("alfa", Decimal("40000"), False, "person:ana", "inicial", NOW - DAY)
        result, _ = handle(services, alert("evt-1", "negativation", ALFA_DOC, amount=Decimal("2500"), creditor="X"))
        keys = [row["key"] for row in outbox(services)]
        assert keys == [f"monitoring:{result.decision_id}:customer", f"monitoring:{result.decision_id}:manager"]
        channel = monitor.channels["email"]
        receipts = {key: channel.store.get(channel.name, key) for key in keys}
        assert all(r is not None and r.status == "sent" for r in receipts.values())
        files = sorted(p.name for p in (tmp_path / "outbox").glob("*.eml"))
        assert len(files) == 2

        # a crash after the channel sent them, before the rows said so
        db = monitor.store.db
        db.execute("update monitoring_outbox set status = 'sending' where key = ?", [keys[1]])
        db.execute("update monitoring_outbox set status = 'pending', sent_at = null where key = ?", [keys[0]])
        for path in (tmp_path / "outbox").glob("*.eml"):
            path.unlink()  # anything the channel writes again would show up here
        left = outbox(services)
        services.monitoring.recheck(dry_run=True)  # a dry run does not send what was left behind
        assert outbox(services) == left
        sent = monitor.send(NOW + DAY)
        assert sorted((n["role"], n["status"]) for n in sent) == [("customer", "sent"), ("manager", "sent")]
        assert [(r["status"], r["attempts"]) for r in outbox(services)] == [("sent", 2), ("sent", 2)]
        assert list((tmp_path / "outbox").glob("*.eml")) == [], "the channel did not send them twice"
        assert {key: channel.store.get(channel.name, key) for key in keys} == receipts
        assert monitor.send(NOW + DAY) == []  # nothing is left


def test_a_notification_the_smtp_server_missed_is_delivered_once_by_the_next_pass(tmp_path, backend):
    smtp = SMTPServer()  # not listening yet
    config = notifications_config(smtp.port, None, str(tmp_path / "receipts.db"))
    config["outbox"] = {"enabled": False}
    config["email"]["from_address"] = "credito@loja.example.com"
    with service(tmp_path, [alfa(manager=MANAGER)], plugins={"config": {"notifications": config}}) as services:
        monitor = services.monitoring.monitor()
        result, _ = handle(services, alert("evt-1", "negativation", ALFA_DOC, amount=Decimal("300"), creditor="X"))
        [notice] = result.notifications
        assert (notice["role"], notice["channel"], notice["status"]) == ("manager", "email", "failed")
        [row] = outbox(services)
        assert (row["status"], row["attempts"]) == ("pending", 1)  # failed once: tried again later
        with smtp:
            sent = monitor.send(NOW)
            assert [(n["role"], n["status"]) for n in sent] == [("manager", "sent")]
            # the process "crashes" after sending: the row is still 'sending'
            monitor.store.db.execute("update monitoring_outbox set status = 'sending' where key = ?", [row["key"]])
            assert [n["status"] for n in monitor.send(NOW)] == ["sent"]
            assert monitor.send(NOW) == []
        [message] = smtp.mailbox.messages
        assert message["To"] == MANAGER
        digest = hashlib.sha256(f"email\0{row['key']}".encode()).hexdigest()[:32]
        assert message["Message-ID"] == f"<{digest}@loja.example.com>"  # derived from the outbox key
        assert outbox(services)[0]["status"] == "sent"


# ---------------------------------------------------------------- re-check with a budget

RECHECK_POLICY = '''policy revisao_serasa kind monitoring version "1.0.0"
description "Revisão da carteira com o relatório do birô"

let relatorio = bureau.serasa(document)

rule score_baixo
  when event == "recheck" and relatorio.score.value < 500
  reduce "SCORE_BAIXO" "Score abaixo de 500 no birô"
  set new_limit = limit * 50%

default keep

output new_limit = limit
'''


class Bureau(LoopbackHTTP):
    """A bureau answering BureauReport JSON over HTTP on 127.0.0.1; records every request path."""

    def __init__(self):
        self.paths: list[str] = []
        bureau = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                bureau.paths.append(self.path)
                reply_json(self, {"score": {"value": 420, "bureau": "serasa"}, "registration_status": "active",
                                  "restrictions": [], "inquiries": []})

            def log_message(self, *args):  # the path holds the document
                pass

        super().__init__(Handler, "fake-bureau")
        self.url = self.base_url

    def documents(self) -> list[str]:
        return [path.strip("/") for path in self.paths]


def portfolio_for_recheck() -> list[Customer]:
    varejo = [Customer(id=f"v{i}", document=sandbox_document("clean", kind="cpf", n=9_100 + i), name=f"Varejo {i}",
                       uf="SP", segment="varejo") for i in range(1, 6)]
    atacado = [Customer(id=f"a{i}", document=sandbox_document("clean", kind="cnpj", n=9_200 + i),
                        name=f"Atacado {i} Ltda", uf="RJ", segment="atacado") for i in range(1, 3)]
    interno = [Customer(id="i1", document=sandbox_document("clean", kind="cnpj", n=9_301), name="Interna Ltda",
                        uf="SP", segment="interno")]
    return varejo + atacado + interno


def test_recheck_spends_at_most_its_budget_and_evaluates_cached_customers_first_for_free(tmp_path, backend):
    customers = portfolio_for_recheck()
    doc = {c.id: c.document for c in customers}
    with Bureau() as bureau, service(
            tmp_path, customers, policies={"revisao_serasa": RECHECK_POLICY},
            monitoring={"policies": {"pf": "revisao_serasa", "pj": "revisao_serasa", "interno": "credito_b2b"}},
            plugins={"config": {"http_bureau": {"bureaus": [
                {"name": "serasa", "base_url": bureau.url, "ttl": 3600, "cost": "2.50", "retries": 0}]}}}) as services:
        assert services.policies.active["revisao_serasa"].prepared.meta.kind == "monitoring"
        monitor = services.monitoring.monitor()
        for c in customers:
            monitor.set_limit(c.id, Decimal("10000"), False, "person:ana", "inicial", NOW - 200 * DAY)
        store = monitor.store

        def amounts() -> dict[str, Decimal]:
            return {c.id: store.limit(c.id).amount for c in customers}

        def changed_since(change_id: int) -> list[str]:
            rows = store.db.execute("select customer_id, actor from limit_changes where id > ? order by id",
                                    [change_id]).fetchall()
            assert all(actor == "policy:revisao_serasa@1.0.0" for _, actor in rows)
            return [customer for customer, _ in rows]

        def last_change() -> int:
            return store.db.execute("select max(id) from limit_changes").fetchone()[0]

        # 5 customers in the segment need a paid query; the budget pays for 2
        mark = last_change()
        summary = services.monitoring.recheck(segment="varejo", budget=2)
        assert (summary.customers, summary.evaluated, summary.paid_queries, summary.cached_queries) == (5, 2, 2, 0)
        assert summary.stopped_by_budget and summary.not_reached == 3
        assert (summary.cost, summary.outcomes, summary.reduced) == ("5.00", {"reduce": 2}, 2)
        assert bureau.documents() == [doc["v1"], doc["v2"]]
        assert changed_since(mark) == ["v1", "v2"]
        assert amounts() == dict.fromkeys(doc, Decimal("10000.00")) | dict.fromkeys(("v1", "v2"), Decimal("5000.00"))

        # budget 0: exactly the customers whose reports are cached, at no cost
        mark = last_change()
        summary = services.monitoring.recheck(segment="varejo", budget=0)
        assert (summary.evaluated, summary.paid_queries, summary.cached_queries, summary.cost) == (2, 0, 2, "0")
        assert summary.stopped_by_budget and summary.not_reached == 3
        assert changed_since(mark) == ["v1", "v2"] and len(bureau.paths) == 2
        assert (amounts()["v1"], amounts()["v2"], amounts()["v3"]) == (Decimal("2500.00"),) * 2 + (Decimal("10000.00"),)

        # v5's report is cached too (an order's credit check, say): cached ones go first, then
        # the paid pass in id order until the budget is spent
        services.monitoring.connectors.get("bureau.serasa")(doc["v5"])
        assert len(bureau.paths) == 3
        mark = last_change()
        summary = services.monitoring.recheck(segment="varejo", budget=1)
        assert (summary.evaluated, summary.paid_queries, summary.cached_queries, summary.cost) == (4, 1, 3, "2.50")
        assert summary.stopped_by_budget and summary.not_reached == 1
        assert changed_since(mark) == ["v1", "v2", "v5", "v3"]
        assert bureau.documents()[3:] == [doc["v3"]]

        # a budget that suffices: nothing stops, nothing is left
        summary = services.monitoring.recheck(segment="varejo", budget=5)
        assert (summary.evaluated, summary.paid_queries, summary.cached_queries) == (5, 1, 4)
        assert not summary.stopped_by_budget and summary.not_reached == 0
        assert bureau.documents()[4:] == [doc["v4"]]


def test_recheck_segments_and_dry_runs(tmp_path, backend):
    customers = portfolio_for_recheck()
    doc = {c.id: c.document for c in customers}
    with Bureau() as bureau, service(
            tmp_path, customers, policies={"revisao_serasa": RECHECK_POLICY},
            monitoring={"policies": {"pf": "revisao_serasa", "pj": "revisao_serasa", "interno": "credito_b2b"},
                        "recheck_budget": 3},
            plugins={"config": {"http_bureau": {"bureaus": [
                {"name": "serasa", "base_url": bureau.url, "ttl": 3600, "cost": "2.50", "retries": 0}]}}}) as services:
        monitor = services.monitoring.monitor()
        for c in customers:
            monitor.set_limit(c.id, Decimal("10000"), False, "person:ana", "inicial", NOW - 200 * DAY)
        before = counts(services)
        limits = {c.id: monitor.store.limit(c.id) for c in customers}

        seen = []
        dry = services.monitoring.recheck(segment="atacado", dry_run=True, progress=lambda *a: seen.append(a))
        assert (dry.customers, dry.evaluated, dry.outcomes, dry.dry_run) == (2, 2, {"reduce": 2}, True)
        assert (dry.limit_changes, dry.reduced, dry.paid_queries, dry.budget) == (2, 2, 2, 3)
        assert seen == [(1, 2), (2, 2)]
        assert counts(services) == before, "a dry run writes no decision, no limit change, no notification"
        assert {c.id: monitor.store.limit(c.id) for c in customers} == limits
        assert sorted(bureau.documents()) == sorted([doc["a1"], doc["a2"]])  # only the segment was looked up

        # the real run finds the dry run's reports in the cache
        real = services.monitoring.recheck(segment="atacado")
        assert (real.evaluated, real.paid_queries, real.cached_queries, real.limit_changes) == (2, 0, 2, 2)
        assert counts(services)["decisions"] == before["decisions"] + 2
        assert {c.id: monitor.store.limit(c.id).amount for c in customers if c.segment == "atacado"} == {
            "a1": Decimal("5000.00"), "a2": Decimal("5000.00")}
        assert all(monitor.store.limit(c.id).amount == Decimal("10000.00") for c in customers
                   if c.segment != "atacado")

        # the whole portfolio: the budget from the settings; a segment routed to a credit policy has no
        # monitoring policy; progress counts every customer of the re-check
        seen.clear()
        everyone = services.monitoring.recheck(progress=lambda *a: seen.append(a))
        assert (everyone.customers, everyone.no_policy, everyone.budget) == (8, 1, 3)
        assert (everyone.evaluated, everyone.cached_queries, everyone.paid_queries) == (5, 2, 3)
        assert everyone.stopped_by_budget and everyone.not_reached == 2
        assert all(total == 8 for _, total in seen) and seen[-1][0] == 6
