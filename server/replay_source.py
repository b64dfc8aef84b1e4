"""The decisions the policy lab replays (`regua replay`): read from the store, oldest first.

Each record is a plain dict the lab (regua.lab.replay) understands: `id`, `as_of` (the decision's
date in Brasília, from its ULID), `input` and `connector_answers` (JSON text as stored) and the
stored answer's `outcome` and `body`. Purged decisions (no input left) are counted, not yielded.
`path` is the store's location: a SQLite file or a postgresql:// URL (read through a server-side
cursor, so a large window streams on either backend).
"""

from __future__ import annotations

import datetime as dt
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from regua import postgres
from regua.engine.brazil import BRASILIA
from regua.sqlite import connect

from .ids import id_floor, id_millis
from .store import open_store as open_server_store


class Window:
    """Which decisions: one policy, from a date (inclusive) to a date (inclusive), in Brasília."""

    def __init__(self, policy: str, start: dt.date | None = None, end: dt.date | None = None):
        self.policy = policy
        self.start_id = id_floor(dt.datetime.combine(start, dt.time(), BRASILIA)) if start else None
        self.end_id = id_floor(dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), BRASILIA)) if end else None

    def where(self) -> tuple[str, list]:
        clauses, params = ["policy = ?"], [self.policy]
        if self.start_id:
            clauses.append("id >= ?")
            params.append(self.start_id)
        if self.end_id:
            clauses.append("id < ?")
            params.append(self.end_id)
        return " and ".join(clauses), params


def open_store(path: str) -> None:
    """The store exists and has the lab's column (migrations applied); raises FileNotFoundError
    (a SQLite file that is not there) or regua.postgres.PostgresUnavailable."""
    if not postgres.is_url(path) and not Path(path).exists():
        raise FileNotFoundError(path)
    open_server_store(path).close()


class _Reader:
    """`execute(sql with ?, params)` -> a cursor of tuples, on either backend."""

    def __init__(self, path: str):
        self.postgres = postgres.is_url(path)
        if self.postgres:
            from psycopg.rows import tuple_row

            self.conn = postgres.connect(path, autocommit=False)
            self.conn.row_factory = tuple_row
            self._cursors = 0
        else:
            if not Path(path).exists():  # reading never creates an empty store
                raise FileNotFoundError(path)
            self.db = connect(path)

    def execute(self, sql: str, params=()):
        if not self.postgres:
            return self.db.execute(sql, params)
        self._cursors += 1
        cursor = self.conn.cursor(name=f"replay_{self._cursors}")  # server-side: streams, never all in memory
        cursor.itersize = 1000
        cursor.execute(sql.replace("?", "%s"), list(params))
        return cursor

    def close(self) -> None:
        if self.postgres:
            self.conn.rollback()  # read only
            self.conn.close()
        else:
            self.db.conn.close()


@contextmanager
def _reader(path: str):
    reader = _Reader(path)
    try:
        yield reader
    finally:
        reader.close()


def policies(path: str) -> dict[str, int]:
    """How many decisions each policy has, for messages."""
    with _reader(path) as db:
        return dict(db.execute("select policy, count(*) from decisions group by policy").fetchall())


def count(path: str, window: Window) -> tuple[int, int]:
    """(decisions in the window, of which purged)."""
    where, params = window.where()
    with _reader(path) as db:
        total, purged = db.execute(f"select count(*), count(purged_at) from decisions where {where}",
                                   params).fetchone()
        return total, purged


_COLUMNS = "select id, outcome, body, input, connector_answers from decisions"


def records(path: str, window: Window, sample: int | None = None, seed: int = 16) -> Iterator[dict]:
    """The window's decisions that still hold their input, oldest first; `sample`: at most that
    many, drawn at random (reproducibly: `seed`) from the whole window."""
    if sample is not None:
        for part in sample_partitions(path, window, sample, seed, 500):
            yield from part()
        return
    where, params = window.where()
    with _reader(path) as db:
        cursor = db.execute(f"{_COLUMNS} where {where} and purged_at is null order by id", params)
        while True:
            rows = cursor.fetchmany(1000)
            if not rows:
                return
            yield from (_record(row) for row in rows)


