"""Prepared policies: compiled once, evaluated many times.

`PreparedPolicy.evaluate(input)` validates the input against the policy's schema, runs
the generated code and combines the fired rules into a Decision. Combining is fixed and
documented: the most severe action wins (deny > review > approve); with no rule fired,
the policy's `default` applies. A rule that fails to evaluate yields the policy's
`on error` action (review by default), so a failure never silently approves.
"""

from __future__ import annotations

import copy
import difflib
import datetime as dt
import linecache
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from dsl import types as T
from dsl.environment import ConnectorSpec
from dsl.values import CoercionError, coercer, to_json

from . import runtime
from .connectors import ConnectorError, Connectors, mask_document
from .decision import ConnectorCall, Decision, Reason

TRACE_LEVELS = ("off", "rules", "full")


class InvalidInput(Exception):
    """The input does not fit the policy's schema. `errors` name each field path."""

    code = "INVALID_INPUT"

    def __init__(self, errors: list[CoercionError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))

    def to_list(self) -> list[dict]:
        return [{"code": e.code, "message": e.message, "location": e.path} for e in self.errors]


@dataclass(frozen=True)
class ActionMeta:
    verb: str
    code: str | None
    message: str | None
    severity: int


@dataclass(frozen=True)
class RuleMeta:
    name: str
    line: int
    action: ActionMeta
    sets: tuple[str, ...]


@dataclass
class PolicyMeta:
    """Everything evaluation needs besides the generated code; picklable for the disk cache."""

    name: str
    kind: str
    version: str
    description: str | None
    file: str
    source_hash: str
    input_type: T.RecordType
    rules: list[RuleMeta]
    default: ActionMeta
    on_error: ActionMeta
    outputs: list[tuple[str, Any]]
    connectors: list[ConnectorSpec]
    slots: list[tuple[str, str, int, Any]]
    value_paths: list[tuple]
    table_rows: dict[str, tuple[int, list[int]]]
    linemap: list[int]
    code_filename: str
    generated_source: str
    functions: list[str]
    warnings: list[Any] = field(default_factory=list)
    graph: dict = field(default_factory=dict)  # the rule graph (engine.graph), for display and the API


class EvalContext:
    """Per-evaluation state handed to generated code as `rt`."""

    __slots__ = ("today", "connectors", "specs", "memo", "calls")

    def __init__(self, today: dt.date, connectors: Connectors | None, specs: list[ConnectorSpec]):
        self.today = today
        self.connectors = connectors
        self.specs = specs
        self.memo: dict = {}
        self.calls: list[ConnectorCall] = []

    def lookup(self, index: int, args: tuple):
        key = (index, args)
        if key in self.memo:
            return self.memo[key]
        spec = self.specs[index]
        name = spec.qualified_name
        impl = self.connectors.get(name) if self.connectors is not None else None
        started = time.perf_counter()
        if impl is None:
            value: Any = runtime.Unavailable(name, "CONNECTOR_NOT_CONFIGURED", "no implementation registered")
        else:
            try:
                value = coercer(spec.returns)(impl(*args))
            except ConnectorError as error:
                value = runtime.Unavailable(name, "CONNECTOR_" + error.code, str(error))
            except CoercionError as error:
                error = error.prefixed(name)
                value = runtime.Unavailable(name, "CONNECTOR_BAD_ANSWER", f"{error.path} {error.message}")
            except Exception as error:  # noqa: BLE001 — a connector failure is a value, never a crash
                value = runtime.Unavailable(name, "CONNECTOR_FAILED", type(error).__name__)
        failed = isinstance(value, runtime.Unavailable)
        self.calls.append(ConnectorCall(name, [mask_document(a) for a in args], "failed" if failed else "ok",
                                        (time.perf_counter() - started) * 1000, value.code if failed else None))
        self.memo[key] = value
        return value


