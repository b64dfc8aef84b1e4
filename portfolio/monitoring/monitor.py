"""The monitor: turns an alert (or a re-check) into a monitoring decision and carries it out.

    evaluate  -> the customer's monitoring policy, with the alert, the limit and the payment behaviour
    commit    -> one transaction: the decision (recorded like any other), the alert (idempotency),
                 the limit change and its history row, the review, the notifications to send
    send      -> the notifications, each with its outbox key as the channel's idempotency key: at
                 once, or handed to `defer` (the server's sender thread) so that rendering and
                 delivering a message is not on the alert's path (its answer then says `queued`,
                 and the stored answer, read by replays, is updated once it was sent)

Evaluation happens outside the transaction (a bureau lookup may be slow); if another request
committed the same alert meanwhile, its answer wins and this evaluation is dropped.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

from regua import dialect
from regua.dsl import monitoring as M
from regua.dsl.values import normalize_cnpj, normalize_cpf
from regua.engine.connectors import Connectors
from regua.engine.decision import Decision
from regua.engine.prepared import PreparedPolicy

from .features import customer_behaviour
from .settings import MonitoringSettings
from .store import Limit, MonitoringStore, days_since, now_iso

log = logging.getLogger("regua.monitoring")

#: (db inside the transaction, policy, decision, inputs, elapsed ms) -> decision id. The server
#: records monitoring decisions in its decision log, like every other decision.
RecordDecision = Callable[..., str]
#: (now, notification keys, alert key or None) -> None: send them soon, with Monitor.deliver.
Defer = Callable[[dt.datetime, list[str], "str | None"], None]

EVENT_TEXT = {
    "negativation": "nova negativação", "protest": "novo protesto", "score_change": "mudança de score",
    "inquiry": "nova consulta ao CPF/CNPJ", "registration_change": "mudança cadastral",
    "recheck": "revisão periódica da carteira",
}
ACTION_TEXT = {"keep": "limite mantido", "raise": "limite aumentado", "review": "revisão pedida",
               "reduce": "limite reduzido", "block": "limite bloqueado"}


def normalize_document(text: str) -> str | None:
    """The compact CPF/CNPJ as the portfolio keeps it, or None when it is not a valid one."""
    raw = text.strip().upper()
    return normalize_cpf(raw) or normalize_cnpj(raw)


#: Largest amount an alert may carry (R$ 10 trillion): beyond any real negativation or protest.
MAX_ALERT_AMOUNT = Decimal("1e13")


def alert_problems(alert) -> list[tuple[str, str]]:
    """(field, message) for what msgspec's types cannot say about an alert (empty: fine)."""
    problems = []
    if not alert.id.strip():
        problems.append(("id", "Expected the bureau's event id, not an empty text"))
    if alert.occurred_at.tzinfo is None:
        problems.append(("occurred_at", "Expected a datetime with a time zone"))
    if alert.amount is not None and not (alert.amount.is_finite() and 0 <= alert.amount < MAX_ALERT_AMOUNT):
        # NaN, Infinity or 1e100 would reach the limit arithmetic
        problems.append(("amount", "Expected an amount of 0 or more, below 1e13"))
    return problems


def next_limit(current: Limit, outcome: str, new_limit: Decimal | None) -> tuple[Decimal, bool]:
    """What the limit becomes. A policy lowers it only with `reduce`, raises it only with `raise`,
    and blocks it with `block`; no policy lifts a block (a person does)."""
    amount, blocked = current.amount, current.blocked
    if outcome == "block":
        return amount, True
    if new_limit is not None and outcome in M.LIMIT_ACTIONS:
        target = max(Decimal(new_limit), Decimal(0)).quantize(Decimal("0.01"))
        amount = min(amount, target) if outcome == "reduce" else max(amount, target)
    return amount, blocked


def review_required(decision: Decision) -> bool:
    return decision.outcome == "review" or any(r.outcome == "review" for r in decision.reasons)


@dataclass
class Result:
    """What the monitor did with one alert or one customer's re-check."""

    status: str  # decided, unmatched (no such customer), no_policy, invalid_document
    customer_id: str | None = None
    alert: str | None = None
    decision_id: str | None = None
    policy: str | None = None
    version: str | None = None
    outcome: str | None = None
    reasons: list[dict] = field(default_factory=list)
    limit_before: dict | None = None
    limit_after: dict | None = None
    limit_change: int | None = None
    review: bool = False
    notifications: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