def _sampled_ids(path: str, window: Window, sample: int, seed: int) -> list[str]:
    """Reservoir sampling (algorithm R) over the window's ids: memory grows with the sample, not
    with the window. Sorted, so a sample is replayed oldest first."""
    where, params = window.where()
    rng, chosen = random.Random(seed), []
    with _reader(path) as db:
        for seen, (decision_id,) in enumerate(db.execute(f"select id from decisions where {where} and purged_at "
                                                         "is null order by id", params)):
            if seen < sample:
                chosen.append(decision_id)
            elif (slot := rng.randrange(seen + 1)) < sample:
                chosen[slot] = decision_id
    return sorted(chosen)


def _record(row) -> dict:
    decision_id, outcome, body, data, answers = row
    return {"id": decision_id, "as_of": _day(decision_id), "outcome": outcome, "body": body, "input": data,
            "connector_answers": answers}


#: UTC hour -> the date in Brasília: the zone's offsets are whole hours, so an hour has one date.
_DAYS: dict[int, str] = {}


#: Crockford's base 32 (ULIDs) as the digits int(text, 32) reads: the time part in C, not char by char.
_AS_BASE32 = str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ", "0123456789abcdefghijklmnopqrstuv")


def _day(decision_id: str) -> str:
    """The decision's date in Brasília (ISO), from its ULID; one conversion per hour of ids."""
    digits = decision_id[:10].translate(_AS_BASE32)
    # letters outside Crockford's alphabet stay upper-case: server.ids says what is wrong with such an id
    hour = (int(digits, 32) if len(digits) == 10 and (digits.islower() or digits.isdigit())
            else id_millis(decision_id)) // 3_600_000
    day = _DAYS.get(hour)
    if day is None:
        if len(_DAYS) > 100_000:
            _DAYS.clear()
        day = _DAYS[hour] = dt.datetime.fromtimestamp(hour * 3600, BRASILIA).date().isoformat()
    return day


def partitions(path: str, window: Window, size: int) -> Iterator["Partition"]:
    """The window's decisions as partitions of about `size` decisions (id ranges, read from the
    index alone), each a picklable loader a worker calls to read its records from the store
    itself (a SQLite file the worker sees at the same path, or a PostgreSQL server it reaches):
    the driver ships ranges, not rows."""
    where, params = window.where()
    with _reader(path) as db:
        cursor = db.execute(f"select id from decisions where {where} order by id", params)
        start = last = None
        seen = 0
        for (decision_id,) in cursor:
            if start is None:
                start = decision_id
            last = decision_id
            seen += 1
            if seen == size:
                yield Partition(path, window.policy, start, last)
                start, seen = None, 0
        if start is not None:
            yield Partition(path, window.policy, start, last)


def sample_partitions(path: str, window: Window, sample: int, seed: int, size: int) -> Iterator["IdPartition"]:
    """A sample of the window (see records) as partitions of at most `size` ids each."""
    chosen = _sampled_ids(path, window, sample, seed)
    for start in range(0, len(chosen), size):
        yield IdPartition(path, chosen[start:start + size])


class Partition:
    """Decisions of `policy` with start <= id <= last that still hold their input."""

    def __init__(self, path: str, policy: str, start: str, last: str):
        self.path, self.policy, self.start, self.last = path, policy, start, last

    def __call__(self) -> list[dict]:
        with _reader(self.path) as db:
            rows = db.execute(f"{_COLUMNS} where policy = ? and id >= ? and id <= ? and purged_at is null order by id",
                              [self.policy, self.start, self.last]).fetchall()
        return [_record(row) for row in rows]

    def __repr__(self) -> str:  # what Dask may log: never a password
        return f"Partition({_where(self.path)}, {self.policy}, {self.start}..{self.last})"


class IdPartition:
    """The decisions with these ids that still hold their input (a sample's part)."""

    def __init__(self, path: str, ids: list[str]):
        self.path, self.ids = path, ids

    def __call__(self) -> list[dict]:
        with _reader(self.path) as db:
            rows = db.execute(f"{_COLUMNS} where id in ({', '.join('?' for _ in self.ids)}) and purged_at is null "
                              "order by id", self.ids).fetchall()
        return [_record(row) for row in rows]

    def __repr__(self) -> str:
        return f"IdPartition({_where(self.path)}, {len(self.ids)} ids)"


def probe(path: str, window: Window) -> tuple[int, int] | str:
    """What a worker sees of the window: (decisions, purged) as `count` gives them, or why it
    cannot read the store. The driver ships partitions only to workers that see what it sees."""
    try:
        return count(path, window)
    except Exception as error:  # noqa: BLE001 — any failure means "ship the rows instead"; said, not raised
        return f"{type(error).__name__}"


def _where(path: str) -> str:
    return postgres.redacted(path) if postgres.is_url(path) else path
