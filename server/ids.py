"""Decision ids are ULIDs: 48 bits of milliseconds since the epoch, then 80 random bits, as 26
Crockford base32 characters. They sort by creation time, so the id *is* the decision's
timestamp: the store keeps no separate column for it and finds a time range as an id range.

The random part need not be secret (reading a decision takes the decisions:read scope); it
only has to make collisions within one millisecond negligible (2^-80).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time

_CROCKFORD = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUES = {c: i for i, c in enumerate(_CROCKFORD.decode())}
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


# Two letters per 10 bits: a new id is 13 table reads (base64.b32encode is pure Python in 3.11
# and took several times as long, on every POST /evaluate).
_PAIRS = [a + b for a in _CROCKFORD.decode() for b in _CROCKFORD.decode()]
_SHIFTS = tuple(range(120, -1, -10))


def _encode(value: int) -> str:
    # 130 bits (two leading zeros) in 26 five-bit groups, most significant first.
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


# The first 10 characters are the 48-bit millisecond (with the two leading zero bits), the last 16
# the 80 random bits: the time part is encoded once per millisecond, not per id. A tuple, replaced
# whole, so threads making ids at once never read a prefix of another millisecond.
_last_millis: tuple[int, str] = (-1, "")


def new_decision_id() -> str:
    global _last_millis
    millis = time.time_ns() // 1_000_000
    last = _last_millis
    if last[0] != millis:
        last = _last_millis = (millis, _encode(millis << 80)[:10])
    bits = random.getrandbits(80)
    pairs = _PAIRS
    return (last[1] + pairs[bits >> 70] + pairs[(bits >> 60) & 1023] + pairs[(bits >> 50) & 1023]
            + pairs[(bits >> 40) & 1023] + pairs[(bits >> 30) & 1023] + pairs[(bits >> 20) & 1023]
            + pairs[(bits >> 10) & 1023] + pairs[bits & 1023])


def id_millis(decision_id: str) -> int:
    """When the decision was made, in milliseconds since the epoch (its ULID's time part)."""
    millis = 0
    for char in decision_id[:10]:
        millis = millis * 32 + _VALUES[char]
    return millis


def id_time(decision_id: str) -> dt.datetime:
    """When the decision was made (UTC, millisecond precision)."""
    return dt.datetime.fromtimestamp(id_millis(decision_id) / 1000, dt.timezone.utc)


def id_floor(instant: dt.datetime) -> str:
    """The smallest id made at or after `instant`: ids >= this were made from `instant` on."""
    millis = int(instant.timestamp() * 1000)
    return _encode(max(millis, 0) << 80)
