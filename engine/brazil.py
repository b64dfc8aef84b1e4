"""Brazil's calendar and clocks: the time zone of each UF, "today" in Brazil, and business days
(national holidays, plus state (UF) holidays when a UF is given).

Every part of Régua that needs Brazilian time takes it from here. Zones are IANA zones read
through zoneinfo (the `tzdata` package provides the database where the system has none), never
fixed offsets: Brazil had daylight saving time until 2019, so a date in the past is right only
with the zone's history (2018-12-01 14:00 UTC was 12:00 in São Paulo, UTC-2).
"""

from __future__ import annotations

import datetime as dt
import time
from functools import lru_cache
from zoneinfo import ZoneInfo

from .errors import EvalError

UFS = (
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA", "PB", "PR",
    "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
)

#: Brasília time, Brazil's official time (America/Sao_Paulo): the zone of "today in Brazil", of
#: collection runs, of calendar dates read from instants when no UF says otherwise.
BRASILIA = ZoneInfo("America/Sao_Paulo")

# One IANA zone per UF, its capital's. States spanning two zones keep the one most people live in:
# PE's Fernando de Noronha is America/Noronha (UTC-2), western AM is America/Eirunepe (UTC-5),
# western PA is America/Santarem (same offset as Belém). The rest is America/Sao_Paulo.
_ZONE_NAMES = {
    "AC": "America/Rio_Branco", "AM": "America/Manaus", "RR": "America/Boa_Vista", "RO": "America/Porto_Velho",
    "MT": "America/Cuiaba", "MS": "America/Campo_Grande", "PA": "America/Belem", "AP": "America/Belem",
    "TO": "America/Araguaina", "MA": "America/Fortaleza", "PI": "America/Fortaleza", "CE": "America/Fortaleza",
    "RN": "America/Fortaleza", "PB": "America/Fortaleza", "PE": "America/Recife", "AL": "America/Maceio",
    "SE": "America/Maceio", "BA": "America/Bahia",
}
_ZONES: dict[str, ZoneInfo] = {uf: ZoneInfo(_ZONE_NAMES.get(uf, "America/Sao_Paulo")) for uf in UFS}


def zone_of(uf: str) -> ZoneInfo:
    """The time zone of a UF ("SP" -> America/Sao_Paulo, "AM" -> America/Manaus)."""
    try:
        return _ZONES[uf]
    except KeyError:
        raise ValueError(f"unknown UF '{uf}'") from None


class PerMinute:
    """today() read at most once per wall-clock minute. Exact: the date only changes at midnight,
    which is a minute boundary in every time zone in use (offsets are whole quarter hours; the
    Brazilian ones whole hours). For the clocks read per request or per lookup: the server's
    Brazilian date, the sandbox bureau's local one."""

    __slots__ = ("today", "value", "until")

    def __init__(self, today):
        self.today, self.value, self.until = today, None, 0.0

    def __call__(self) -> dt.date:
        now = time.time()
        if now >= self.until:
            self.value = self.today()
            self.until = (now // 60 + 1) * 60
        return self.value


def today(zone: dt.tzinfo = BRASILIA, now: dt.datetime | None = None) -> dt.date:
    """The calendar date in `zone` (Brasília time by default) at `now` (aware; the current time by default)."""
    if now is None:
        now = dt.datetime.now(dt.timezone.utc)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(zone).date()


@lru_cache(maxsize=512)
def _holidays(year: int, uf: str | None) -> frozenset[dt.date]:
    if uf is not None and uf not in UFS:
        raise ValueError(f"unknown UF '{uf}'")
    import holidays  # imported on first use: ~0.1 s that most evaluations never need

    return frozenset(holidays.country_holidays("BR", subdiv=uf, years=year))


def is_holiday(day: dt.date, uf: str | None = None) -> bool:
    return day in _holidays(day.year, uf)


def is_business_day(day: dt.date, uf: str | None = None) -> bool:
    return day.weekday() < 5 and not is_holiday(day, uf)


# Legal deadlines are days or weeks; a count beyond a century is a mistake, not a deadline.
MAX_BUSINESS_DAYS = 36_500


def _check_range(count: int) -> None:
    if abs(count) > MAX_BUSINESS_DAYS:
        raise EvalError("OUT_OF_RANGE", f"business-day arithmetic is limited to {MAX_BUSINESS_DAYS} days")


def add_business_days(day: dt.date, n: int, uf: str | None = None) -> dt.date:
    """Move `n` business days forward (or back when negative), skipping weekends and holidays."""
    _check_range(n)
    step = 1 if n >= 0 else -1
    remaining = abs(n)
    while remaining:
        day += dt.timedelta(days=step)
        if is_business_day(day, uf):
            remaining -= 1
    return day


def business_days_between(start: dt.date, end: dt.date, uf: str | None = None) -> int:
    """Business days after `start` up to and including `end` (negative when end < start)."""
    if end < start:
        return -business_days_between(end, start, uf)
    _check_range((end - start).days // 2)
    count, day = 0, start
    while day < end:
        day += dt.timedelta(days=1)
        if is_business_day(day, uf):
            count += 1
    return count
