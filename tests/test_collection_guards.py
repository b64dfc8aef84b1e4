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
    contact_deferral,
    earliest_negativation,
    last_day_to_pay,
    negativation_blocks,
    next_contact_time,
    notice_is_futile,
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
    """Random notices: sent some day near the due date, delivered (with proof) later, or never;
    printing a last day to pay (or, for old rows, none)."""
    out = []
    for _ in range(draw(st.integers(0, 3))):
        sent = dt.datetime.combine(around + dt.timedelta(days=draw(st.integers(-10, 400))), dt.time(10), UTC)
        delay = draw(st.none() | st.integers(0, 20))
        printed = draw(st.none() | st.integers(0, 30))
        out.append(Notice(sent, None if delay is None else sent + dt.timedelta(days=delay),
                          None if printed is None else sent.date() + dt.timedelta(days=printed)))
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
              and bool(delivered)
              # Código Civil art. 132: the start day excluded, the last included; a record only after it …
              and (today - min(delivered)).days > wait
              # … after its last day moved to a business day …
              and today > last_day_to_pay(min(delivered), wait, uf)
              # … and never on or before a last day to pay that a notice printed.
              and all(today > n.deadline for n in sent if n.deadline))
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

    # Delivered on Wednesday 25/02: 10 days run to Saturday 07/03, moved to Monday 09/03 (art. 132 §1).
    assert codes(today=dt.date(2026, 3, 10)) == []
    assert codes() == ["NOTICE_WAIT"]
    assert codes(today=dt.date(2026, 3, 9)) == ["NOTICE_WAIT"]
    assert codes(notices=[Notice(delivered.sent_at)]) == ["NO_DELIVERED_NOTICE"]  # sent, never proven delivered
    assert codes(disputed=True, today=dt.date(2026, 3, 10)) == ["DISPUTED"]
    assert codes(today=dt.date(2031, 1, 10)) == ["TOO_OLD"]
    assert codes(status="paid", today=dt.date(2026, 3, 10)) == ["NOT_OPEN"]
    assert codes(today=dt.date(2026, 3, 10), settings=GuardSettings(notice_wait_by_uf={"SP": 15})) == ["NOTICE_WAIT"]


def _blocks_on(today, notices, due=dt.date(2026, 1, 10), uf="SP"):
    return negativation_blocks(status="open", disputed=False, due_date=due, notices=notices, today=today, uf=uf,
                               bureau="serasa")


def test_the_waiting_period_excludes_the_start_day_and_includes_the_last():
    """Código Civil art. 132: delivered on 13/03, 10 days run through 23/03; the record may open from 24/03,
    never on the 10th day after delivery (the morning the notice names as the last day to pay)."""
    delivered = Notice(dt.datetime(2026, 3, 13, 9, tzinfo=UTC), dt.datetime(2026, 3, 13, 9, 5, tzinfo=UTC),
                       dt.date(2026, 3, 23))
    assert last_day_to_pay(dt.date(2026, 3, 13), 10, "SP") == dt.date(2026, 3, 23)
    assert earliest_negativation(dt.date(2026, 3, 13), 10, "SP") == dt.date(2026, 3, 24)
    blocks = _blocks_on(dt.date(2026, 3, 23), [delivered])
    assert [(b.code, b.until) for b in blocks] == [("NOTICE_WAIT", dt.date(2026, 3, 24))]
    assert _blocks_on(dt.date(2026, 3, 24), [delivered]) == []
    # A last day on a holiday of the debtor's state moves to the next business day: 09/07 is a São Paulo holiday.
    assert last_day_to_pay(dt.date(2026, 6, 29), 10, "SP") == dt.date(2026, 7, 10)
    assert last_day_to_pay(dt.date(2026, 6, 29), 10, "RJ") == dt.date(2026, 7, 9)


def test_the_date_printed_is_the_date_enforced_and_a_late_delivery_only_moves_it_later():
    sent = dt.datetime(2026, 3, 2, 13, tzinfo=UTC)  # Monday; the notice printed 12/03 (sent + 10 days)
    printed = last_day_to_pay(sent.date(), 10, "SP")
    assert printed == dt.date(2026, 3, 12)
    on_time = Notice(sent, sent, printed)
    assert [b.until for b in _blocks_on(dt.date(2026, 3, 12), [on_time])] == [dt.date(2026, 3, 13)]
    # Delivered 8 days late: 10 days from the delivery (to 20/03) and never before the printed day.
    late = Notice(sent, sent + dt.timedelta(days=8), printed)
    assert [b.until for b in _blocks_on(dt.date(2026, 3, 13), [late])] == [dt.date(2026, 3, 21)]
    # A printed day later than the delivery's period (the wait was shortened since) still holds.
    generous = Notice(sent, sent, dt.date(2026, 3, 30))
    assert [b.until for b in _blocks_on(dt.date(2026, 3, 25), [generous])] == [dt.date(2026, 3, 31)]
    assert _blocks_on(dt.date(2026, 3, 31), [generous]) == []


def test_a_notice_is_futile_when_the_debt_reaches_five_years_before_the_earliest_negativation():
    due = dt.date(2021, 3, 15)  # 5 years on 15/03/2026
    assert notice_is_futile(due, dt.date(2026, 3, 10), "SP", "serasa")  # earliest inclusion 21/03
    assert notice_is_futile(due, dt.date(2026, 3, 4), "SP", "serasa")  # last day 14/03 (Sat) -> 16/03: opens 17/03
    assert not notice_is_futile(due, dt.date(2026, 3, 2), "SP", "serasa")  # last day 12/03, opens 13/03


@given(due=DAYS, sent=DAYS, uf=UF, settings=SETTINGS)
def test_a_notice_that_is_not_futile_leaves_a_day_to_negativate(due, sent, uf, settings):
    opens = earliest_negativation(sent, settings.notice_wait("serasa", uf), uf)
    assert notice_is_futile(due, sent, uf, "serasa", settings) is (opens >= record_expiry(due, settings))
    assert opens > last_day_to_pay(sent, settings.notice_wait("serasa", uf), uf) >= sent


def test_a_contact_deferred_by_the_cap_says_so_even_outside_the_window():
    zone = zone_of("RJ")
    saturday = dt.datetime(2026, 3, 14, 10, tzinfo=zone)  # RJ: no contacts on weekends
    friday = [dt.datetime(2026, 3, 13, h, tzinfo=zone) for h in (10, 11, 12)]
    assert contact_deferral(saturday, "RJ", []) == (dt.datetime(2026, 3, 16, 9, tzinfo=zone), "OUT_OF_WINDOW")
    at, reason = contact_deferral(saturday, "RJ", friday)
    assert reason == "FREQUENCY_CAP" and at.astimezone(zone).date() == dt.date(2026, 3, 20)
    monday = dt.datetime(2026, 3, 16, 10, tzinfo=zone)
    assert contact_deferral(monday, "RJ", []) == (monday, None)


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
