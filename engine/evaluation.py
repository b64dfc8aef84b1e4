"""One evaluation: the context generated code runs against, and combining its results.

Combining is fixed and documented: the most severe action wins (deny > review > approve);
with no rule fired, the policy's `default` applies. A rule that fails yields the policy's
`on error` action (review by default), so a failure never silently approves, unless the
policy handled that failure itself: a rule that tests `available(x)` and fires takes
responsibility for connector x being down, and the rules that failed only because x is
down are then left out of the reasons (they stay in the trace).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import functools
import time
from typing import Any

import msgspec

from regua.dsl import types as T
from regua.dsl.coercers import coercer
from regua.dsl.values import CoercionError, to_json

from . import runtime
from . import trace as trace_shape
from .connectors import DECISION_DEADLINE, Answer, ConnectorError, Connectors, mask_document
from .decision import ConnectorCall, Decision, Reason


class _NoIO:
    """`io` without connectors: no lookup waits on I/O, whatever its index."""

    __slots__ = ()

    def __getitem__(self, index: int) -> int:
        return 0


class _NoImpls:
    """`impls` without connectors: no lookup has an implementation."""

    __slots__ = ()

    def __getitem__(self, index: int) -> None:
        return None


_NO_IO = _NoIO()
_NO_IMPLS = _NoImpls()
#: (io, impls) of an evaluation without connectors (engine.connectors.Connectors.binding otherwise).
UNBOUND = (_NO_IO, _NO_IMPLS)


class EvalContext(msgspec.Struct, gc=False):
    """Per-evaluation state handed to generated code as `rt`: the evaluation date and lookups.

    `io`: per connector index, 1 when its lookups wait on I/O (engine.connectors.Connectors.io_flags);
    generated code sums the flags of the lookups it could prefetch and calls `prefetch` only when
    two or more of them wait on I/O, so evaluations that could not gain from it never pay for it.

    A msgspec Struct for its constructor, implemented in C: one is built per evaluation, and a
    Python __init__ cost as much as evaluating a small decision table. Not tracked by the garbage
    collector (gc=False): nothing it holds refers back to it (answers, connector calls, the
    connectors registry), so it can never be part of a reference cycle.
    """

    today: dt.date
    connectors: Connectors | None
    names: tuple
    coercers: Any
    #: time.monotonic() by which every lookup of this decision must have answered (None: no
    #: decision-wide limit, only each connector's own). See _call and prefetch.
    deadline: float | None = None
    # The evaluation's CPU budget in seconds (None: none), kept by engine.runtime.each/charge.
    budget: float | None = None
    io: Any = _NO_IO  # Connectors.io_flags(names) when there are connectors
    impls: Any = _NO_IMPLS  # per connector index, its implementation or None (Connectors.binding)
    memo: dict = {}  # msgspec copies an empty mutable default for each instance
    calls: list = []
    room: int = runtime.CHECK_EVERY
    cpu_deadline: float | None = None

    def lookup(self, index: int, args: tuple):
        key = (index, args)
        memo = self.memo
        if key in memo:
            return memo[key]
        impl = self.impls[index]
        if impl is None:
            # Not configured (a policy evaluated without some connector): _call's first case,
            # inline, as no implementation is called whatever the deadline.
            started = _clock()
            name = self.names[index]
            value = _NOT_CONFIGURED.get(name)
            if value is None:
                value = _not_configured(name)
            call = ConnectorCall(name, args, "failed", (_clock() - started) * 1000, value.code)
        elif self.deadline is not None:  # a decision deadline to keep
            value, call = self._call(index, args)
        else:
            # _call's common case inline (one Python call less per lookup): no deadline to keep.
            started = _clock()
            cached, cost, raw = False, None, None
            try:
                value = impl(*args)
                if value.__class__ is Answer:
                    cached, cost, value = value.cached, value.cost, value.value
                raw = value
                value = self.coercers[index](value)
            except Exception as error:  # noqa: BLE001 — a connector failure is a value, never a crash
                value = _failure(self.names[index], error)
            elapsed = (_clock() - started) * 1000
            if value.__class__ is _Unavailable:
                call = ConnectorCall(self.names[index], args, "failed", elapsed, value.code, cached, cost, raw)
            else:
                call = ConnectorCall(self.names[index], args, "ok", elapsed, None, cached, cost, raw)
        self.calls.append(call)
        memo[key] = value
        return value

    def prefetch(self, requests: tuple) -> None:
        """Start the lookups the policy is certain to need that wait on I/O, all at once, when
        there are two or more of them: they run in parallel in the prefetch pool while the
        caller's thread makes the certain inline lookups (fixtures, sandbox, local SQLite;
        engine.connectors.Connectors.is_inline). With fewer than two such lookups nothing is
        prefetched (generated code checks `io` before calling): every lookup is made in the
        caller's thread when the code reaches it, since a thread hand-off costs more than it
        could save. Later `lookup` calls find their answers in the memo. The wait for the pool
        counts against the decision's deadline: a lookup still queued or running when it passes
        is CONNECTOR_TIMEOUT (and, once started, the connector layer gives up at the same
        deadline)."""
        connectors = self.connectors
        if connectors is None:
            return
        memo, io = self.memo, self.io
        requests = [request for request in dict.fromkeys(requests) if request not in memo]
        waiting = [request for request in requests if io[request[0]]]
        if len(waiting) < 2:
            return
        futures = [_PREFETCH_POOL.submit(self._call, index, args) for index, args in waiting]
        local = {request: self._call(*request) for request in requests if not io[request[0]]}
        answers = {request: self._wait(future, request) for request, future in zip(waiting, futures)}
        for request in requests:  # connector calls recorded in the policy's order
            answer = local.get(request) or answers.get(request)
            if answer is not None:
                value, call = answer
                self.calls.append(call)
                memo[request] = value

    def _wait(self, future: concurrent.futures.Future, request: tuple):
        """A prefetched lookup's answer, waiting at most until the decision's deadline."""
        if self.deadline is None:
            return future.result()
        started = time.perf_counter()
        try:
            return future.result(timeout=max(0.0, self.deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            future.cancel()  # still queued: never started; running: the connector layer stops at the deadline
            name = self.names[request[0]]
            value = runtime.Unavailable(name, "CONNECTOR_TIMEOUT", _SPENT)
            return value, ConnectorCall(name, request[1], "failed", (time.perf_counter() - started) * 1000,
                                        value.code)

    def _call(self, index: int, args: tuple):
        name = self.names[index]
        impl = self.impls[index]
        started = _clock()
        cached, cost, raw = False, None, None
        deadline = self.deadline
        if impl is None:
            value: Any = _not_configured(name)
        elif deadline is not None and time.monotonic() >= deadline:
            value = _Unavailable(name, "CONNECTOR_TIMEOUT", _SPENT)
        else:
            token = DECISION_DEADLINE.set(deadline) if deadline is not None else None
            try:
                value = impl(*args)
                if value.__class__ is Answer:
                    cached, cost, value = value.cached, value.cost, value.value
                raw = value
                value = self.coercers[index](value)
            except Exception as error:  # noqa: BLE001 — a connector failure is a value, never a crash
                value = _failure(name, error)
            finally:
                if token is not None:
                    DECISION_DEADLINE.reset(token)
        elapsed = (_clock() - started) * 1000
        if value.__class__ is _Unavailable:
            return value, ConnectorCall(name, args, "failed", elapsed, value.code, cached, cost, raw)
        return value, ConnectorCall(name, args, "ok", elapsed, None, cached, cost, raw)


def _failure(name: str, error: Exception) -> runtime.Unavailable:
    """The value of a lookup whose connector raised `error` (or whose answer broke its contract)."""
    if isinstance(error, ConnectorError):
        return _Unavailable(name, "CONNECTOR_" + error.code, str(error))
    if isinstance(error, CoercionError):
        error = error.prefixed(name)
        return _Unavailable(name, "CONNECTOR_BAD_ANSWER", f"{error.path} {error.message}")
    return _Unavailable(name, "CONNECTOR_FAILED", type(error).__name__)


_NOT_CONFIGURED: dict[str, runtime.Unavailable] = {}


def _not_configured(name: str) -> runtime.Unavailable:
    """The value of a lookup no implementation is registered for: one per name, shared (an
    Unavailable is never changed; policies registered without some connector make it often)."""
    value = _NOT_CONFIGURED.get(name)
    if value is None:
        if len(_NOT_CONFIGURED) > 1024:  # names come from policies: bounded all the same
            _NOT_CONFIGURED.clear()
        value = _NOT_CONFIGURED[name] = _Unavailable(name, "CONNECTOR_NOT_CONFIGURED", "no implementation registered")
    return value


_clock = time.perf_counter


_Unavailable = runtime.Unavailable
_SPENT = "no answer within the decision's connector budget"
# Waiting on providers, not computing: threads are the right tool. Deadlines live in the connector layer.
_PREFETCH_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="regua-prefetch")


def answer_coercers(specs) -> list:
    return [coercer(spec.returns, strict=False) for spec in specs]


class Combiner:
    """Turns what generated code returns into a Decision, for one prepared policy.

    The common cases are cheap: no rule fired and nothing failed (the default), or only fired
    rules; reasons are built when first read (Decision.reasons), from the pending entries.
    """

    def __init__(self, meta):
        self.meta = meta
        self.rules = meta.rules
        self.on_error = meta.on_error
        self.name, self.version = meta.name, meta.version
        self.output_names = [name for name, _ in meta.outputs]
        self.output_types = dict(meta.outputs)
        self.value_paths = meta.value_paths
        self.rule_info = [(r.action.severity, r.action.code, r.action.message, r.name, r.action.verb, r.line)
                          for r in meta.rules]
        self.verbs = [r.action.verb for r in meta.rules]
        self.rule_codes = [r.action.code for r in meta.rules]
        self.code_lists = [[code] if code else [] for code in self.rule_codes]  # one rule fired
        # Fired rules rank by severity, then rule order: one integer key per rule.
        count = len(meta.rules) + 1
        self.rank = [(-r.action.severity) * count + k for k, r in enumerate(meta.rules)]
        self.hit_rank = functools.partial(_hit_rank, self.rank)  # sort key of a fired (index, sets)
        default = self.default = meta.default
        self.default_verb = default.verb
        self.default_codes = [default.code] if default.code else []
        self.fired_steps = trace_shape.fired_steps(meta)

    def default_reasons(self) -> list[Reason]:
        default = self.default
        return [Reason(default.code, default.message, None, default.verb)] if default.code else []

    # ---- explanations, computed on demand ----
    def _explain_facts(self, index: int, inputs, slots, today):
        return read_facts(self.value_paths[index], inputs, slots, today), None

    def _explain_failure(self, error: BaseException, output: str | None):
        return ({"output": output} if output else {}), self.error_detail(error)

    def error_detail(self, error: BaseException) -> dict:
        failure = runtime.classify(error)
        return {"code": failure.code, "message": failure.message, "line": self.policy_line(error)}

    def policy_line(self, error: BaseException) -> int | None:
        line, filename, linemap = None, self.meta.code_filename, self.meta.linemap
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                index = tb.tb_lineno - 1
                if 0 <= index < len(linemap):
                    line = linemap[index] or line
            tb = tb.tb_next
        return line

    # ---- combining ----
    def decide(self, fired, errors, outputs, output_errors, inputs, slots, calls, today, trace=None) -> Decision:
        """The Decision (`calls`: the connector calls made, `today`: the evaluation date); reasons
        stay pending in the Decision as (combiner, entries, inputs, slots, today), where
        entries is None for the default, the ranked `fired` list when only rules fired, or ranked
        (severity, order, kind, rule index or output name, error, sets) tuples once something failed."""
        if errors or output_errors:
            return self._decide_with_failures(fired, errors, outputs, output_errors, inputs, slots, calls, today,
                                              trace)
        if not fired:
            return Decision(self.name, self.version, self.default_verb, outputs, self.default_codes.copy(), trace,
                            calls, self.output_types, self, None, inputs, slots, today)
        if len(fired) == 1:
            index, sets = fired[0]
            if sets:
                outputs.update(sets)
            codes = self.code_lists[index].copy()
        else:
            fired = sorted(fired, key=self.hit_rank)
            # Outputs set by fired rules: the highest-ranked rule that sets a name wins.
            for _index, sets in reversed(fired):
                if sets:
                    outputs.update(sets)
            rule_codes = self.rule_codes  # self.codes(fired), without the call: decisions of several rules are common
            codes = [rule_codes[index] for index, _ in fired if rule_codes[index]]
        if len(outputs) != len(self.output_names):
            for name in self.output_names:
                outputs.setdefault(name, None)
        return Decision(self.name, self.version, self.verbs[fired[0][0]], outputs, codes, trace, calls,
                        self.output_types, self, fired, inputs, slots, today)

    def _decide_with_failures(self, fired, errors, outputs, output_errors, inputs, slots, calls, today,
                              trace) -> Decision:
        info = self.rule_info
        entries = [(info[index][0], index, 0, index, None, sets) for index, sets in fired]
        rules = self.rules
        handled = {c for index, _ in fired for c in rules[index].handles}
        severity = self.on_error.severity
        entries += [(severity, index, 1, index, error, None) for index, error in errors
                    if getattr(error, "connector", None) not in handled]
        entries += [(severity, len(rules), 2, name, error, None) for name, error in output_errors
                    if getattr(error, "connector", None) not in handled]
        if not entries:  # every failure was handled by the policy and nothing fired: the default
            return Decision(self.name, self.version, self.default_verb, outputs, self.default_codes.copy(), trace,
                            calls, self.output_types, self, None, inputs, slots, today)
        if len(entries) > 1:
            entries.sort(key=_rank)
        first = entries[0]
        outcome = info[first[3]][4] if first[2] == 0 else self.on_error.verb
        for entry in reversed(entries):
            if entry[5]:
                outputs.update(entry[5])
        if len(outputs) != len(self.output_names):
            for name in self.output_names:
                outputs.setdefault(name, None)
        return Decision(self.name, self.version, outcome, outputs, self.codes(entries), trace, calls,
                        self.output_types, self, entries, inputs, slots, today)

    def codes(self, entries) -> list[str]:
        if entries is None:
            return list(self.default_codes)
        if entries and len(entries[0]) == 2:  # only fired rules
            codes = self.rule_codes
            return [codes[index] for index, _ in entries if codes[index]]
        info, on_error = self.rule_info, self.on_error.code
        codes = [info[e[3]][1] if e[2] == 0 else on_error for e in entries]
        return [code for code in codes if code]

    def reasons(self, entries, inputs, slots, today) -> list[Reason]:
        if entries is None:
            return self.default_reasons()
        info, on_error, out = self.rule_info, self.on_error, []
        if entries and len(entries[0]) == 2:  # only fired rules
            entries = [(None, None, 0, index, None, sets) for index, sets in entries]
        for _severity, _order, kind, key, error, _sets in entries:
            if kind == 0:
                _, code, message, name, verb, line = info[key]
                out.append(Reason(code, message, name, verb, line,
                                  explain=(self._explain_facts, (key, inputs, slots, today))))
            elif kind == 1:
                _, _, _, name, _, line = info[key]
                out.append(Reason(on_error.code, on_error.message, name, on_error.verb, line,
                                  explain=(self._explain_failure, (error, None))))
            else:
                out.append(Reason(on_error.code, on_error.message, None, on_error.verb,
                                  explain=(self._explain_failure, (error, key))))
        return out

    # ---- traces ----
    def full_trace(self, rule_trace, slots) -> dict:
        rules = self.rules
        steps = []
        for index, result in rule_trace:
            entry: dict[str, Any] = {"rule": rules[index].name, "line": rules[index].line}
            if isinstance(result, BaseException):
                entry["result"] = "error"
                entry["error"] = self.error_detail(result)
            else:
                entry["result"] = bool(result)
            steps.append(entry)
        values, tables = {}, {}
        for k, (name, kind, _line, typ) in enumerate(self.meta.slots):
            value = slots[k]
            if value is runtime.UNSET:
                continue
            if kind == "row":
                table = name.split("#")[0]
                row_lines = self.meta.table_rows[table][1]
                rows = value if isinstance(value, list) else [value]
                tables[table] = [{"row": r + 1, "line": row_lines[r]} for r in rows]
            elif isinstance(value, runtime.Unavailable):
                values[name] = {"unavailable": value.code}
            else:
                values[name] = masked_json(value, typ)
        return {"rules": steps, "values": values, "tables": tables}


def _hit_rank(rank, hit):
    return rank[hit[0]]


def _rank(entry):
    return (-entry[0], entry[1])


def read_facts(paths, inputs, slots, today) -> dict:
    """The scalar facts a fired rule's condition read, JSON-ready, documents masked."""
    out = {}
    for label, ref, key, path, type_name in paths:
        if ref == "input":
            value = inputs.get(key)
        elif ref == "builtin":
            value = today
        else:
            value = slots[key]
            if value is runtime.UNSET or isinstance(value, runtime.Unavailable):
                continue
        try:
            for part in path:
                value = value[part]
        except Exception:  # noqa: BLE001 — a fact that cannot be read is simply not reported
            continue
        if type_name in ("cpf", "cnpj"):
            value = mask_document(value)
        out[label] = to_json(value, T.BUILTIN_TYPES.get(type_name))
    return out


_SENSITIVE_KEYS = {"document", "cpf", "cnpj", "name", "email", "phone", "telefone", "nome", "documento"}


def masked_json(value, typ):
    """JSON for the trace with personal data masked: by type (cpf/cnpj anywhere in the value)
    and by field name for connector data (partners' names and documents)."""
    return _mask_tree(to_json(_mask_typed(value, typ), typ))


def _mask_typed(value, typ):
    if isinstance(typ, T.Prim) and typ.name in ("cpf", "cnpj") and isinstance(value, str):
        return mask_document(value)
    if isinstance(typ, T.ListType) and isinstance(value, list):
        return [_mask_typed(v, typ.element) for v in value]
    if isinstance(typ, T.RecordType) and isinstance(value, dict):
        types = {f.name: f.type for f in typ.fields}
        return {k: _mask_typed(v, types.get(k)) for k, v in value.items()}
    return value


def _mask_tree(data):
    if isinstance(data, dict):
        return {k: (mask_document(v) if k.lower() in _SENSITIVE_KEYS and isinstance(v, str) else _mask_tree(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [_mask_tree(v) for v in data]
    return data