class PreparedPolicy:
    def __init__(self, meta: PolicyMeta, code):
        self.meta = meta
        linecache.cache[meta.code_filename] = (
            len(meta.generated_source), None, meta.generated_source.splitlines(True), meta.code_filename)
        from .builtins import default_environment

        functions = default_environment().functions
        namespace: dict[str, Any] = {
            "_U": runtime.UNSET, "_Unavailable": runtime.Unavailable, "_div": runtime.div,
            "_date_add": runtime.date_add, "_date_sub": runtime.date_sub, "_smallest": runtime.smallest,
            "_largest": runtime.largest, "_average": runtime.average, "_otherwise": runtime.otherwise,
            "_no_match": runtime.no_match, "_not_unique": runtime.not_unique,
            "_FN": {name: functions[name].impl for name in meta.functions if name in functions},
            "__name__": f"regua_policy_{meta.name}",
        }
        from decimal import Decimal

        from dsl.values import BusinessDays

        namespace.update(_Decimal=Decimal, _date=dt.date, _timedelta=dt.timedelta, _BusinessDays=BusinessDays)
        exec(code, namespace)  # noqa: S102 — generated by engine.codegen, never policy text
        self._fast = namespace["evaluate_fast"]
        self._full = namespace["evaluate_full"]
        self._nslots = len(meta.slots)
        self._output_types = dict(meta.outputs)
        self._rules = meta.rules
        self._fields = [(f.name, f.required, f.default, coercer(f.type)) for f in meta.input_type.fields]

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        return self.meta.version

    def validate(self, data: Mapping[str, Any]) -> dict:
        """The input as typed runtime values; raises InvalidInput naming every bad field path."""
        if not isinstance(data, Mapping):
            raise InvalidInput([CoercionError("input", "TYPE", "expected an object")])
        errors, out = [], {}
        known = {f.name for f in self.meta.input_type.fields}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                errors.append(CoercionError(f"input.{key}", "UNKNOWN_FIELD", f"is not an input of this policy{hint}"))
        for name, required, default, field_coercer in self._fields:
            value = data.get(name)
            try:
                if value is not None:
                    out[name] = field_coercer(value)
                elif required:
                    errors.append(CoercionError(f"input.{name}", "REQUIRED", "is required"))
                else:
                    out[name] = copy.deepcopy(default)
            except CoercionError as error:
                errors.append(error.prefixed(f"input.{name}"))
        if errors:
            raise InvalidInput(errors)
        return out

    def evaluate(self, data: Mapping[str, Any], *, connectors: Connectors | None = None, trace: str = "off",
                 as_of: dt.date | None = None) -> Decision:
        return self.evaluate_validated(self.validate(data), connectors=connectors, trace=trace, as_of=as_of)

    def evaluate_validated(self, inputs: dict, *, connectors: Connectors | None = None, trace: str = "off",
                           as_of: dt.date | None = None) -> Decision:
        if trace not in TRACE_LEVELS:
            raise ValueError(f"trace must be one of {', '.join(TRACE_LEVELS)}")
        rt = EvalContext(as_of or dt.date.today(), connectors, self.meta.connectors)
        rt_values = _ValueReader(self.meta.value_paths, rt)
        slots = [runtime.UNSET] * self._nslots
        rule_trace = None
        if trace == "full":
            fired, errors, outputs, output_errors, rule_trace = self._full(inputs, slots, rt_values)
        else:
            fired, errors, outputs, output_errors = self._fast(inputs, slots, rt_values)
        return self._decide(fired, errors, outputs, output_errors, trace, rule_trace, slots, rt)

    # ---- combining ----
    def _error_detail(self, error: BaseException) -> dict:
        failure = runtime.classify(error)
        return {"code": failure.code, "message": failure.message, "line": self._policy_line(error)}

    def _policy_line(self, error: BaseException) -> int | None:
        line = None
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.meta.code_filename:
                index = tb.tb_lineno - 1
                if 0 <= index < len(self.meta.linemap):
                    line = self.meta.linemap[index] or line
            tb = tb.tb_next
        return line

    def _decide(self, fired, errors, outputs, output_errors, trace, rule_trace, slots, rt) -> Decision:
        rules, on_error = self._rules, self.meta.on_error
        entries = []  # (severity, rule index, Reason, sets)
        for index, values, sets in fired:
            rule = rules[index]
            action = rule.action
            entries.append((action.severity, index, Reason(action.code, action.message, rule.name, action.verb,
                                                           rule.line, values or {}), sets))
        for index, error in errors:
            rule = rules[index]
            entries.append((on_error.severity, index, Reason(on_error.code, on_error.message, rule.name,
                                                             on_error.verb, rule.line, {},
                                                             self._error_detail(error)), None))
        for name, error in output_errors:
            entries.append((on_error.severity, len(rules), Reason(on_error.code, on_error.message, None,
                                                                  on_error.verb, None, {"output": name},
                                                                  self._error_detail(error)), None))
        entries.sort(key=lambda entry: (-entry[0], entry[1]))
        if entries:
            outcome = entries[0][2].outcome
            reasons = [entry[2] for entry in entries]
        else:
            default = self.meta.default
            outcome = default.verb
            reasons = [Reason(default.code, default.message, None, default.verb)] if default.code else []
        # Outputs set by fired rules: the highest-ranked rule that sets a name wins.
        for _, _, _, sets in reversed(entries):
            if sets:
                outputs.update(sets)
        for name, _ in self.meta.outputs:
            outputs.setdefault(name, None)
        return Decision(self.meta.name, self.meta.version, outcome, outputs, reasons,
                        self._trace(trace, fired, errors, rule_trace, slots), rt.calls, self._output_types)

    def _trace(self, level, fired, errors, rule_trace, slots):
        if level == "off":
            return None
        rules = self._rules
        if level == "rules":
            hits = [(i, "fired") for i, _, _ in fired] + [(i, "error") for i, _ in errors]
            return [{"rule": rules[i].name, "line": rules[i].line, "result": result,
                     "outcome": rules[i].action.verb if result == "fired" else self.meta.on_error.verb}
                    for i, result in sorted(hits)]
        steps = []
        for index, result in rule_trace:
            entry = {"rule": rules[index].name, "line": rules[index].line}
            if isinstance(result, BaseException):
                entry["result"] = "error"
                entry["error"] = self._error_detail(result)
            else:
                entry["result"] = bool(result)
            steps.append(entry)
        values, tables = {}, {}
        for k, (name, kind, line, typ) in enumerate(self.meta.slots):
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
            elif kind in ("let", "table"):
                values[name] = _masked_json(value, typ)
        return {"rules": steps, "values": values, "tables": tables}


def _masked_json(value, typ):
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


_SENSITIVE_KEYS = {"document", "cpf", "cnpj", "name", "email", "phone", "telefone", "nome", "documento"}


def _mask_tree(data):
    if isinstance(data, dict):
        return {k: (mask_document(v) if k.lower() in _SENSITIVE_KEYS and isinstance(v, str) else _mask_tree(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [_mask_tree(v) for v in data]
    return data


class _ValueReader:
    """Wraps the EvalContext for generated code: adds `values()`, the facts behind a fired rule."""

    __slots__ = ("paths", "rt", "today", "lookup")

    def __init__(self, paths, rt: EvalContext):
        self.paths = paths
        self.rt = rt
        self.today = rt.today
        self.lookup = rt.lookup

    def values(self, inputs, slots, rule_index) -> dict:
        out = {}
        for label, ref, key, path, type_name in self.paths[rule_index]:
            if ref == "input":
                value = inputs.get(key)
            elif ref == "builtin":
                value = self.today
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
