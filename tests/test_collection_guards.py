"""Legal guards of the collection cadence, proven over random events and random calendars."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from regua.engine.brazil import UFS, business_days_between, is_business_day, is_holiday, zone_of
from regua.portfolio.collection.guards import (
    SP_HOURS,
    GuardSettings,
    Notice,
    negativation_blocks,
    next_contact_time,
    record_expiry,
    removal_deadline,
)

DAYS = st.dates(min_value=dt.date(2018, 1, 1), max_value=dt.date(2032, 12, 31))
UF = st.sampled_from(UFS)
UTC = dt.timezone.utc
INSTANTS = st.datetimes(min_value=dt.datetime(2019, 1, 1), max_value=dt.datetime(2031, 12, 31), timezones=st.just(UTC))
SETTINGS = st.builds(GuardSettings, notice_wait_days=st.integers(0, 30),
                     notice_wait_by_uf=st.dictionaries(UF, st.integers(0, 30), max_size=3),
                     max_contacts=st.integers(1, 5), contact_period_days=st.integers(1, 10))


@st.composite
def notices(draw, around: dt.date):
    """Random notices: sent some day near the due date, delivered (with proof) later, or never."""
    out = []
    for _ in range(draw(st.integers(0, 3))):
        sent = dt.datetime.combine(around + dt.timedelta(days=draw(st.integers(-10, 400))), dt.time(10), UTC)
        delay = draw(st.none() | st.integers(0, 20))
        out.append(Notice(sent, None if delay is None else sent + dt.timedelta(days=delay)))
    return out


@given(due=DAYS, today=DAYS, uf=UF, disputed=st.booleans(), status=st.sampled_from(["open", "paid", "renegotiated"]),
       data=st.data(), settings=SETTINGS, bureau=st.sampled_from(["serasa", "spc", "boavista"]))
def test_negativation_is_allowed_only_when_every_legal_condition_holds(due, today, uf, disputed, status, data,
                                                                        settings, bureau):
    sent = data.draw(notices(due))
    blocks = negativation_blocks(status=status, disputed=disputed, due_date=due, notices=sent, today=today, uf=uf,
                                 bureau=bureau, settings=settings)
    delivered = [n.delivered_at.date() for n in sent if n.delivered_at]
    wait = max(settings.notice_wait_days, settings.notice_wait_by_uf.get(uf, 0))
    lawful = (status == "open" and not disputed and today > due and today < record_expiry(due, settings)
              and bool(delivered) and today >= min(delivered) + dt.timedelta(days=wait))
    assert (blocks == []) is lawful
    # Each block names its reason; a block that lifts by itself says when, and that day is later.
    for block in blocks:
        assert block.code and block.message
        assert block.until is None or block.until > today


def test_each_block_has_its_code():
    due, today = dt.date(2026, 1, 10), dt.date(2026, 3, 1)
    delivered = Notice(dt.datetime(2026, 2, 25, 10, tzinfo=UTC), dt.datetime(2026, 2, 25, 11, tzinfo=UTC))

    def codes(**changes):
        facts = dict(status="open", disputed=False, due_date=due, notices=[delivered], today=today, uf="SP",
                     bureau="serasa") | changes
        return [b.code for b in negativation_blocks(**facts)]

    assert codes(today=dt.date(2026, 3, 7)) == []
    assert codes() == ["NOTICE_WAIT"]  # delivered on 25/02: 10 days run to 07/03
    assert codes(notices=[Notice(delivered.sent_at)]) == ["NO_DELIVERED_NOTICE"]  # sent, never proven delivered
    assert codes(disputed=True, today=dt.date(2026, 3, 7)) == ["DISPUTED"]
    assert codes(today=dt.date(2031, 1, 10)) == ["TOO_OLD"]
    assert codes(status="paid", today=dt.date(2026, 3, 7)) == ["NOT_OPEN"]
    assert codes(today=dt.date(2026, 3, 7), settings=GuardSettings(notice_wait_by_uf={"SP": 15})) == ["NOTICE_WAIT"]


@given(paid=DAYS, uf=UF)
def test_removal_is_due_five_business_days_after_payment_in_the_debtors_state(paid, uf):
    deadline = removal_deadline(paid, uf)
    assert deadline > paid and is_business_day(deadline, uf)
    assert business_days_between(paid, deadline, uf) == 5  # holidays of the nation and of the UF skipped


def test_removal_skips_weekends_and_national_and_state_holidays():
    # Paid on Wednesday 23/12/2026: 24 (Thu), [25 Christmas, 26–27 weekend], 28, 29, 30, 31.
    assert removal_deadline(dt.date(2026, 12, 23), "SP") == dt.date(2026, 12, 31)
    # 09/07 is a São Paulo holiday (Revolução Constitucionalista), not a national one.
    assert is_holiday(dt.date(2026, 7, 9), "SP") and not is_holiday(dt.date(2026, 7, 9), "RJ")
    assert removal_deadline(dt.date(2026, 7, 8), "SP") == removal_deadline(dt.date(2026, 7, 8), "RJ") + dt.timedelta(days=1)


@given(when=INSTANTS, uf=UF, settings=SETTINGS, data=st.data())
def test_contacts_are_deferred_into_the_window_and_under_the_cap_never_dropped(when, uf, settings, data):
    previous = data.draw(st.lists(st.builds(lambda h: when - dt.timedelta(hours=h), st.integers(0, 24 * 12)),
                                  max_size=8))
    at = next_contact_time(when, uf, previous, settings)
    assert at >= when  # deferred, never earlier
    local = at.astimezone(zone_of(uf))
    assert settings.windows[uf].allows(local, uf)
    period = dt.timedelta(days=settings.contact_period_days)
    assert sum(1 for p in previous if at - period < p <= at) < settings.max_contacts
    assert (at - when) < dt.timedelta(days=settings.contact_period_days + 10)  # a short deferral, not a drop


@given(when=INSTANTS, uf=UF)
def test_with_no_history_the_contact_is_the_first_allowed_moment(when, uf):
    at = next_contact_time(when, uf, [])
    window = GuardSettings().windows[uf]
    zone = zone_of(uf)
    if window.allows(when.astimezone(zone), uf):
        assert at == when
    else:
        # Nothing in between was allowed: step back hour by hour to `when`.
        probe = at - dt.timedelta(hours=1)
        while probe > when:
            assert not window.allows(probe.astimezone(zone), uf)
            probe -= dt.timedelta(hours=1)
        assert at.astimezone(zone).minute == 0  # it is an opening time


@pytest.mark.parametrize("local, expected", [
    (dt.datetime(2026, 11, 23, 7, 59), dt.datetime(2026, 11, 23, 8, 0)),  # Monday before 8h
    (dt.datetime(2026, 11, 23, 19, 59), dt.datetime(2026, 11, 23, 19, 59)),  # inside
    (dt.datetime(2026, 11, 23, 20, 0), dt.datetime(2026, 11, 24, 8, 0)),  # closes at 20h
    (dt.datetime(2026, 11, 28, 14, 0), dt.datetime(2026, 11, 30, 8, 0)),  # Saturday after 14h: Monday
    (dt.datetime(2026, 11, 29, 10, 0), dt.datetime(2026, 11, 30, 8, 0)),  # never on Sundays
    (dt.datetime(2026, 11, 20, 10, 0), dt.datetime(2026, 11, 21, 8, 0)),  # Consciência Negra (national holiday)
])
def test_sao_paulo_window(local, expected):
    zone = zone_of("SP")
    assert next_contact_time(local.replace(tzinfo=zone), "SP", []) == expected.replace(tzinfo=zone)


def test_windows_use_the_debtors_local_time():
    # 12:30 UTC is 08:30 in Manaus (UTC-4) and 09:30 in São Paulo: both inside; 11:30 UTC is 07:30 in Manaus.
    instant = dt.datetime(2026, 11, 24, 11, 30, tzinfo=UTC)
    assert next_contact_time(instant, "SP", []) == instant
    assert next_contact_time(instant, "AM", []) == dt.datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert SP_HOURS.allows(dt.datetime(2026, 11, 24, 13, 59), "SP") and not SP_HOURS.allows(
        dt.datetime(2026, 11, 28, 14, 0), "SP")


@given(due=DAYS)
def test_records_expire_five_years_after_the_due_date(due):
    expiry = record_expiry(due)
    assert (expiry.year - due.year) == 5 and expiry > due
    assume(not (due.month == 2 and due.day == 29))
    assert (expiry.month, expiry.day) == (due.month, due.day)
