"""Brazil's clocks in one place (regua.engine.brazil): the zone of every UF, "today" in Brasília,
and historical instants read with the daylight saving time Brazil had until 2019."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from regua.engine.brazil import BRASILIA, UFS, today, zone_of

UTC = dt.timezone.utc

ZONES = {
    "AC": "America/Rio_Branco", "AM": "America/Manaus", "RR": "America/Boa_Vista", "RO": "America/Porto_Velho",
    "MT": "America/Cuiaba", "MS": "America/Campo_Grande", "PA": "America/Belem", "AP": "America/Belem",
    "TO": "America/Araguaina", "MA": "America/Fortaleza", "PI": "America/Fortaleza", "CE": "America/Fortaleza",
    "RN": "America/Fortaleza", "PB": "America/Fortaleza", "PE": "America/Recife", "AL": "America/Maceio",
    "SE": "America/Maceio", "BA": "America/Bahia",
}


def test_brasilia_is_sao_paulo():
    assert BRASILIA == ZoneInfo("America/Sao_Paulo")


@pytest.mark.parametrize("uf", UFS)
def test_every_uf_has_its_iana_zone(uf):
    assert zone_of(uf) == ZoneInfo(ZONES.get(uf, "America/Sao_Paulo"))


@pytest.mark.parametrize(("uf", "hours"), [
    ("SP", -3), ("RJ", -3), ("DF", -3), ("RS", -3), ("BA", -3), ("PE", -3), ("PA", -3),
    ("AM", -4), ("RR", -4), ("RO", -4), ("MT", -4), ("MS", -4), ("AC", -5),
])
def test_offsets_today(uf, hours):
    instant = dt.datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert instant.astimezone(zone_of(uf)).utcoffset() == dt.timedelta(hours=hours)


def test_unknown_uf_is_refused():
    with pytest.raises(ValueError, match="unknown UF"):
        zone_of("XX")


def test_historical_daylight_saving_time():
    # Brazil had DST until 2019 (south, southeast and centre-west): a 2018 summer afternoon was UTC-2 in São Paulo.
    summer_2018 = dt.datetime(2018, 12, 1, 14, 0, tzinfo=UTC).astimezone(BRASILIA)
    assert (summer_2018.hour, summer_2018.utcoffset()) == (12, dt.timedelta(hours=-2))
    summer_2026 = dt.datetime(2026, 12, 1, 14, 0, tzinfo=UTC).astimezone(BRASILIA)
    assert (summer_2026.hour, summer_2026.utcoffset()) == (11, dt.timedelta(hours=-3))
    # Per UF: MS (Campo Grande) had DST too (UTC-3 then, UTC-4 now); the northeast had none (UTC-3 both times).
    assert dt.datetime(2018, 12, 1, 14, 0, tzinfo=UTC).astimezone(zone_of("MS")).hour == 11
    assert dt.datetime(2026, 12, 1, 14, 0, tzinfo=UTC).astimezone(zone_of("MS")).hour == 10
    assert dt.datetime(2018, 12, 1, 14, 0, tzinfo=UTC).astimezone(zone_of("CE")).hour == 11
    assert dt.datetime(2018, 12, 1, 14, 0, tzinfo=UTC).astimezone(zone_of("AM")).hour == 10


def test_today_is_the_date_in_the_zone():
    late = dt.datetime(2026, 3, 2, 2, 30, tzinfo=UTC)  # 23:30 on 1 March in Brasília, 22:30 in Manaus
    assert today(now=late) == dt.date(2026, 3, 1)
    assert today(zone_of("AM"), now=late) == dt.date(2026, 3, 1)
    assert today(UTC, now=late) == dt.date(2026, 3, 2)
    assert today(now=dt.datetime(2026, 3, 2, 3, 0, tzinfo=UTC)) == dt.date(2026, 3, 2)
    with pytest.raises(ValueError, match="aware"):
        today(now=dt.datetime(2026, 3, 2, 3, 0))
    assert today() in {dt.datetime.now(UTC).date() - dt.timedelta(days=1), dt.datetime.now(UTC).date()}


def test_per_minute_reads_the_clock_once_a_minute_and_turns_with_the_day(monkeypatch):
    """The server's and the sandbox bureau's today(): one read per wall-clock minute, and the new
    date from the first call after midnight (a minute boundary)."""
    import time

    from regua.engine.brazil import PerMinute

    reads = []
    midnight = 1_767_236_400.0  # 2026-01-01 00:00 in Brasília (UTC-3)
    now = [midnight - 90.5]  # 23:58:29.5

    def clock():
        reads.append(now[0])
        return dt.date(2025, 12, 31) if now[0] < midnight else dt.date(2026, 1, 1)

    monkeypatch.setattr(time, "time", lambda: now[0])
    today = PerMinute(clock)
    assert today() == dt.date(2025, 12, 31) and len(reads) == 1
    now[0] += 20  # 23:58:49.5: the same minute
    assert today() == dt.date(2025, 12, 31) and len(reads) == 1
    now[0] = midnight - 0.001  # 23:59:59.999: a new minute, read again
    assert today() == dt.date(2025, 12, 31) and len(reads) == 2
    now[0] = midnight  # 00:00:00.000: the date has changed
    assert today() == dt.date(2026, 1, 1) and len(reads) == 3
