"""Experiments in the server's store (SQLite, or PostgreSQL through `store.db`, regua.dialect):
definitions, arms and their buckets, the audit trail,
and which arm made each decision (server/migrations.py m006).

Every change is one transaction that also appends its audit entry: an experiment is never seen
half-changed, and its history says who did what and when.
"""

from __future__ import annotations

import hashlib
import json

from .store import Store, utc_now

BUCKETS = 10_000  # a share is a whole number of basis points: 12.5% is 1250 buckets


def bucket(salt: str, key: str) -> int:
    digest = hashlib.sha256(f"{salt}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


class ExperimentConflict(Exception):
    """A change the experiment's state does not allow; `code` is stable."""

    def __init__(self, status: int, code: str, message: str, location: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.location = location


def size(ranges: list[list[int]]) -> int:
    return sum(end - start for start, end in ranges)


def initial_buckets(shares: list[int]) -> list[list[list[int]]]:
    """Contiguous ranges in arm order: 90/10 is [0, 9000) and [9000, 10000)."""
    out, start = [], 0
    for share in shares:
        out.append([[start, start + share]] if share else [])
        start += share
    return out


def rebalance(current: list[list[list[int]]], shares: list[int]) -> list[list[list[int]]]:
    """New ranges for new shares that move as few buckets as possible: an arm that shrinks gives up
    the end of its ranges, an arm that grows takes those freed buckets, everyone else keeps theirs.
    Going from 90/10 to 80/20 moves exactly the 10% between 8000 and 9000."""
    alloc = [[list(r) for r in ranges] for ranges in current]
    pool: list[list[int]] = []
    for ranges, share in zip(alloc, shares):
        excess = size(ranges) - share
        while excess > 0:
            last = ranges[-1]
            taken = min(excess, last[1] - last[0])
            pool.append([last[1] - taken, last[1]])
            last[1] -= taken
            if last[0] == last[1]:
                ranges.pop()
            excess -= taken
    pool.sort()
    for ranges, share in zip(alloc, shares):
        need = share - size(ranges)
        while need > 0:
            first = pool[0]
            taken = min(need, first[1] - first[0])
            ranges.append([first[0], first[0] + taken])
            first[0] += taken
            if first[0] == first[1]:
                pool.pop(0)
            need -= taken
        ranges.sort()
        merged: list[list[int]] = []
        for start, end in ranges:
            if merged and merged[-1][1] == start:
                merged[-1][1] = end
            else:
                merged.append([start, end])
        ranges[:] = merged
    return alloc


class ExperimentStore:
    def __init__(self, store: Store):
        self.store = store

    @property
    def db(self):
        return self.store.db

    # ---- reading ----
    def generation(self) -> int:
        """Grows with every change anywhere (any worker): cheap to poll."""
        return self.db.execute("select coalesce(max(id), 0) from experiment_audit").fetchone()[0]

    def get(self, name: str, db=None) -> dict | None:
        db = db or self.db
        rows = list(db.query("select * from experiments where name = ?", [name]))
        if not rows:
            return None
        experiment = rows[0]
        experiment["arms"] = [dict(arm, buckets=json.loads(arm["buckets"])) for arm in db.query(
            "select * from experiment_arms where experiment = ? order by position", [name])]
        return experiment

    def names(self, status: tuple[str, ...] | None = None) -> list[str]:
        sql, params = "select name from experiments", []
        if status:
            sql += f" where status in ({', '.join('?' for _ in status)})"
            params = list(status)
        return [row["name"] for row in self.db.query(sql + " order by created_at, name", params)]

    def live(self) -> list[dict]:
        return [self.get(name) for name in self.names(("running", "paused"))]

    def audit(self, name: str) -> list[dict]:
        return [dict(row, detail=json.loads(row["detail"] or "{}")) for row in self.db.query(
            'select at, "by", action, detail from experiment_audit where experiment = ? order by id', [name])]

    # ---- changing ----
    def _audit(self, db, name: str, by: str, action: str, detail: dict) -> None:
        db.execute('insert into experiment_audit (experiment, at, "by", action, detail) values (?, ?, ?, ?, ?)',
                   [name, utc_now(), by, action, json.dumps(detail, ensure_ascii=False, sort_keys=True)])

    def create(self, definition: dict, challenger_sources: dict[str, tuple[str, str, str]], by: str) -> dict:
        """`definition`: name, policy, key_field, salt, champion_revision, arms [{arm, role, revision,
        share, sample}]; `challenger_sources`: arm -> (version, source, source_hash) to store as new
        revisions (never activated). One transaction: all of it or nothing."""
        name, policy = definition["name"], definition["policy"]
        now = utc_now()
        with self.store.transaction() as db:
            self.store.lock_versions(db)  # challengers get revision numbers: one writer at a time
            if list(db.query("select 1 from experiments where name = ?", [name])):
                raise ExperimentConflict(409, "EXPERIMENT_EXISTS", f"an experiment named '{name}' already exists",
                                         "name")
            live = list(db.query("select name from experiments where policy = ? and status in ('running', 'paused')",
                                 [policy]))
            if live:
                raise ExperimentConflict(409, "EXPERIMENT_ON_POLICY", f"policy '{policy}' already has experiment "
                                         f"'{live[0]['name']}'; stop it first", "policy")
            arms = definition["arms"]
            for arm in arms:
                if arm["arm"] in challenger_sources:
                    version, source, digest = challenger_sources[arm["arm"]]
                    revision = db.execute("select coalesce(max(revision), 0) + 1 from policy_versions where name = ?",
                                          [policy]).fetchone()[0]
                    db["policy_versions"].insert({"name": policy, "revision": revision, "version": version,
                                                  "source": source, "source_hash": digest,
                                                  "origin": f"experiment:{name}", "created_at": now})
                    arm["revision"] = revision
            db["experiments"].insert({"name": name, "policy": policy, "key_field": definition["key_field"],
                                      "salt": definition["salt"], "status": "running",
                                      "champion_revision": definition["champion_revision"], "created_at": now,
                                      "created_by": by, "updated_at": now})
            for position, (arm, ranges) in enumerate(zip(arms, initial_buckets([a["share"] for a in arms]))):
                db["experiment_arms"].insert({"experiment": name, "arm": arm["arm"], "position": position,
                                              "role": arm["role"], "revision": arm.get("revision"),
                                              "share": arm["share"], "sample": arm.get("sample"),
                                              "buckets": json.dumps(ranges)})
            self._audit(db, name, by, "create", {"policy": policy, "key": definition["key_field"],
                                                 "arms": {a["arm"]: {"revision": a.get("revision"),
                                                                     "share": a["share"] / 100,
                                                                     "role": a["role"]} for a in arms}})
            return self.get(name, db)

    def _live(self, db, name: str, allowed=("running", "paused")) -> dict:
        experiment = self.get(name, db)
        if experiment is None:
            raise ExperimentConflict(404, "UNKNOWN_EXPERIMENT", f"no experiment named '{name}'")
        if experiment["status"] not in allowed:
            raise ExperimentConflict(409, "EXPERIMENT_FINISHED", f"experiment '{name}' is {experiment['status']}")
        return experiment

    def set_shares(self, name: str, shares: dict[str, int], samples: dict[str, float], by: str) -> dict:
        with self.store.transaction() as db:
            experiment = self._live(db, name)
            arms = experiment["arms"]
            new = [shares.get(a["arm"], a["share"]) for a in arms]
            moved = rebalance([a["buckets"] for a in arms], new)
            for arm, share, ranges in zip(arms, new, moved):
                db.execute("update experiment_arms set share = ?, sample = ?, buckets = ? where experiment = ? "
                           "and arm = ?", [share, samples.get(arm["arm"], arm["sample"]), json.dumps(ranges), name,
                                           arm["arm"]])
            db.execute("update experiments set updated_at = ? where name = ?", [utc_now(), name])
            self._audit(db, name, by, "shares", {"shares": {a["arm"]: s / 100 for a, s in zip(arms, new)},
                                                 "samples": samples,
                                                 "before": {a["arm"]: a["share"] / 100 for a in arms}})
            return self.get(name, db)

    def set_status(self, name: str, status: str, by: str) -> dict:
        allowed = {"paused": ("running",), "running": ("paused",), "stopped": ("running", "paused")}[status]
        action = {"paused": "pause", "running": "resume", "stopped": "stop"}[status]
        with self.store.transaction() as db:
            experiment = self._live(db, name)
            if experiment["status"] not in allowed:
                raise ExperimentConflict(409, "EXPERIMENT_STATE", f"experiment '{name}' is {experiment['status']}; "
                                         f"cannot {action} it")
            db.execute("update experiments set status = ?, updated_at = ? where name = ?", [status, utc_now(), name])
            self._audit(db, name, by, action, {"before": experiment["status"]})
            return self.get(name, db)

    def promote(self, name: str, arm_name: str, by: str) -> dict:
        """The challenger's revision becomes the policy's active revision and the experiment ends,
        in one transaction."""
        with self.store.transaction() as db:
            experiment = self._live(db, name)
            arm = next((a for a in experiment["arms"] if a["arm"] == arm_name), None)
            if arm is None or arm["role"] == "champion":
                raise ExperimentConflict(400 if arm is None else 409, "UNKNOWN_ARM" if arm is None else "NOT_A_CHALLENGER",
                                         f"'{arm_name}' is not a challenger of experiment '{name}'", "arm")
            version = list(db.query("select id from policy_versions where name = ? and revision = ?",
                                    [experiment["policy"], arm["revision"]]))
            self.store.activate_in(db, experiment["policy"], version[0]["id"], by,
                                   f"promoted from experiment {name} (arm {arm_name})")
            db.execute("update experiments set status = 'promoted', updated_at = ? where name = ?", [utc_now(), name])
            self._audit(db, name, by, "promote", {"arm": arm_name, "revision": arm["revision"]})
            return self.get(name, db)

    # ---- decisions ----
    def record(self, rows: list[tuple]) -> None:
        with self.store.transaction() as db:
            db.conn.executemany("insert into experiment_decisions (experiment, arm, shadow, decision_id, revision, outcome, "
                           "reasons, outputs, rules, document_hash, created_at) values "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def for_decision(self, decision_id: str) -> list[dict]:
        """The experiment rows of one decision: the arm that decided (shadow 0), then its shadows."""
        return list(self.db.query("select experiment, arm, shadow, revision, outcome, reasons from "
                                  "experiment_decisions where decision_id = ? order by shadow, id", [decision_id]))

    def decisions(self, name: str) -> list[dict]:
        return list(self.db.query("select * from experiment_decisions where experiment = ? order by id", [name]))
