"""Replay: re-evaluate stored decisions with a candidate policy and report what changes.

Each record (server.replay_source) holds the decision's input as received, the connector answers
its lookups got (engine.recorded) and the answer it gave. The candidate is evaluated on that input,
as of the decision's date, with connectors that answer only what was recorded: no bureau is
asked. A lookup the original never made fails and the decision is counted under "needs a live
lookup", left out of the change statistics (its outcome would be a guess).

A record the candidate cannot read is counted and listed, never fatal: an input field the
candidate no longer has is dropped (counted per field), a field it added takes its default, and a
required field it added (or a value it now refuses) makes the record an error naming the field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

import msgspec

from regua.engine.connectors import Answer, Connectors
from regua.engine.prepared import InvalidInput
from regua.engine.recorded import LiveRefused, RecordedConnectors

from .common import add_counts, as_decimal, distribution, fired_rules, money_outputs, outputs_encoder
from .cuts import group_order, parse_cuts
from .replay_fast import FastPath, _Fallback

# Inputs: JSON numbers with a fraction become Decimal from their text, as the server read them.
_decode_exact = msgspec.json.Decoder(float_hook=Decimal).decode


class _StoredReason(msgspec.Struct):
    rule: str | None = None
    error: Any = msgspec.UNSET  # present (even null) when the rule failed rather than fired


class _StoredAnswer(msgspec.Struct):
    """The parts of a stored answer (Decision.to_dict) a replay compares: decoding only these
    skips the messages, the trace and the connector calls (about half the text)."""

    outcome: str | None = None
    outputs: dict[str, Any] | None = None
    reasons: list[_StoredReason] | None = None


_decode_answer = msgspec.json.Decoder(_StoredAnswer).decode

#: Errors listed in full in a report; beyond that only counted.
MAX_LISTED_ERRORS = 200


@dataclass
class ReplayReport:
    """Mergeable: partial reports of worker processes add up (`merge`)."""

    policy: str = ""
    version: str = ""
    by: tuple[str, ...] = ()
    money: tuple[str, ...] = ()
    total: int = 0  # records read
    replayed: int = 0  # evaluated with every lookup answered from the record
    changed: int = 0
    live: int = 0  # needed a lookup the original never made
    live_connectors: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)
    error_list: list[dict] = field(default_factory=list)
    dropped_fields: dict[str, int] = field(default_factory=dict)  # stored, unknown to the candidate
    defaulted_fields: dict[str, int] = field(default_factory=dict)  # absent, candidate's default used
    transitions: dict[str, int] = field(default_factory=dict)  # "approve>deny": n
    outputs_changed: dict[str, int] = field(default_factory=dict)
    up: dict[str, int] = field(default_factory=dict)
    down: dict[str, int] = field(default_factory=dict)
    # money output -> {delta: how many}: exact quantiles in memory bounded by the distinct deltas, not the rows
    deltas: dict[str, dict[Decimal, int]] = field(default_factory=dict)
    fired_before: dict[str, int] = field(default_factory=dict)
    fired_after: dict[str, int] = field(default_factory=dict)
    rule_changes: dict[str, int] = field(default_factory=dict)  # changed decisions whose firing of it flipped
    cuts: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # field -> value -> [replayed, changed]
    # --live: decisions replayed with lookups made live, the queries paid and answered by the cache,
    # what they cost (BRL), and the budget
    live_replayed: int = 0
    live_paid: int = 0
    live_cached: int = 0
    live_cost: Decimal = Decimal(0)
    budget: Decimal | None = None
    changes: list[dict] = field(default_factory=list)  # a chunk's changed decisions; after a merge, the top `keep`
    keep: int = 10  # changed decisions a merged report keeps (top_changes order); the CLI streams the rest to CSV

    def merge(self, other: "ReplayReport") -> "ReplayReport":
        self.policy, self.version = self.policy or other.policy, self.version or other.version
        self.by, self.money = self.by or other.by, self.money or other.money
        self.budget = self.budget if self.budget is not None else other.budget
        for name in ("total", "replayed", "changed", "live", "errors", "live_replayed", "live_paid", "live_cached",
                     "live_cost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("live_connectors", "error_codes", "dropped_fields", "defaulted_fields", "transitions",
                     "outputs_changed", "up", "down", "fired_before", "fired_after", "rule_changes"):
            add_counts(getattr(self, name), getattr(other, name))
        self.keep = max(self.keep, other.keep)
        for key, values in other.deltas.items():
            add_counts(self.deltas.setdefault(key, {}), values)
        for key, groups in other.cuts.items():
            mine = self.cuts.setdefault(key, {})
            for value, (replayed, changed) in groups.items():
                counts = mine.setdefault(value, [0, 0])
                counts[0] += replayed
                counts[1] += changed
        self.error_list.extend(other.error_list[: max(0, MAX_LISTED_ERRORS - len(self.error_list))])
        # Only the top `keep` stay: the driver's memory does not grow with the rows (merge order is
        # chunk order, and ties are broken by id, so any split into chunks keeps the same ones).
        self.changes = _top(self.changes + other.changes, self.keep)
        return self

    # ---- reading ----
    def top_changes(self, n: int = 10) -> list[dict]:
        """The changed decisions that moved most: outcome changes first, then by the largest money
        delta, then the oldest (at most `keep`)."""
        return _top(self.changes, n)

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        return {
            "policy": {"name": self.policy, "version": self.version},
            "total": self.total, "replayed": self.replayed, "changed": self.changed, "errors": self.errors,
            "needs_live_lookup": {"decisions": self.live, "connectors": dict(sorted(self.live_connectors.items()))},
            **({"live_lookups": {"decisions": self.live_replayed, "paid": self.live_paid, "cached": self.live_cached,
                                 "cost": str(self.live_cost.quantize(Decimal("0.01"))),
                                 "budget": str(self.budget.quantize(Decimal("0.01")))}}
               if self.budget is not None else {}),
            "error_codes": dict(sorted(self.error_codes.items())),
            "error_list": self.error_list,
            "fields": {"dropped": dict(sorted(self.dropped_fields.items())),
                       "defaulted": dict(sorted(self.defaulted_fields.items()))},
            "transitions": [{"before": k.split(">")[0], "after": k.split(">")[1], "count": v}
                            for k, v in sorted(self.transitions.items())],
            "outputs": {name: {"changed": self.outputs_changed.get(name, 0), "up": self.up.get(name, 0),
                               "down": self.down.get(name, 0),
                               "total_delta": str(sum((d * n for d, n in self.deltas.get(name, {}).items()),
                                                      Decimal(0))),
                               "distribution": distribution(self.deltas.get(name, {}))}
                        for name in sorted(set(self.outputs_changed) | set(self.money))},
            "rules": [{"rule": rule, "fired_before": self.fired_before.get(rule, 0),
                       "fired_after": self.fired_after.get(rule, 0), "changes": self.rule_changes.get(rule, 0)}
                      for rule in sorted(set(self.fired_before) | set(self.fired_after))],
            "cuts": {key: [{"value": value, "replayed": groups[value][0], "changed": groups[value][1]}
                           for value in sorted(groups, key=group_order)]
                     for key, groups in self.cuts.items()},
            "top_changes": self.top_changes(top),
        }


class Replayer:
    """Replays records with one candidate. Made once per process (the policy compiled once)."""

    def __init__(self, prepared, by: Iterable[str] = (), keep: int = 10, live: "LiveLookups | None" = None,
                 fast: bool = True):
        self.prepared = prepared
        self.by = tuple(by)
        self.cuts = parse_cuts(self.by)  # CutError names a --by it cannot read
        self.answer_cuts = any(cut.connector for cut in self.cuts)
        self.keep = keep
        self.live = live
        self.money = tuple(money_outputs(prepared))
        self.outputs_json = outputs_encoder(prepared)
        self.known = {f.name for f in prepared.meta.input_type.fields}
        self.defaults = {f.name for f in prepared.meta.input_type.fields if not f.required}
        self.connectors = RecordedConnectors((spec.qualified_name for spec in prepared.meta.connectors), live)
        # Plain records take the fast path (regua.lab.replay_fast); --live lookups only the general one.
        self.fast = FastPath(prepared, self.known, self.defaults, typed=all(cut.connector for cut in self.cuts)) \
            if fast and live is None else None

    def new_report(self) -> ReplayReport:
        return ReplayReport(self.prepared.name, self.prepared.version, self.by, self.money, keep=self.keep,
                            budget=self.live.budget if self.live else None)

    empty = new_report  # the job interface of regua.lab.parallel

    def run(self, records: list[dict]) -> ReplayReport:
        if self.live is None:
            return self.replay(records)
        paid, cached, spent = self.live.paid, self.live.cached, self.live.spent
        report = self.replay(records)
        report.live_paid, report.live_cached = self.live.paid - paid, self.live.cached - cached
        report.live_cost = self.live.spent - spent
        return report

    def replay(self, records: Iterable[dict], report: ReplayReport | None = None) -> ReplayReport:
        report = report or self.new_report()
        fast = self._fast if self.fast is not None else self._one
        for record in records:
            report.total += 1
            try:
                fast(record, report)
            except _Unreplayable as problem:
                report.errors += 1
                report.error_codes[problem.code] = report.error_codes.get(problem.code, 0) + 1
                if len(report.error_list) < MAX_LISTED_ERRORS:
                    report.error_list.append({"id": record.get("id"), "code": problem.code, "detail": problem.detail})
        return report

    def _fast(self, record: dict, report: ReplayReport) -> None:
        """A plain record (regua.lab.replay_fast); any other goes the general path (_one)."""
        fast = self.fast
        try:
            body = _decode_answer(record["body"])
            if fast.typed is not None:
                data = None
                inputs, defaulted = fast.typed.read(record["input"])
            else:
                data = _decode_exact(record["input"])
                if data.__class__ is not dict:
                    raise _Fallback
                absent, present = fast.shape(data)
                defaulted = [*absent, *(name for name in present if data[name] is None)]
                inputs = fast.validate(data)
            fast.load(record.get("connector_answers"))
            decision, after_rules = fast.evaluate(inputs, fast.day(record["as_of"]))
        except (_Fallback, TypeError, ValueError, msgspec.DecodeError):
            return self._one(record, report)
        for name in defaulted:
            report.defaulted_fields[name] = report.defaulted_fields.get(name, 0) + 1
        if fast.misses:
            report.live += 1
            for name in fast.misses:
                report.live_connectors[name] = report.live_connectors.get(name, 0) + 1
            return
        answers = fast.answers() if self.answer_cuts else {}
        cut = {c.name: c.value(data, answers) for c in self.cuts} if self.cuts else {}
        report.replayed += 1
        self._tally(record, report, body, decision, after_rules, cut)

    def _one(self, record: dict, report: ReplayReport) -> None:
        try:
            data = _decode_exact(record["input"])  # exact, as the server read it
        except (TypeError, ValueError, msgspec.DecodeError) as error:
            raise _Unreplayable("DAMAGED_RECORD", f"stored input is not JSON: {error}") from None
        try:
            body = _decode_answer(record["body"])
        except msgspec.ValidationError as error:
            raise _Unreplayable("DAMAGED_RECORD", f"stored answer is not a decision: {error}") from None
        except (TypeError, ValueError, msgspec.DecodeError) as error:
            raise _Unreplayable("DAMAGED_RECORD", f"stored answer is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise _Unreplayable("DAMAGED_RECORD", "stored input is not an object")
        try:
            self.connectors.load(record.get("connector_answers"))
        except ValueError as error:
            raise _Unreplayable("DAMAGED_RECORD", str(error)) from None
        # cut by the stored input, fields the candidate dropped included (a decision's region, say),
        # and by the answers the original decision's lookups got
        answers = self.connectors.answers() if self.answer_cuts else {}
        cut = {c.name: c.value(data, answers) for c in self.cuts}
        dropped = [key for key in data if key not in self.known]
        for key in dropped:
            report.dropped_fields[key] = report.dropped_fields.get(key, 0) + 1
            del data[key]
        for name in self.defaults:
            if data.get(name) is None:
                report.defaulted_fields[name] = report.defaulted_fields.get(name, 0) + 1
        try:
            decision = self.prepared.evaluate(data, connectors=self.connectors, trace="rules",
                                              as_of=dt.date.fromisoformat(record["as_of"]))
        except InvalidInput as error:
            raise _Unreplayable("INPUT_SHAPE", "; ".join(f"{e['location']}: {e['code']} {e['message']}"
                                                         for e in error.to_list())) from None
        except Exception as error:  # noqa: BLE001 — one record never stops a replay; it is listed
            raise _Unreplayable("EVALUATION_FAILED", f"{type(error).__name__}: {error}") from None
        if self.connectors.misses:
            report.live += 1
            for name in self.connectors.misses:
                report.live_connectors[name] = report.live_connectors.get(name, 0) + 1
            return
        report.replayed += 1
        report.live_replayed += bool(self.connectors.live_used)
        self._tally(record, report, body, decision, set(fired_rules(decision)), cut)

    def _tally(self, record: dict, report: ReplayReport, body: _StoredAnswer, decision, after_rules: set,
               cut: dict) -> None:
        """One replayed decision in the report: what it was (the stored answer), what it is now."""
        before_outcome = body.outcome or record.get("outcome")
        before_outputs = body.outputs or {}
        after_outputs = self.outputs_json(decision)
        before_rules = {r.rule for r in body.reasons or () if r.rule and r.error is msgspec.UNSET}
        for rule in before_rules:
            report.fired_before[rule] = report.fired_before.get(rule, 0) + 1
        for rule in after_rules:
            report.fired_after[rule] = report.fired_after.get(rule, 0) + 1
        changed_outputs = [] if before_outputs == after_outputs else \
            sorted(name for name in set(before_outputs) | set(after_outputs)
                   if before_outputs.get(name) != after_outputs.get(name))
        changed = before_outcome != decision.outcome or bool(changed_outputs)
        key = f"{before_outcome}>{decision.outcome}"
        report.transitions[key] = report.transitions.get(key, 0) + 1
        for name, value in cut.items():
            counts = report.cuts.setdefault(name, {}).setdefault(value, [0, 0])
            counts[0] += 1
            counts[1] += changed
        if not changed:
            return
        report.changed += 1
        deltas: dict[str, str | None] = {}
        for name in changed_outputs:
            report.outputs_changed[name] = report.outputs_changed.get(name, 0) + 1
            if name in self.money:
                old, new = as_decimal(before_outputs.get(name)), as_decimal(after_outputs.get(name))
                delta = new - old if old is not None and new is not None else None
                deltas[name] = None if delta is None else str(delta)
                if delta is not None and delta:
                    (report.up if delta > 0 else report.down)[name] = \
                        (report.up if delta > 0 else report.down).get(name, 0) + 1
                    counts = report.deltas.setdefault(name, {})
                    counts[delta] = counts.get(delta, 0) + 1
        flipped = sorted(before_rules ^ after_rules)
        for rule in flipped:
            report.rule_changes[rule] = report.rule_changes.get(rule, 0) + 1
        report.changes.append({
            "id": record.get("id"), "as_of": record.get("as_of"), "before": before_outcome, "after": decision.outcome,
            "outputs_before": {n: before_outputs.get(n) for n in changed_outputs},
            "outputs_after": {n: after_outputs.get(n) for n in changed_outputs},
            "deltas": deltas, "rules_on": sorted(after_rules - before_rules),
            "rules_off": sorted(before_rules - after_rules),
            "by": cut,
        })


class LiveLookups:
    """`--live`: a lookup the recorded decision never made is asked through the normal connector
    runtime (deadline, retries, breaker, the store's cache), as long as the budget in BRL allows
    the connector's declared cost; an answer the cache holds is free. Beyond the budget the
    decision is left under "needs a live lookup", never decided on missing data. One process:
    the budget is one counter (replay runs in the driver when --live is given)."""

    def __init__(self, connectors: Connectors, budget: Decimal, cost_of, cache_has=None):
        self.connectors, self.budget, self.cost_of, self.cache_has = connectors, budget, cost_of, cache_has
        self.spent = Decimal(0)
        self.paid = self.cached = 0

    def __call__(self, name: str, args: tuple):
        impl = self.connectors.get(name)
        if impl is None:
            raise LiveRefused("NO_LIVE_CONNECTOR", f"{name}: no such connector is installed")
        free = self.cache_has is not None and len(args) == 1 and self.cache_has(name, args[0])
        if not free and self.spent + self.cost_of(name) > self.budget:
            raise LiveRefused("BUDGET_EXHAUSTED", "the replay's budget for live lookups is spent")
        answer = impl(*args)
        if answer.__class__ is Answer and answer.cached:
            self.cached += 1
        else:
            self.paid += 1
            cost = answer.cost if answer.__class__ is Answer and answer.cost is not None else self.cost_of(name)
            self.spent += Decimal(cost)
        return answer


def _weight(change: dict):
    deltas = [abs(Decimal(d)) for d in change["deltas"].values() if d is not None]
    return (change["before"] == change["after"], -max(deltas, default=Decimal(0)), change["id"] or "")


def _top(changes: list[dict], n: int) -> list[dict]:
    return sorted(changes, key=_weight)[:n]


class _Unreplayable(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail
