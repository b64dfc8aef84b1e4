"""Counterfactual explanations: the smallest changes to the actionable facts that would turn a
decision into the target outcome (approve, by default).

    found = find_counterfactuals(prepared, inputs, record, as_of)
    found.alternatives[0].changes  # [Change(valor_pedido 30000.00 -> 20000.00)]

How the search works, per decision:

1. One fact at a time. The values tried come from the policy: each threshold the fact is compared
   with (engine.actionable), one unit either side of it, and the declared bounds. Walking outwards
   from the current value, the first value that reaches the target brackets the answer: between it
   and the last value that did not, a bisection finds the value nearest to the current one that
   still reaches the target (to the unit: R$ 0,01, one point). That is exact for comparisons,
   ranges and tables (the threshold itself is tried) and for arithmetic that is monotone in the
   fact between the two values (`saldo + valor_pedido > limite`), which bisection needs.
2. Combinations, only when single changes give fewer than K alternatives: pairs (then triples, up
   to `max_changes`) of the values tried above, nearest first; a combination that reaches the
   target is shrunk fact by fact towards the current values and kept only if it is minimal: no
   strict subset of its changes reaches the target on its own.
3. Every alternative returned is the result of evaluating the compiled policy with exactly those
   changes (nothing else moves: inputs and connector answers are those of the decision, connector
   answers replayed from the record, so no bureau is asked again). At most K, ranked by the number
   of changes, then by their size relative to the declared bounds.

"No change within the declared bounds" is an answer too (status `none_within_bounds`); when the
evaluation budget ran out first, `complete` is false.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from regua.dsl import types as T
from regua.dsl.coercers import coercer
from regua.dsl.values import Percent, to_json

from .connectors import ConnectorError, Connectors, mask_document
from .evaluation import EvalContext
from .recorded import NotRecorded, decode_answers, encode_answers

DEFAULT_ALTERNATIVES = 3
DEFAULT_MAX_CHANGES = 2
DEFAULT_BUDGET = 2000  # evaluations per decision: a bound on the time, not a goal
_GRID = {2: 6, 3: 4}  # values tried per fact in combinations of that many facts


@dataclass(frozen=True)
class Change:
    fact: str  # as written in the policy
    label: str | None  # for people
    type_name: str
    before: Any
    after: Any

    @property
    def direction(self) -> str:
        return "down" if self.after < self.before else "up"

    def to_dict(self) -> dict:
        typ = T.BUILTIN_TYPES[self.type_name]
        return {"fact": self.fact, "label": self.label or self.fact, "type": self.type_name,
                "from": to_json(self.before, typ), "to": to_json(self.after, typ), "direction": self.direction}


@dataclass
class Alternative:
    changes: list[Change]
    outcome: str
    reasons: list[str]
    size: float

    def to_dict(self) -> dict:
        return {"changes": [c.to_dict() for c in self.changes], "outcome": self.outcome, "reasons": self.reasons,
                "size": round(self.size, 6)}


@dataclass
class Counterfactuals:
    outcome: str
    target: str
    status: str  # found, none_within_bounds, not_needed (already the target), no_actionable_facts
    alternatives: list[Alternative] = field(default_factory=list)
    complete: bool = True  # False: the evaluation budget ran out before the search was done
    evaluations: int = 0
    skipped: list[str] = field(default_factory=list)  # facts the decision does not hold (a lookup that failed)
    facts: list[str] = field(default_factory=list)  # labels of the facts searched, for people

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "target": self.target, "status": self.status, "facts": self.facts,
                "alternatives": [a.to_dict() for a in self.alternatives], "complete": self.complete,
                "evaluations": self.evaluations, "skipped": self.skipped}


class _Replay:
    """A connector answering from a decision's recorded answers, with some facts overridden:
    `overrides` fixed, or read from `search.overrides` at each call (one Connectors for a whole
    search)."""

    inline = True
    __slots__ = ("name", "record", "_overrides", "keys", "search")

    def __init__(self, name: str, record: dict, overrides, keys: dict, search=None):
        self.name = name
        self.record = record
        self._overrides = overrides
        self.keys = keys  # args -> record key, shared by every evaluation of one search
        self.search = search

    @property
    def overrides(self):
        return self._overrides if self.search is None else self.search.overrides.get(self.name, ())

    def __call__(self, *args):
        key = self.keys.get((self.name, args))
        if key is None:
            key = self.keys[(self.name, args)] = (self.name, tuple(mask_document(a) for a in args))
        entry = self.record.get(key)
        if entry is None or entry.get("status") == "unrecorded":
            raise NotRecorded(self.name)
        if "answer" not in entry:
            code = str(entry.get("error") or "FAILED")
            raise ConnectorError(code.removeprefix("CONNECTOR_"), "recorded failure")
        answer = entry["answer"]
        for path, value in self.overrides:
            answer = _with_path(answer, path, value)
        return answer


def _with_path(answer, path, value):
    """A copy of `answer` with the value at `path` replaced: only the records along the path are
    copied, the rest is shared (the recorded answer itself is never changed)."""
    top = dict(answer) if isinstance(answer, dict) else {}
    node = top
    for part in path[:-1]:
        nested = node.get(part)
        nested = dict(nested) if isinstance(nested, dict) else {}
        node[part] = nested
        node = nested
    node[path[-1]] = value
    return top


def _read_path(answer, path):
    for part in path:
        if not isinstance(answer, dict) or part not in answer:
            return None
        answer = answer[part]
    return answer


def _typed(type_name: str, value):
    if type_name == "int":
        return int(value)
    if type_name == "percent":
        return Percent(value)
    return Decimal(value)


class _SharedLookups(EvalContext, gc=False):
    """The lookups of one evaluation of a search. An answer an earlier evaluation of the same search
    looked up (and coerced) with the same overrides of that connector is taken as it is: most
    candidates change an input, or another connector's fact, and would otherwise ask the recorded
    answer and coerce it again every time. `variant`: per connector index, its overrides."""

    shared: dict = {}
    variant: tuple = ()

    def lookup(self, index: int, args: tuple):
        key = (index, args, self.variant[index])
        shared = self.shared
        if key in shared:
            return shared[key]
        value, call = self._call(index, args)
        self.calls.append(call)
        shared[key] = value
        return value


class _Search:
    def __init__(self, prepared, inputs: dict, record: dict, as_of, target: str, budget: int,
                 exact: bool = True, shared: bool = True):
        self.prepared = prepared
        self.inputs = inputs
        self.record = record
        self.as_of = as_of
        self.target = target
        self.budget = budget
        self.evaluations = 0
        self.cache: dict[tuple, Any] = {}
        self.specs: list = []
        self.current: list = []
        self.names = prepared._connector_names
        self.keys: dict = {}
        self.original_codes: list[str] = []
        self.active: set[int] = set()  # facts some tried value of which changes the decision's reasons
        self.exact = exact  # try the policy's exact points (ActionableSpec.points), not each threshold ± unit
        self.overrides: dict = {}  # connector -> ((path, value), ...) of the evaluation under way
        self.shared: dict | None = {} if shared else None  # (index, args, overrides) -> answer
        self.connectors = Connectors({name: _Replay(name, record, (), self.keys, self) for name in self.names})
        self.no_variant = self.variant = tuple(() for _ in self.names)

    def decision(self, assignment: dict[int, Any]):
        """The decision with the facts of `assignment` (spec index -> value) changed; cached."""
        key = tuple(sorted(assignment.items()))
        found = self.cache.get(key)
        if found is not None:
            return found
        if self.evaluations >= self.budget:
            raise _OutOfBudget
        self.evaluations += 1
        inputs, overrides = self.inputs, {}
        for index, value in key:
            spec = self.specs[index]
            if spec.connector is None:
                if inputs is self.inputs:
                    inputs = dict(inputs)
                inputs[spec.path[0]] = value
            else:
                overrides[spec.connector] = overrides.get(spec.connector, ()) + (
                    (spec.path, to_json(value, T.BUILTIN_TYPES[spec.type_name])),)
        if self.shared is None:  # every evaluation asks and coerces the recorded answers again
            connectors = Connectors({name: _Replay(name, self.record, overrides.get(name, ()), self.keys)
                                     for name in self.names})
            decision = self.prepared.evaluate_validated(inputs, connectors=connectors, as_of=self.as_of)
        else:
            self.overrides = overrides
            self.variant = tuple(overrides.get(name, ()) for name in self.names) if overrides else self.no_variant
            decision = self.prepared.evaluate_in(inputs, self.as_of, self._context)
        self.cache[key] = decision
        return decision

    def _context(self, as_of, names, coercers) -> _SharedLookups:
        io, impls = self.connectors.binding(names)
        return _SharedLookups(as_of, self.connectors, names, coercers, io=io, impls=impls, shared=self.shared,
                              variant=self.variant)

    def reaches(self, assignment: dict[int, Any]) -> bool:
        decision = self.decision(assignment)
        if len(assignment) == 1 and decision.reason_codes != self.original_codes:
            self.active.update(assignment)
        return decision.outcome == self.target

    # ---- one fact ----
    def tried_values(self, index: int) -> tuple[list, list]:
        """Values to try below and above the current one, nearest first."""
        spec, x0 = self.specs[index], self.current[index]
        unit = spec.unit
        points = {spec.low, spec.high}
        if self.exact:
            points.update(spec.points)
        else:  # each constant and its neighbours, whichever side of it the comparison changes
            for c in spec.thresholds:
                points |= {c - unit, c, c + unit}
        points = {_typed(spec.type_name, p) for p in points if spec.low <= p <= spec.high and p != x0}
        down = sorted((p for p in points if p < x0), reverse=True)
        up = sorted(p for p in points if p > x0)
        return down, up

    def nearest(self, index: int, start, end, fixed: dict[int, Any]):
        """The value between `start` (exclusive; does not reach the target) and `end` (reaches it)
        nearest to `start` that reaches the target with `fixed`, by bisection on the unit grid."""
        spec = self.specs[index]
        unit, sign = spec.unit, (1 if end > start else -1)
        # A current value outside the bounds: the search starts at the nearest bound, never beyond.
        start = max(start, spec.low - unit) if sign > 0 else min(start, spec.high + unit)
        if self.exact:
            # The policy's exact points between the two first, nearest first: where comparisons of
            # the fact change their answer, the first that reaches is the answer, and the one
            # before it does not (a pair c, c + unit): nothing is left to bisect.
            between = sorted((p for p in spec.points if min(start, end) < p < max(start, end)),
                             key=lambda p: abs(p - start))
            for point in between:
                point = _typed(spec.type_name, point)
                if self.reaches({**fixed, index: point}):
                    end = point
                    break
                start = point
        steps = int(abs(end - start) / unit)
        low, high = 0, steps
        while high - low > 1:
            middle = (low + high) // 2
            value = _typed(spec.type_name, start + sign * middle * unit)
            if self.reaches({**fixed, index: value}):
                high = middle
            else:
                low = middle
        return end if high == steps else _typed(spec.type_name, start + sign * high * unit)

    def singles(self) -> list[dict]:
        found = []
        for index in range(len(self.specs)):
            for side in self.tried_values(index):
                previous = self.current[index]
                for value in side:
                    if self.reaches({index: value}):
                        found.append({index: self.nearest(index, previous, value, {})})
                        break
                    previous = value
        return found

    # ---- combinations ----
    def combinations(self, size: int, known: list[dict], wanted: int) -> list[dict]:
        found = []
        width = _GRID[size]
        options = []
        for index in range(len(self.specs)):
            down, up = self.tried_values(index)
            values = sorted(down + up, key=lambda v, i=index: self.relative(i, v))[:width]
            options.append(values)
        # Only facts that moved the decision on their own somewhere (its reasons changed): a fact no
        # tried value of which changes anything is left out of combinations (the search is bounded).
        for indexes in itertools.combinations(sorted(self.active), size):
            grid = sorted(itertools.product(*(options[i] for i in indexes)),
                          key=lambda values, ix=indexes: sum(self.relative(i, v) for i, v in zip(ix, values)))
            for values in grid:
                assignment = dict(zip(indexes, values))
                if any(_covers(assignment, k) for k in known + found):
                    continue
                if not self.reaches(assignment):
                    continue
                shrunk = self.shrink(assignment)
                if shrunk is not None and self.minimal(shrunk):
                    found.append(shrunk)
                # One try per set of facts, from its smallest change that reaches the target: when
                # that one is not minimal, a subset already does the job, and bigger changes would too.
                break
            if len(known) + len(found) >= wanted:
                break
        return found

    def shrink(self, assignment: dict[int, Any]) -> dict[int, Any] | None:
        """Each changed fact moved back towards its current value as far as the target allows;
        None when a fact can go all the way back (then the combination is not minimal)."""
        assignment = dict(assignment)
        for index in list(assignment):
            others = {i: v for i, v in assignment.items() if i != index}
            if self.reaches(others):
                return None
            assignment[index] = self.nearest(index, self.current[index], assignment[index], others)
        return assignment

    def minimal(self, assignment: dict[int, Any]) -> bool:
        items = list(assignment.items())
        for size in range(1, len(items)):
            for subset in itertools.combinations(items, size):
                if self.reaches(dict(subset)):
                    return False
        return True

    def relative(self, index: int, value) -> float:
        spec = self.specs[index]
        span = spec.high - spec.low
        return float(abs(value - self.current[index]) / span) if span else 0.0


class _OutOfBudget(Exception):
    pass


def _covers(assignment: dict, known: dict) -> bool:
    """Whether `known` changes a subset of the facts `assignment` changes, each as far or farther in
    the same direction: then `assignment` is the same idea, only bigger."""
    return set(known) <= set(assignment) and all(known[i] == assignment[i] for i in known)


def find_counterfactuals(prepared, inputs: dict, record: dict, as_of, *, target: str = "approve",
                         alternatives: int = DEFAULT_ALTERNATIVES, max_changes: int = DEFAULT_MAX_CHANGES,
                         budget: int = DEFAULT_BUDGET, exact: bool = True, shared: bool = True) -> Counterfactuals:
    """Counterfactuals for a decision: `inputs` validated (PreparedPolicy.validate), `record` its
    recorded connector answers (engine.recorded.decode_answers), `as_of` its evaluation date.

    `exact` and `shared` choose how cheaply the same answer is found; both off is the first
    version's search, kept so that benchmarks/bench_experiments.py measures them side by side:
    `exact` tries each fact at the policy's exact points (ActionableSpec.points: 300 and 301 for
    `score <= 300`) instead of every constant compared with anything read from the same lookup, ±
    one unit; `shared` evaluates with one set of connectors per search and reuses each recorded
    answer once looked up and coerced (per connector overrides) instead of asking it again."""
    search = _Search(prepared, inputs, record, as_of, target, budget, exact, shared)
    original = search.decision({})
    search.original_codes = original.reason_codes
    result = Counterfactuals(original.outcome, target, "found")
    if original.outcome == target:
        result.status = "not_needed"
        return result
    specs = list(prepared.meta.actionable)
    if not specs:
        result.status = "no_actionable_facts"
        return result
    for spec in specs:
        value = _current(spec, inputs, record)
        if value is None:
            result.skipped.append(spec.label)
            continue
        search.specs.append(spec)
        search.current.append(value)
        result.facts.append(spec.text or spec.label)
    chosen: list[dict] = []
    try:
        chosen = search.singles()
        for size in range(2, min(max_changes, len(search.specs), 3) + 1):
            if len(chosen) >= alternatives:
                break
            chosen += search.combinations(size, chosen, alternatives)
    except _OutOfBudget:
        result.complete = False
    out = []
    for assignment in chosen:
        decision = search.cache[tuple(sorted(assignment.items()))]  # evaluated: it reached the target
        changes = [Change(search.specs[i].label, search.specs[i].text, search.specs[i].type_name,
                          search.current[i], v) for i, v in sorted(assignment.items())]
        size = sum(search.relative(i, v) for i, v in assignment.items())
        out.append(Alternative(changes, decision.outcome, decision.reason_codes, size))
    out.sort(key=lambda a: (len(a.changes), a.size, [c.fact for c in a.changes]))
    result.alternatives = _distinct(out)[:alternatives]
    result.evaluations = search.evaluations
    if not result.alternatives:
        result.status = "none_within_bounds"
    return result


def _distinct(alternatives: list[Alternative]) -> list[Alternative]:
    seen, out = set(), []
    for alternative in alternatives:
        key = tuple((c.fact, c.after) for c in alternative.changes)
        if key not in seen:
            seen.add(key)
            out.append(alternative)
    return out


def _current(spec, inputs: dict, record: dict):
    """The fact's value in the decision, or None when the decision does not hold it."""
    if spec.connector is None:
        value = inputs.get(spec.path[0])
    else:
        answers = [e.get("answer") for (name, _), e in record.items() if name == spec.connector and "answer" in e]
        if len(answers) != 1:  # not looked up, failed, or looked up for two parties: nothing to move
            return None
        value = _read_path(answers[0], spec.path)
        if value is not None:
            try:
                value = coercer(T.BUILTIN_TYPES[spec.type_name], strict=False)(value)
            except ValueError:
                return None
    if value is None or isinstance(value, bool):
        return None
    return value


def counterfactuals_for(prepared, data: dict, *, connectors: Connectors | None, as_of, **options) -> tuple:
    """Evaluate `data` once with live connectors, then search on the recorded answers:
    (decision, Counterfactuals). For the command line and tests."""
    inputs = prepared.validate(data)
    decision = prepared.evaluate_validated(inputs, connectors=connectors, as_of=as_of)
    record = decode_answers(encode_answers(decision.connector_calls))
    return decision, find_counterfactuals(prepared, inputs, record, as_of, **options)
