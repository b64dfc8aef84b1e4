"""Legal guards of the collection cadence, enforced whatever a policy says (docs: domain-br.md).

Pure functions over facts, so they can be proven with property tests and reused by the runner:

- `negativation_blocks()`: why a debt may not be negativated now (no proven delivered notice,
  the waiting period after it, a disputed debt, a debt more than 5 years past due, not open);
- `last_day_to_pay()`: THE one place where the waiting period after a notice is counted (Código
  Civil art. 132): the notice prints it, and negativation opens only the day after it;
- `notice_is_futile()`: a notice whose earliest negativation falls on or after the 5-year limit;
- `removal_deadline()`: the last day to request removal after full payment (5 business days,
  national and UF holidays, counted from the first business day after the payment — Súmula 548);
- `record_expiry()`: when a negative record must go, 5 years after the due date (CDC art. 43 §1);
- `next_contact_time()`: the first moment at or after `when` inside the debtor's UF contact window
  and under the per-debtor frequency cap: out-of-window actions are deferred, never dropped;
  `contact_deferral()` also says which of the two guards deferred it.

Every value a source disputes (waiting days per bureau and UF, windows per UF) is data in
`GuardSettings`, never hard-wired.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from regua.engine.brazil import UFS, add_business_days, is_business_day, is_holiday, zone_of


@dataclass(frozen=True)
class Window:
    """Contact hours per weekday (0 = Monday … 6 = Sunday), local time; absent day: no contact."""

    hours: dict[int, tuple[int, int]]  # weekday -> (from hour, to hour), `to` exclusive
    holidays: bool = False  # contacts allowed on holidays?

    def allows(self, local: dt.datetime, uf: str) -> bool:
        span = self.hours.get(local.weekday())
        if span is None or (not self.holidays and is_holiday(local.date(), uf)):
            return False
        return span[0] <= local.hour < span[1]


# São Paulo Lei 15.426/2014: Mon–Fri 8h–20h, Sat 8h–14h, never on Sundays or holidays. States
# without a law of their own get the same (the most common and a conservative reading; AL's law is
# reported to be like SP's).
SP_HOURS = Window({0: (8, 20), 1: (8, 20), 2: (8, 20), 3: (8, 20), 4: (8, 20), 5: (8, 14)})
WEEKDAYS_9_19 = Window({d: (9, 19) for d in range(5)})  # reported for RJ
WEEKDAYS_8_19 = Window({d: (8, 19) for d in range(5)})  # reported for ES
DEFAULT_WINDOWS = {uf: SP_HOURS for uf in UFS} | {"RJ": WEEKDAYS_9_19, "ES": WEEKDAYS_8_19}


@dataclass(frozen=True)
class GuardSettings:
    notice_wait_days: int = 10  # Serasa and SPC
    notice_wait_by_bureau: dict[str, int] = field(default_factory=dict)
    notice_wait_by_uf: dict[str, int] = field(default_factory=dict)  # e.g. {"SP": 15} if you read Lei 15.659/2015 so
    max_age_years: int = 5
    removal_business_days: int = 5
    windows: dict[str, Window] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    max_contacts: int = 3  # per debtor …
    contact_period_days: int = 7  # … in any rolling period of this many days

    def notice_wait(self, bureau: str, uf: str) -> int:
        """The longest of the applicable waiting periods (the safe choice when rules overlap)."""
        return max(self.notice_wait_days, self.notice_wait_by_bureau.get(bureau, 0), self.notice_wait_by_uf.get(uf, 0))


@dataclass(frozen=True)
class Notice:
    """A notice of negativation: sent, and delivered with proof (a delivery receipt) or not, with
    the last day to pay it printed (None for notices sent before the date was kept)."""

    sent_at: dt.datetime
    delivered_at: dt.datetime | None = None
    deadline: dt.date | None = None


@dataclass(frozen=True)
class Block:
    code: str
    message: str
    until: dt.date | None = None  # when the block lifts by itself, if it does


def _years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def record_expiry(due_date: dt.date, settings: GuardSettings = GuardSettings()) -> dt.date:
    """The first day a debt (and any negative record of it) is too old: 5 years after the due date."""
    return _years_after(due_date, settings.max_age_years)


def last_day_to_pay(start: dt.date, wait: int, uf: str) -> dt.date:
    """The last day of a waiting period of `wait` days that starts on `start` (the delivery of the
    notice), Código Civil art. 132: the start day is excluded and the last day included; a last
    day that is not a business day in the debtor's UF moves to the next business day (§1). The
    debtor may pay through that whole day; a record may open from the day after it, never earlier.
    Delivery on 13/03/2026 with 10 days: the period runs through 23/03, the record opens from 24/03."""
    day = start + dt.timedelta(days=wait)
    while not is_business_day(day, uf):
        day += dt.timedelta(days=1)
    return day


def earliest_negativation(start: dt.date, wait: int, uf: str) -> dt.date:
    """The first day a record may open after a notice delivered on `start`: the day after the last day to pay."""
    return last_day_to_pay(start, wait, uf) + dt.timedelta(days=1)


def notice_is_futile(due_date: dt.date, send_on: dt.date, uf: str, bureau: str,
                     settings: GuardSettings = GuardSettings()) -> bool:
    """A notice sent (and delivered) on `send_on` could never lead to a negativation: the earliest
    day a record could open is already past the 5-year limit of the debt."""
    return earliest_negativation(send_on, settings.notice_wait(bureau, uf), uf) >= record_expiry(due_date, settings)


def negativation_blocks(*, status: str, disputed: bool, due_date: dt.date, notices: list[Notice], today: dt.date,
                        uf: str, bureau: str, settings: GuardSettings = GuardSettings()) -> list[Block]:
    """Every reason the debt may not be negativated on `today`; empty: it may."""
    blocks = []
    if status != "open":
        blocks.append(Block("NOT_OPEN", f"the receivable is {status}"))
    if disputed:
        blocks.append(Block("DISPUTED", "a disputed debt is not certain and liquid"))
    if today < due_date + dt.timedelta(days=1):
        blocks.append(Block("NOT_DUE", "the debt is not overdue", due_date + dt.timedelta(days=1)))
    if today >= record_expiry(due_date, settings):
        blocks.append(Block("TOO_OLD", f"more than {settings.max_age_years} years past its due date"))
    delivered = [n.delivered_at for n in notices if n.delivered_at is not None]
    if not delivered:
        blocks.append(Block("NO_DELIVERED_NOTICE", "no notice of negativation with proof of delivery"))
    else:
        # The waiting period runs from the first proven delivery; and no notice the debtor was sent
        # may be contradicted: the record opens only after the later of that period and every last
        # day to pay a notice printed.
        wait = settings.notice_wait(bureau, uf)
        last_day = max([last_day_to_pay(min(delivered).date(), wait, uf)]
                       + [n.deadline for n in notices if n.deadline is not None])
        ready = last_day + dt.timedelta(days=1)
        if today < ready:
            blocks.append(Block("NOTICE_WAIT", f"the debtor may pay until {last_day.isoformat()}: {wait} days after "
                                               "the notice was delivered, and the last day the notice printed", ready))
    return blocks


def removal_deadline(paid_on: dt.date, uf: str, settings: GuardSettings = GuardSettings()) -> dt.date:
    """The last day to request removal after full payment: 5 business days (national and UF
    holidays) counted from the first business day after the payment."""
    return add_business_days(paid_on, settings.removal_business_days, uf)


def next_contact_time(when: dt.datetime, uf: str, previous: list[dt.datetime] = (),
                      settings: GuardSettings = GuardSettings()) -> dt.datetime:
    """The first moment at or after `when` (aware) inside the UF's window and under the cap."""
    if when.tzinfo is None:
        raise ValueError("when must be timezone-aware")
    window = settings.windows[uf]
    zone = zone_of(uf)
    candidate = when.astimezone(zone)
    recent = sorted(p.astimezone(zone) for p in previous)
    for _ in range(3660):  # ten years of days: a window that never opens is a configuration error
        if settings.max_contacts > 0:
            period = dt.timedelta(days=settings.contact_period_days)
            inside = [p for p in recent if candidate - period < p <= candidate]
            if len(inside) >= settings.max_contacts:
                # The cap lifts when the oldest contact that counts leaves the rolling period.
                candidate = max(candidate, inside[-settings.max_contacts] + period + dt.timedelta(microseconds=1))
        if window.allows(candidate, uf):
            return candidate.astimezone(when.tzinfo)
        candidate = _next_opening(candidate, window, uf)
    raise ValueError(f"no contact window opens for {uf}")


def contact_deferral(when: dt.datetime, uf: str, previous: list[dt.datetime] = (),
                     settings: GuardSettings = GuardSettings()) -> tuple[dt.datetime, str | None]:
    """`next_contact_time()` and the guard that deferred the contact: None (not deferred),
    `OUT_OF_WINDOW` (the window alone defers it that far) or `FREQUENCY_CAP` (the cap defers it further)."""
    at = next_contact_time(when, uf, previous, settings)
    if at == when:
        return at, None
    return at, "OUT_OF_WINDOW" if at == next_contact_time(when, uf, (), settings) else "FREQUENCY_CAP"


def _next_opening(local: dt.datetime, window: Window, uf: str) -> dt.datetime:
    """The next window opening strictly after `local` (called when `local` is outside the window)."""
    day = local.date()
    for offset in range(0, 400):
        current = day + dt.timedelta(days=offset)
        span = window.hours.get(current.weekday())
        if span is None or (not window.holidays and is_holiday(current, uf)):
            continue
        opening = dt.datetime.combine(current, dt.time(span[0]), local.tzinfo)
        if opening > local:
            return opening
    raise ValueError(f"no contact window opens for {uf} within a year")