class Monitor:
    def __init__(self, store: MonitoringStore, policies: Callable[[], dict[str, PreparedPolicy]],
                 connectors: Connectors | None, channels: dict, settings: MonitoringSettings,
                 record_decision: RecordDecision, creditor: tuple[str, str] = ("", ""), sink=None):
        self.store = store
        self.policies = policies
        self.connectors = connectors
        self.channels = {}
        for channel in channels.values():
            self.channels.setdefault(getattr(channel, "channel", channel.name), channel)
        self.settings = settings
        self.record_decision = record_decision
        self.creditor = creditor
        self.sink = sink

    # ---- what the policy reads ----
    def policy_for(self, customer: dict) -> PreparedPolicy | None:
        routes = self.settings.policies
        name = routes.get(customer.get("segment") or "default") or routes.get(customer["kind"])
        prepared = self.policies().get(name) if name else None
        return prepared if prepared is not None and prepared.meta.kind == "monitoring" else None

    def inputs(self, customer: dict, as_of: dt.date, alert=None, behaviour: dict | None = None) -> dict:
        """The policy's input; `behaviour` when the caller computed it in bulk (a re-check)."""
        limit = self.store.limit(customer["id"])
        inputs = {name: default for name, (_t, default, _d) in M.INPUT.items()}
        inputs.update(behaviour if behaviour is not None else customer_behaviour(self.store.db, customer["id"], as_of))
        inputs.update(document=customer["document"], person=customer["kind"], segment=customer["segment"] or "default",
                      uf=customer["uf"], limit=limit.amount, has_limit=limit.exists, limit_blocked=limit.blocked,
                      days_since_limit_change=days_since(limit.changed_at, as_of))
        if alert is not None:
            inputs.update(event=alert.kind, bureau=alert.bureau, creditor=alert.creditor, inquirer=alert.inquirer)
            if alert.amount is not None:
                inputs["amount"] = Decimal(alert.amount).quantize(Decimal("0.01"))
            if alert.score_before is not None:
                inputs["score_before"] = alert.score_before
            if alert.score_after is not None:
                inputs["score_after"] = alert.score_after
            if alert.score_before is not None and alert.score_after is not None:
                inputs["score_change"] = alert.score_after - alert.score_before
            if alert.registration_status:
                inputs["registration_status"] = alert.registration_status
        return inputs

    def evaluate(self, prepared: PreparedPolicy, inputs: dict, as_of: dt.date,
                 connectors: Connectors | None = None) -> Decision:
        return prepared.evaluate_validated(inputs, connectors=connectors or self.connectors, trace="rules",
                                           as_of=as_of)

    # ---- alerts ----
    def handle_alert(self, alert, body_hash: str, now: dt.datetime, as_of: dt.date,
                     defer: Defer | None = None) -> tuple[Result, bool]:
        """(result, replayed). An alert already handled returns the stored result (replayed).
        With `defer`, its notifications are queued for it rather than sent now."""
        key = f"{alert.bureau}:{alert.id}"
        stored = self.store.alert(key)
        if stored is not None:
            return self._replay(stored, body_hash), True
        document = normalize_document(alert.document)
        customer = self.store.customer_by_document(document) if document else None
        if customer is None:
            result = Result("unmatched" if document else "invalid_document", alert=key)
            return self._commit_alert_only(key, alert, body_hash, now, result)
        prepared = self.policy_for(customer)
        if prepared is None:
            result = Result("no_policy", customer_id=customer["id"], alert=key)
            return self._commit_alert_only(key, alert, body_hash, now, result)
        started = time.perf_counter()
        inputs = self.inputs(customer, as_of, alert)
        decision = self.evaluate(prepared, inputs, as_of)
        elapsed = (time.perf_counter() - started) * 1000
        return self.commit(customer, prepared, inputs, decision, now, elapsed, alert=alert, alert_key=key,
                           body_hash=body_hash, defer=defer)

    def _replay(self, stored: dict, body_hash: str) -> Result:
        if stored["body_hash"] != body_hash:
            raise AlertConflict(stored["key"])
        return Result(**stored["response"])

    def _commit_alert_only(self, key, alert, body_hash, now, result: Result) -> tuple[Result, bool]:
        with dialect.transaction(self.store.db) as db:
            stored = self.store.alert(key, db)
            if stored is not None:
                return self._replay(stored, body_hash), True
            self.store.record_alert(db, key, alert, result.customer_id, body_hash, now, result.status, None,
                                    result.to_dict())
        log.info("monitoring alert %s (%s): %s", key, alert.kind, result.status)
        return result, False

    # ---- carrying a decision out ----
    def plan(self, customer: dict, decision: Decision, current: Limit) -> tuple[Decimal, bool, list[str]]:
        """(amount, blocked, recipients) the decision asks for."""
        new_limit = decision.outputs.get(M.NEW_LIMIT)
        amount, blocked = next_limit(current, decision.outcome, new_limit)
        recipients = [r for r in (decision.outputs.get(M.NOTIFY) or []) if r in M.RECIPIENTS]
        return amount, blocked, list(dict.fromkeys(recipients))

    def commit(self, customer: dict, prepared: PreparedPolicy, inputs: dict, decision: Decision, now: dt.datetime,
               elapsed_ms: float, *, alert=None, alert_key: str | None = None, body_hash: str = "",
               dry_run: bool = False, defer: Defer | None = None) -> tuple[Result, bool]:
        reasons = [{"code": r.code, "message": r.message, "outcome": r.outcome} for r in decision.reasons if r.code]
        codes = [r["code"] for r in reasons]
        result = Result("decided", customer_id=customer["id"], alert=alert_key, policy=prepared.name,
                        version=prepared.version, outcome=decision.outcome, reasons=reasons,
                        review=review_required(decision))
        if dry_run:
            current = self.store.limit(customer["id"])
            amount, blocked, _ = self.plan(customer, decision, current)
            result.limit_before, result.limit_after = current.to_dict(), Limit(amount, blocked, True).to_dict()
            return result, False
        keys = []
        with dialect.transaction(self.store.db) as db:
            if alert_key is not None:
                stored = self.store.alert(alert_key, db)
                if stored is not None:  # handled by someone else while we evaluated
                    return self._replay(stored, body_hash), True
            current = self.store.limit(customer["id"], db)
            amount, blocked, recipients = self.plan(customer, decision, current)
            decision_id = self.record_decision(db, prepared, decision, inputs, elapsed_ms)
            result.decision_id = decision_id
            actor = f"policy:{prepared.name}@{prepared.version}"
            change = self.store.change_limit(db, customer["id"], amount, blocked, now, actor=actor, source="policy",
                                             reasons=codes, policy=prepared.name, version=prepared.version,
                                             decision_id=decision_id, alert=alert_key) \
                if (amount, blocked) != (current.amount, current.blocked) else None
            after = self.store.limit(customer["id"], db)
            result.limit_before, result.limit_after, result.limit_change = current.to_dict(), after.to_dict(), change
            if result.review:
                self.store.open_review(db, customer["id"], decision_id, codes, now)
            for role in recipients:
                if role == "customer" and change is None:
                    continue  # the customer hears about changes to their limit, not about internal reviews
                key = f"monitoring:{decision_id}:{role}"
                self.store.add_notification(db, key, decision_id, customer["id"], role, *self._message(
                    role, customer, inputs, decision, current, after, decision_id, prepared))
                keys.append(key)
            if alert_key is not None:
                self.store.record_alert(db, alert_key, alert, customer["id"], body_hash, now, "decided", decision_id,
                                        result.to_dict())
        deferred = defer is not None and bool(keys)
        if deferred:
            result.notifications = [{"role": key.rsplit(":", 1)[1], "channel": None, "status": "queued",
                                     "error": None} for key in keys]
        else:
            result.notifications = self.send(now, keys)
        if alert_key is not None and result.notifications:  # the stored answer shows what was sent
            self.store.db.execute("update monitoring_alerts set response = ? where key = ?",
                                  [json.dumps(result.to_dict(), ensure_ascii=False), alert_key])
        if deferred:  # after the stored answer says queued: the sender's update comes after it
            defer(now, keys, alert_key)
        if change is not None and self.sink is not None:
            self.sink({"type": "limit_changed", "customer_id": customer["id"], "decision_id": decision_id,
                       "before": current.to_dict(), "after": after.to_dict(), "reasons": codes})
        log.info("monitoring decision %s: customer %s %s -> %s", decision_id, customer["id"], decision.outcome,
                 "changed" if change else "unchanged")
        return result, False

    def _message(self, role, customer, inputs, decision, before: Limit, after: Limit, decision_id, prepared):
        if role == "manager":
            context = {"cliente": customer["name"], "cliente_id": customer["id"],
                       "evento_texto": EVENT_TEXT.get(inputs["event"], inputs["event"]),
                       "acao_texto": ACTION_TEXT.get(decision.outcome, decision.outcome),
                       "limite_anterior": str(before.amount), "limite_novo": str(after.amount),
                       "bloqueado": after.blocked, "revisao": review_required(decision),
                       "motivos": [{"codigo": r.code, "mensagem": r.message} for r in decision.reasons if r.code],
                       "decisao": decision_id, "politica": prepared.name, "versao": prepared.version}
            return "monitoramento_gerente", context
        greeting = customer["name"].split()[0] if customer["kind"] == "pf" else customer["name"]
        return "limite_atualizado", {"nome": greeting, "limite_anterior": str(before.amount),
                                     "limite_novo": str(after.amount), "bloqueado": after.blocked}

    # ---- notifications ----
    def deliver(self, now: dt.datetime, keys: list[str], alert_key: str | None = None) -> list[dict]:
        """Send notifications queued by an alert's commit (the server's sender thread calls it),
        and put what was sent in the alert's stored answer."""
        sent = self.send(now, keys)
        if alert_key is not None and sent:
            with dialect.transaction(self.store.db) as db:
                stored = self.store.alert(alert_key, db)
                if stored is not None:
                    response = dict(stored["response"], notifications=sent)
                    db.execute("update monitoring_alerts set response = ? where key = ?",
                               [json.dumps(response, ensure_ascii=False), alert_key])
        return sent

    def send(self, now: dt.datetime, keys: list[str] | None = None) -> list[dict]:
        """Send pending notifications (these keys, or every one left by an earlier pass).

        On PostgreSQL several processes send at once: each notification is claimed first
        (store.claim_notification) and sent by the one that claimed it. A pass over every pending
        notification then takes over those of processes that died, and waits for the live ones,
        so that nothing is left behind when it returns."""
        out = self._send(now, keys)
        if self.store.postgres and keys is None:
            while self.store.notifications_held_elsewhere(self.settings.max_attempts):
                time.sleep(0.1)
                out += self._send(now, None)
        return out

    def _send(self, now: dt.datetime, keys: list[str] | None) -> list[dict]:
        from regua.plugins.contracts import Notification  # plugins depend on the engine, not the other way round

        out = []
        done = {"claimed_by": None} if self.store.postgres else {}  # the claim ends with the outcome
        for row in self.store.pending_notifications(self.settings.max_attempts, keys):
            if self.store.postgres:
                claimed = self.store.claim_notification(row["key"])
                if claimed is None:
                    continue  # another live process is sending it
                if claimed == "sending":  # its sender died mid-send: free the channel's claim on the key
                    self._release_channel_claims(row["key"])
            customer = self.store.customer(row["customer_id"])
            chosen = self._route(row["role"], customer) if customer else None
            attempts = (row["attempts"] or 0) + 1
            if chosen is None:
                self.store.notification_update(row["key"], status="failed", attempts=attempts, error="NO_RECIPIENT",
                                               **done)
                out.append({"role": row["role"], "channel": None, "status": "failed", "error": "NO_RECIPIENT"})
                continue
            kind, channel, recipient = chosen
            self.store.notification_update(row["key"], status="sending", attempts=attempts, channel=channel.name)
            context = json.loads(row["context"])
            for name in ("limite_anterior", "limite_novo"):
                context[name] = Decimal(context[name])
            try:
                receipt = channel.send(Notification(
                    channel=kind, recipient=recipient, template=row["template"], context=context,
                    idempotency_key=row["key"], creditor_name=self.creditor[0], creditor_document=self.creditor[1]))
                status, error = ("failed", receipt.error.split(":")[0] or "FAILED") if receipt.status == "failed" \
                    else (receipt.status, None)
            except Exception as failure:  # noqa: BLE001 — a channel failure is recorded, never lost
                status, error = "failed", type(failure).__name__
            final = status if status != "failed" or attempts >= self.settings.max_attempts else "pending"
            self.store.notification_update(row["key"], status=final, error=error,
                                           sent_at=now_iso(now) if status != "failed" else None, **done)
            out.append({"role": row["role"], "channel": channel.name, "status": status, "error": error})
        return out

    def _release_channel_claims(self, key: str) -> None:
        for channel in self.channels.values():
            store = getattr(channel, "store", None)
            if store is not None and hasattr(store, "release"):
                store.release(channel.name, key)

    def _route(self, role: str, customer: dict):
        if role == "manager":
            address = customer.get("manager") or self.settings.manager_email
            channel = self.channels.get("email")
            return ("email", channel, address) if address and channel else None
        preferred = json.loads(customer.get("channels") or "[]") + ["email", "whatsapp", "sms"]
        for kind in dict.fromkeys(preferred):
            address = {"email": customer.get("email"), "sms": customer.get("phone"),
                       "whatsapp": customer.get("whatsapp") or customer.get("phone")}.get(kind)
            if address and kind in self.channels:
                return kind, self.channels[kind], address
        return None

    # ---- people ----
    def set_limit(self, customer_id: str, amount: Decimal, blocked: bool, actor: str, reason: str,
                  now: dt.datetime) -> tuple[Limit, Limit, int | None, int]:
        """A person's decision: may lift a block; closes the customer's open reviews."""
        with dialect.transaction(self.store.db) as db:
            before = self.store.limit(customer_id, db)
            change = self.store.change_limit(db, customer_id, amount, blocked, now, actor=actor, source="person",
                                             reasons=["MANUAL"], note=reason)
            closed = self.store.close_reviews(db, customer_id, actor, now)
            after = self.store.limit(customer_id, db)
        return before, after, change, closed


class AlertConflict(Exception):
    """The same alert (bureau and id) arrived again with a different body."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key
