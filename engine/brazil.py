"""Brazilian business days: national holidays, plus state (UF) holidays when a UF is given."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays

from .errors import EvalError

UFS = (
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA", "PB", "PR",
    "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
)


@lru_cache(maxsize=512)
def _holidays(year: int, uf: str | None) -> frozenset[dt.date]:
    if uf is not None and uf not in UFS:
        raise ValueError(f"unknown UF '{uf}'")
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
