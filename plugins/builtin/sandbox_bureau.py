"""The sandbox bureau: deterministic synthetic reports derived from the document number.

Offline demos and tests get the same report for the same document, every time. To get a
chosen profile, pick a document whose first two digits say which (make one with
`sandbox_document(profile)`):

| first two digits | profile |
|---|---|
| 90 | the bureau is down (every call times out) |
| 94 | 6 inquiries in the last 30 days |
| 95 | a protest of R$ 1.200 |
| 96 | registration closed (baixada) |
| 97 | low score (100–300) |
| 98 | judicial recovery |
| 99 | negativations (pefin + refin) above R$ 5.000 |
| anything else | a clean report, score 500–950 from the document's hash |
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from decimal import Decimal

from stdnum.br import cnpj as _cnpj
from stdnum.br import cpf as _cpf

from regua.engine.brazil import PerMinute
from regua.plugins.connectors import BureauConnector, TransientError
from regua.plugins.contracts import BureauReport, Inquiry, Restriction, Score
from regua.plugins.hookspecs import hookimpl

PROFILES = {
    "down": "90", "inquiries": "94", "protest": "95", "closed": "96", "low_score": "97",
    "judicial_recovery": "98", "negativated": "99",
}


def sandbox_document(profile: str = "clean", kind: str = "cnpj", n: int = 1) -> str:
    """A valid CPF/CNPJ that the sandbox answers with `profile` (see the module docstring)."""
    prefix = PROFILES.get(profile, "12")
    if kind == "cnpj":
        base = f"{prefix}{n:06d}0001"
        return base + _cnpj.calc_check_digits(base)
    base = f"{prefix}{n:07d}"
    return base + _cpf._calc_check_digits(base)


#: Reports kept per (document, day): a report depends on nothing else, and building one (a hash, the
#: contract's structs) was most of a sandbox lookup's cost on the server's hot path.
MAX_KEPT_REPORTS = 1024


def _band(score: int) -> str:
    return "baixo" if score <= 300 else "regular" if score <= 500 else "bom" if score <= 700 else "excelente"


class SandboxBureau(BureauConnector):
    name = "sandbox"
    deterministic = True
    timeout = 2.0
    retries = 0
    ttl = 0  # never cached: it is free and instant
    cost = "0"

    def __init__(self, today=dt.date.today, down_delay: float = 0.0):
        # The clock is read once a minute, not per lookup; an injected one (tests) every time.
        self.today = PerMinute(today) if today is dt.date.today else today
        self.down_delay = down_delay
        self.inline = not down_delay  # a simulated slow outage must not block an event loop
        self._reports: dict[tuple[str, dt.date], BureauReport] = {}

    def fetch(self, document: str) -> BureauReport:
        today = self.today()
        key = (document, today)
        report = self._reports.get(key)
        if report is None:
            report = self._report(document, today)
            if len(self._reports) >= MAX_KEPT_REPORTS:
                self._reports.clear()  # a new day's or a demo's documents: start again
            self._reports[key] = report  # frozen structs, handed on as copies (to_builtins)
        return report

    def _report(self, document: str, today: dt.date) -> BureauReport:
        """The deterministic report of `document` on `today` (raises for the "down" profile)."""
        digest = hashlib.sha256(document.encode()).digest()
        profile = document[:2]
        if profile == "90":
            if self.down_delay:
                time.sleep(self.down_delay)
            raise TransientError("TIMEOUT", "sandbox: this document simulates a bureau that is down")
        score = 500 + int.from_bytes(digest[:2], "big") % 451
        restrictions: list[Restriction] = []
        inquiries = [Inquiry(date=today - dt.timedelta(days=40 + digest[2] % 200), inquirer="Banco Sandbox")]
        status = "active"
        if profile == "97":
            score = 100 + int.from_bytes(digest[:2], "big") % 201
        elif profile == "99":
            restrictions = [
                Restriction(kind="pefin", amount=Decimal("3500.00"), date=today - dt.timedelta(days=90),
                            creditor="Fornecedor Sandbox"),
                Restriction(kind="refin", amount=Decimal("2750.50"), date=today - dt.timedelta(days=200),
                            creditor="Banco Sandbox"),
            ]
        elif profile == "98":
            restrictions = [Restriction(kind="judicial_recovery", amount=Decimal("0"),
                                        date=today - dt.timedelta(days=120), creditor="Vara Empresarial")]
        elif profile == "95":
            restrictions = [Restriction(kind="protest", amount=Decimal("1200.00"),
                                        date=today - dt.timedelta(days=15), creditor="Cartório Sandbox")]
        elif profile == "96":
            status = "closed"
        elif profile == "94":
            inquiries = [Inquiry(date=today - dt.timedelta(days=d), inquirer=f"Consulente {d}")
                         for d in (1, 3, 6, 10, 18, 25)]
        return BureauReport(
            score=Score(value=score, bureau="sandbox", model="sandbox-1", band=_band(score)),
            restrictions=restrictions, inquiries=inquiries, registration_status=status)


@hookimpl
def regua_bureau_connectors(config):
    settings = (config or {}).get("sandbox_bureau", {})
    return [SandboxBureau(down_delay=float(settings.get("down_delay", 0)))]
