"""How a creditor runs its cadence: who it is, which régua applies to whom, and the values of the
legal guards that sources dispute (waiting periods, contact windows) — data, never hard-wired."""

from __future__ import annotations

import msgspec

from regua.dsl.values import normalize_cnpj
from regua.engine.brazil import UFS

from .guards import DEFAULT_WINDOWS, GuardSettings, Window

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CollectionSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: Run the cadence inside the server at `run_hours` (one worker runs it; the others skip).
    enabled: bool = False
    #: CDC art. 42-A: every collection document names the creditor: name, address and CNPJ.
    creditor_name: str = ""
    creditor_address: str = ""
    creditor_document: str = ""
    #: Which régua applies: by customer segment first, then by person kind ("pf" / "pj").
    policies: dict[str, str] = msgspec.field(default_factory=lambda: {"pf": "cobranca_b2c", "pj": "cobranca_b2b"})
    #: Local hours (America/Sao_Paulo) of the scheduled runs; simulations use the same hours.
    run_hours: list[int] = msgspec.field(default_factory=lambda: [9, 14])
    #: Negativation service for `negativate` (a step may `set bureau = ...`) and for `protest`.
    bureau: str = "sandbox"
    protest_service: str = ""
    #: Waiting period after a delivered notice before negativating (the longest applicable wins).
    notice_wait_days: int = 10
    notice_wait_by_bureau: dict[str, int] = {}
    notice_wait_by_uf: dict[str, int] = {}
    #: Per-debtor frequency cap: at most `max_contacts` in any `contact_period_days` days.
    max_contacts: int = 3
    contact_period_days: int = 7
    #: Contact windows per UF, replacing the defaults: {"RJ": {"mon": [9, 19], ...}}; days left out: no contact.
    windows: dict[str, dict[str, list[int]]] = {}
    #: While a debt is disputed no collection message is sent (`DISPUTED`); true allows `remind` steps
    #: only (write their templates as neutral reminders), never offers, notices or escalations.
    disputed_reminders: bool = False
    #: A failed send is tried again after `retry_minutes`, at most `max_attempts` times in all.
    max_attempts: int = 3
    retry_minutes: int = 60

    def problems(self) -> list[str]:
        """What is wrong with these settings, as `field: message` (empty: fine)."""
        found = []
        if self.creditor_document and normalize_cnpj(self.creditor_document.upper()) is None:
            found.append("creditor_document: is not a valid CNPJ")
        for hour in self.run_hours:
            if not 0 <= hour <= 23:
                found.append(f"run_hours: {hour} is not an hour of the day (0-23)")
        for uf, days in self.windows.items():
            if uf not in UFS:
                found.append(f"windows.{uf}: not a Brazilian state (UF)")
            for day, span in days.items():
                if day not in WEEKDAYS:
                    found.append(f"windows.{uf}.{day}: use {', '.join(WEEKDAYS)}")
                elif len(span) != 2 or not 0 <= span[0] < span[1] <= 24:
                    found.append(f"windows.{uf}.{day}: expected [from hour, to hour], e.g. [8, 20]")
        for name in ("notice_wait_days", "max_attempts", "contact_period_days"):
            if getattr(self, name) < 0:
                found.append(f"{name}: must not be negative")
        return found

    def creditor_missing(self) -> list[str]:
        """The creditor identification settings that are empty (CDC art. 42-A needs all three)."""
        return [f"collection.{name}" for name in ("creditor_name", "creditor_address", "creditor_document")
                if not " ".join(getattr(self, name).split())]

    def guards(self) -> GuardSettings:
        windows = dict(DEFAULT_WINDOWS)
        for uf, days in self.windows.items():
            windows[uf] = Window({WEEKDAYS.index(day): (span[0], span[1]) for day, span in days.items()})
        return GuardSettings(notice_wait_days=self.notice_wait_days, notice_wait_by_bureau=dict(self.notice_wait_by_bureau),
                             notice_wait_by_uf=dict(self.notice_wait_by_uf), windows=windows,
                             max_contacts=self.max_contacts, contact_period_days=self.contact_period_days)

    def policy_for(self, segment: str, person: str) -> str | None:
        return self.policies.get(segment) or self.policies.get(person)
