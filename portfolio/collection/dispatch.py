"""Carrying out planned steps: through the notification channels and negativation services, with
the legal guards applied first, whatever the policy said.

Every outcome is a status change of the outbox row plus an event in the history, written in one
transaction. Before a provider is called the row is marked `sending`; a crash after that leaves it
there, and the next run calls the provider again with the same idempotency key (the outbox key):
channels keep the receipts of keys already sent and answer them without sending again, webhooks
and gateways carry the key to the provider (`X-Regua-Idempotency-Key` / `Idempotency-Key`) and
e-mails get a Message-ID derived from it, and a bureau answers a repeated inclusion of the same
contract with the record it already has.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from decimal import Decimal

from regua.dsl.collection import CONTACT_ACTIONS
from regua.engine.brazil import zone_of
from regua.engine.connectors import ConnectorError
from regua.plugins.builtin.notifications.common import mask_recipient
from regua.plugins.contracts import Debt, NegativationRequest, Notification
from regua.plugins.runtime import Resilient

from .facts import CENTS
from .guards import Block, Notice, contact_deferral, last_day_to_pay, negativation_blocks, notice_is_futile
from .settings import CollectionSettings
from .store import CollectionStore, contact_ref, iso, parse_moment

log = logging.getLogger("regua.collection")

# Blocks that lift by themselves (the row waits for their date) and blocks that never lift.
_WAITING = {"NOTICE_WAIT", "NOT_DUE"}
_FINAL = {"TOO_OLD", "NOT_OPEN"}
# A send that failed this way will fail again with the same contact: the next channel is tried instead.
HARD_FAILURES = {"INVALID_RECIPIENT", "RECIPIENT_REFUSED"}


def _recipient(kind: str, customer: dict) -> str | None:
    if kind == "whatsapp":
        return customer["whatsapp"] or customer["phone"]
    return customer.get({"email": "email", "sms": "phone"}.get(kind, ""))


class Dispatcher:
    def __init__(self, store: CollectionStore, registry, settings: CollectionSettings):
        self.store = store
        self.db = store.db
        self.registry = registry
        self.settings = settings
        self.guards = settings.guards()
        self.channels = {}
        for channel in registry.channels.values():
            self.channels.setdefault(getattr(channel, "channel", channel.name), channel)
        self._services: dict[str, Resilient] = {}

    # ---- the loop ----
    def recover(self) -> int:
        """Rows left `sending` by a run that died (runs are serialised by a lock, so no live run owns
        them): free the channel's claim on their key, so the next send either finds the receipt the
        dead run stored (and sends nothing) or sends again with the same key. Returns how many."""
        rows = self.db.execute("select key, channel from outbox where status = 'sending'").fetchall()
        for key, channel_name in rows:
            self.release_channel_claim({"key": key, "channel": channel_name})
        return len(rows)

    def release_channel_claim(self, row: dict) -> None:
        """Free the channel's claim on a row's key (see recover)."""
        channel = self.registry.channels.get(row["channel"])
        store = getattr(channel, "store", None)
        if store is not None and hasattr(store, "release"):
            store.release(channel.name, row["key"])

    def dispatch_claimed(self, now: dt.datetime, counts, progress=None) -> None:
        """PostgreSQL, where runs dispatch at the same time: carry out the due rows this run claims
        (store.claim_due), in key order; then take over the rows of runs that died, and wait for
        the live ones to finish theirs, so that when this run ends nothing due is left behind.
        A row taken over `sending` is carried out again with the same idempotency key, as after
        a crash on SQLite (recover)."""
        run_id = self.store.register_run()
        try:
            after, orphans = "", False
            while True:
                rows = self.store.claim_due(now, run_id, after=after, orphans=orphans)
                for row in rows:
                    if row["status"] == "sending":
                        self.release_channel_claim(row)
                    with self.store.customer_lock(row["customer_id"]):
                        try:
                            counts[self.carry_out(row, now)] += 1
                        finally:
                            self.store.release(row["key"], run_id)
                    if progress is not None:
                        progress(1)
                if rows:
                    after = "" if orphans else rows[-1]["key"]
                    continue
                if not self.store.claimed_elsewhere(now, run_id):
                    return
                orphans, after = True, ""
                time.sleep(0.1)  # another run is carrying out rows: wait for it, or for its death
        finally:
            self.store.end_run(run_id)

    def dispatch_due(self, now: dt.datetime, counts, progress=None) -> None:
        if self.store.postgres:
            return self.dispatch_claimed(now, counts, progress)
        recovered = self.recover()
        if recovered:
            log.warning("%d step(s) were being carried out when a run stopped; carrying them out again "
                        "with the same idempotency keys", recovered)
        after = ""
        while True:
            rows = self.store.due(now, after=after)
            for row in rows:
                counts[self.carry_out(row, now)] += 1
                if progress is not None:
                    progress(1)
            if len(rows) < 500:
                return
            after = rows[-1]["key"]

    def carry_out(self, row: dict, now: dt.datetime) -> str:
        """One outbox row; returns (what happened, why): sent, delivered, done, deferred, blocked, failed
        or cancelled, with the code of the guard or error when there is one."""
        receivable = self._one("select * from receivables where id = ?", row["receivable_id"])
        customer = self._one("select * from customers where id = ?", row["customer_id"])
        action = row["action"]
        if action == "remove_record":
            return self._remove(row, customer, now)
        if receivable is None or receivable["status"] != "open":
            status = receivable["status"] if receivable else "missing"
            return self._finish(row, "cancelled", now, "cancelled", "NOT_OPEN", {"receivable_status": status})
        if action in CONTACT_ACTIONS:
            return self._contact(row, receivable, customer, now)
        if action in ("negativate", "protest"):
            return self._negative(row, receivable, customer, now)
        if action in ("send_to_agency", "send_to_legal"):
            settings = json.loads(row["settings"] or "{}")
            return self._finish(row, "done", now, "handed_over", action.upper(), {"agency": settings.get("agency")})
        return self._finish(row, "done", now, "done", None, {})

    # ---- contacts ----
    def _stale(self, row, receivable, customer, now) -> str | None:
        """Why a deferred contact is no longer worth sending: a newer contact step of the same
        receivable was planned since (SUPERSEDED), or a reminder of the due date arrives after it (LAPSED)."""
        if row["action"] == "notify_negativation" or row["day"] is None:
            return None
        today = now.astimezone(zone_of(customer["uf"])).date()
        if row["day"] < 0 and today > dt.date.fromisoformat(receivable["due_date"]):
            return "LAPSED"
        newer = self.db.execute("select 1 from outbox where receivable_id = ? and action in ('remind', "
                                "'offer_agreement') and day > ? and status not in ('superseded', 'cancelled', "
                                "'failed') limit 1", [row["receivable_id"], row["day"]]).fetchone()
        return "SUPERSEDED" if newer else None

    def _contact(self, row, receivable, customer, now) -> str:
        stale = self._stale(row, receivable, customer, now)
        if stale:
            return self._finish(row, "superseded", now, "superseded", stale, {})
        if receivable["disputed"] and not (self.settings.disputed_reminders and row["action"] == "remind"):
            # A debtor who disputes the debt gets no collection contact, whatever the régua says
            # (a policy that forgets `not disputed`); held, logged once, checked again every run.
            return self._blocked(row, [Block("DISPUTED", "the debtor disputes the debt: no collection contact")],
                                 now, customer["uf"])
        settings = json.loads(row["settings"] or "{}")
        preferred = [settings["channel"]] if settings.get("channel") else json.loads(customer["channels"] or "[]")
        preferred += [c for c in ("email", "whatsapp", "sms") if c not in preferred]
        unusable = self.store.unusable_contacts(customer["id"])
        usable = [(kind, self.channels[kind], _recipient(kind, customer)) for kind in preferred
                  if kind in self.channels and _recipient(kind, customer)]
        chosen = next(((kind, channel, recipient) for kind, channel, recipient in usable
                       if (kind, contact_ref(kind, recipient)) not in unusable), None)
        if chosen is None:
            detail = {"preferred": preferred, "configured": sorted(self.channels)}
            if usable:  # every channel the debtor could be reached by bounced or failed for good
                detail["unusable"] = [kind for kind, _, _ in usable]
            return self._finish(row, "failed", now, "failed", "NO_CHANNEL", detail)
        kind, channel, recipient = chosen
        uf = customer["uf"]
        if row["action"] == "notify_negativation":
            today = now.astimezone(zone_of(uf)).date()
            bureau = settings.get("bureau") or self.settings.bureau
            if notice_is_futile(dt.date.fromisoformat(receivable["due_date"]), today, uf, bureau, self.guards):
                # Never threaten a negativation that can no longer happen (5 years, CDC art. 43 §1).
                return self._finish(row, "cancelled", now, "cancelled", "TOO_OLD",
                                    {"due_date": receivable["due_date"]})
        since = now - dt.timedelta(days=self.guards.contact_period_days)
        previous = self.store.contacts_since(customer["id"], since)
        when, reason = contact_deferral(now, uf, previous, self.guards)
        if reason is not None:
            return self._defer(row, when, reason, now)
        attempts = (row["attempts"] or 0) + 1
        self._update(row["key"], {"status": "sending", "attempts": attempts, "channel": channel.name,
                                  "block_code": None})
        notification = Notification(channel=kind, recipient=recipient, template=row["template"],
                                    context=self._context(row, receivable, customer, settings, now),
                                    idempotency_key=row["key"], creditor_name=self.settings.creditor_name,
                                    creditor_document=self.settings.creditor_document)
        deadline = notification.context.get("prazo")
        receipt = channel.send(notification)
        detail = {"channel": channel.name, "recipient": mask_recipient(recipient), "provider_id": receipt.provider_id,
                  "template": row["template"], "attempt": attempts}
        detail["kind"] = kind
        if receipt.status == "failed":
            detail["error"] = receipt.error
            code = receipt.error.split(":")[0] or "FAILED"
            if code in HARD_FAILURES:
                # This contact will never work (an invalid number, an address refused): recorded
                # as unusable for the debtor, and the same step goes through the next channel now.
                self.store.mark_unusable(customer["id"], kind, recipient, code, receipt.error, row["key"], now)
                self._update(row["key"], {"status": "pending", "block_code": "BOUNCED"},
                             [self._event(row, now, "bounced", code, detail)])
                return self._contact(dict(row, attempts=attempts), receivable, customer, now)
            return self._failed(row, attempts, now, code, detail)
        delivered = receipt.status == "delivered"
        changes = {"status": "delivered" if delivered else "sent", "sent_at": iso(now),
                   "delivered_at": iso(now) if delivered else None,
                   "result": json.dumps({"provider_id": receipt.provider_id, "receipt": receipt.status, "kind": kind,
                                         "contact": contact_ref(kind, recipient)})}
        if deadline is not None:  # the last day to pay the notice printed: enforced as printed
            changes["deadline"] = deadline.isoformat()
            detail["deadline"] = deadline.isoformat()
        self._update(row["key"], changes, [self._event(row, now, "delivered" if delivered else "sent",
                                                            row["action"].upper(), detail)])
        return (changes["status"], None)

    def _context(self, row, receivable, customer, settings, now) -> dict:
        paid = self.db.execute(f"select coalesce(sum({CENTS}), 0) from payments where receivable_id = ?",
                               [receivable["id"]]).fetchone()[0]
        open_amount = max(Decimal(receivable["amount"]) - Decimal(paid).scaleb(-2), Decimal("0.00"))
        due = dt.date.fromisoformat(receivable["due_date"])
        today = now.astimezone(zone_of(customer["uf"])).date()
        context = {"valor": open_amount, "vencimento": due, "nome": customer["name"].split()[0],
                   "descricao": f"o título {receivable['id']}", "dias_atraso": max((today - due).days, 0),
                   "credor_endereco": self.settings.creditor_address}
        if row["action"] == "notify_negativation":
            bureau = settings.get("bureau") or self.settings.bureau
            wait = self.guards.notice_wait(bureau, customer["uf"])
            # Printed as the last day to pay, and enforced as printed (guards.negativation_blocks):
            # counted from today, the earliest the notice can be delivered; a later proven delivery
            # only moves the enforced day later.
            context.update(prazo=last_day_to_pay(today, wait, customer["uf"]), dias_espera=wait, bureau=bureau)
        if row["action"] == "offer_agreement":
            discount = Decimal(str(settings.get("discount", "0")))
            instalments = int(settings.get("instalments", 1))
            total = (open_amount * (1 - discount)).quantize(Decimal("0.01"))
            context.update(desconto=discount * 100, valor_acordo=total, parcelas=instalments,
                           valor_parcela=(total / instalments).quantize(Decimal("0.01")))
        return context

    # ---- negativation and protest ----
    def _negative(self, row, receivable, customer, now) -> str:
        settings = json.loads(row["settings"] or "{}")
        protest = row["action"] == "protest"
        service_name = settings.get("bureau") or (self.settings.protest_service if protest else "") \
            or self.settings.bureau
        uf = customer["uf"]
        today = now.astimezone(zone_of(uf)).date()
        zone = zone_of(uf)  # days are counted in the debtor's calendar, not in UTC
        notices = [Notice(parse_moment(n["sent_at"]).astimezone(zone),
                          parse_moment(n["delivered_at"]).astimezone(zone) if n["delivered_at"] else None,
                          dt.date.fromisoformat(n["deadline"]) if n["deadline"] else None)
                   for n in self.store.notices(receivable["id"])]
        blocks = negativation_blocks(status=receivable["status"], disputed=bool(receivable["disputed"]),
                                     due_date=dt.date.fromisoformat(receivable["due_date"]), notices=notices,
                                     today=today, uf=uf, bureau=service_name, settings=self.guards)
        if protest:  # the notary's office serves its own notice (intimação): no prior notice of ours is needed
            blocks = [b for b in blocks if b.code not in ("NO_DELIVERED_NOTICE", "NOTICE_WAIT")]
        if blocks:
            return self._blocked(row, blocks, now, uf)
        service = self._service(service_name)
        if service is None:
            return self._finish(row, "failed", now, "failed", "NO_SERVICE", {"service": service_name})
        attempts = (row["attempts"] or 0) + 1
        self._update(row["key"], {"status": "sending", "attempts": attempts, "channel": service_name,
                                  "block_code": None})
        kind = "protest" if protest else "negativation"
        try:
            record = service(self._request("include", receivable, customer, kind, at=now))
        except ConnectorError as error:
            return self._failed(row, attempts, now, error.code, {"service": service_name, "error": str(error)[:200]})
        if record.status == "rejected":
            return self._finish(row, "failed", now, "failed", "REJECTED", {"service": service_name,
                                                                          "reason": record.reason[:200]})
        self._open_record({"key": f"{row['key']}", "receivable_id": receivable["id"], "kind": kind,
                                "service": service_name, "protocol": record.protocol, "status": record.status,
                                "opened_at": iso(now)},
                               self._event(row, now, "protested" if protest else "negativated", record.status.upper(),
                                           {"service": service_name, "protocol": record.protocol}))
        self._update(row["key"], {"status": "done", "sent_at": iso(now),
                                  "result": json.dumps({"protocol": record.protocol, "status": record.status})})
        return ("done", kind.upper())

    def _remove(self, row, customer, now) -> str:
        settings = json.loads(row["settings"] or "{}")
        record = self._one("select * from negative_records where key = ?", settings["record"])
        if record is None or record["removed_at"]:
            return self._finish(row, "done", now, "done", "ALREADY_REMOVED", {})
        service = self._service(record["service"])
        if service is None:
            return self._finish(row, "failed", now, "failed", "NO_SERVICE", {"service": record["service"]})
        receivable = self._one("select * from receivables where id = ?", row["receivable_id"])
        attempts = (row["attempts"] or 0) + 1
        self._update(row["key"], {"status": "sending", "attempts": attempts, "channel": record["service"]})
        try:
            result = service(self._request("remove", receivable, customer, record["kind"], record["protocol"], now))
        except ConnectorError as error:
            return self._failed(row, attempts, now, error.code, {"service": record["service"],
                                                                 "error": str(error)[:200]})
        today = now.astimezone(zone_of(customer["uf"])).date()
        late = record["removal_due"] and today.isoformat() > record["removal_due"]
        detail = {"service": record["service"], "protocol": record["protocol"], "reason": settings.get("reason"),
                  "deadline": record["removal_due"], "late": bool(late)}
        with_event = self._event(row, now, "removal_requested", settings.get("reason"), detail)
        self._open_record(dict(record, status=result.status, removed_at=iso(now)), with_event)
        self._update(row["key"], {"status": "done", "sent_at": iso(now)})
        if late:
            log.error("removal of record %s requested after its deadline %s", record["protocol"], record["removal_due"])
        return ("done", "REMOVAL")

    def _request(self, action: str, receivable: dict, customer: dict, kind: str,
                 protocol: str = "", at: dt.datetime | None = None) -> NegativationRequest:
        """The bureau request for a receivable's negative record; a protest is a contract of its own.
        `at` is the run's moment: a run as of another date is judged on that date, not the machine's."""
        contract = receivable["id"] + ("/protesto" if kind == "protest" else "")
        return NegativationRequest(action=action, debtor_document=customer["document"], debtor_uf=customer["uf"],
                                   protocol=protocol, at=at,
                                   debt=Debt(contract=contract, amount=Decimal(receivable["amount"]),
                                             due_date=dt.date.fromisoformat(receivable["due_date"]),
                                             creditor_name=self.settings.creditor_name,
                                             creditor_document=self.settings.creditor_document))

    def _update(self, key: str, changes: dict, events=()) -> None:
        self.store.update(key, changes, events)
        for event in events:
            self.registry.event_recorded(event)

    def _open_record(self, record: dict, event: dict) -> None:
        self.store.open_record(record, event)
        self.registry.event_recorded(event)

    def _service(self, name: str):
        service = self.registry.negativators.get(name)
        if service is None:
            return None
        if name not in self._services:
            self._services[name] = Resilient(service, service.submit)
        return self._services[name]

    # ---- outcomes ----
    def _blocked(self, row, blocks, now, uf) -> str:
        codes = [b.code for b in blocks]
        detail = {"blocks": [{"code": b.code, "message": b.message, "until": b.until} for b in blocks]}
        if any(code in _FINAL for code in codes):
            return self._finish(row, "cancelled", now, "blocked", codes[0], detail)
        if all(code in _WAITING for code in codes):
            until = max(b.until for b in blocks)
            opening = dt.datetime.combine(until, dt.time(0), zone_of(uf))
            return self._defer(row, opening, codes[0], now, detail)
        if row["status"] == "blocked" and row["block_code"] == codes[0]:
            return ("blocked", codes[0])  # still blocked for the same reason: logged once, checked every run
        log.info("step %s blocked by a legal guard: %s", row["step"], ", ".join(codes))
        self._update(row["key"], {"status": "blocked", "block_code": codes[0]},
                     [self._event(row, now, "blocked", codes[0], detail)])
        return ("blocked", codes[0])

    def _defer(self, row, when: dt.datetime, reason: str, now, detail: dict | None = None) -> str:
        self._update(row["key"], {"status": "pending", "not_before": iso(when), "block_code": reason},
                     [self._event(row, now, "deferred", reason, dict(detail or {}, until=iso(when)))])
        return ("deferred", reason)

    def _failed(self, row, attempts: int, now, code: str, detail: dict) -> str:
        if attempts >= self.settings.max_attempts:
            return self._finish(row, "failed", now, "failed", code, detail, attempts=attempts)
        retry = now + dt.timedelta(minutes=self.settings.retry_minutes)
        self._update(row["key"], {"status": "pending", "not_before": iso(retry), "block_code": code},
                     [self._event(row, now, "retry", code, dict(detail, retry_at=iso(retry)))])
        return ("retry", code)

    def _finish(self, row, status, now, kind, code, detail, attempts=None) -> str:
        changes = {"status": status, "block_code": code}
        if attempts is not None:
            changes["attempts"] = attempts
        self._update(row["key"], changes, [self._event(row, now, kind, code, detail)])
        return ("blocked" if kind == "blocked" else status, code)

    @staticmethod
    def _event(row, now, kind, code, detail) -> dict:
        return {"at": iso(now), "receivable_id": row["receivable_id"], "customer_id": row["customer_id"],
                "key": row["key"], "kind": kind, "code": code, "detail": dict(detail, step=row["step"])}

    def _one(self, sql: str, key: str) -> dict | None:
        rows = list(self.db.query(sql, [key]))
        return rows[0] if rows else None

