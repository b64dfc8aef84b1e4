"""server.ids: decision ids are ULIDs (48-bit milliseconds, 80 random bits, Crockford base32)."""

from __future__ import annotations

import random
import time

from regua.server import ids

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def reference_ulid(millis: int, bits: int) -> str:
    """The 130-bit value millis << 80 | bits, five bits per character, most significant first."""
    value = millis << 80 | bits
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def test_ids_are_the_ulid_of_their_millisecond_and_random_bits_across_milliseconds(monkeypatch):
    clock = [1_764_000_000_123_456_789]
    monkeypatch.setattr(time, "time_ns", lambda: clock[0])
    for step in (0, 1, 0, 999_999, 1, 5_000_000_000, 0):  # same ms, next ms, ... : the cached prefix follows
        clock[0] += step
        state = random.getstate()
        made = ids.new_decision_id()
        random.setstate(state)
        assert made == reference_ulid(clock[0] // 1_000_000, random.getrandbits(80))
        assert ids.id_millis(made) == clock[0] // 1_000_000 and ids.ULID.match(made)


def test_ids_of_one_millisecond_differ_and_sort_after_earlier_ones(monkeypatch):
    clock = [1_764_000_000_000_000_000]
    monkeypatch.setattr(time, "time_ns", lambda: clock[0])
    first = {ids.new_decision_id() for _ in range(1000)}
    clock[0] += 1_000_000
    later = ids.new_decision_id()
    assert len(first) == 1000 and all(later > made for made in first)
