"""Prepared policies: compiled once, evaluated many times.

`PreparedPolicy.evaluate(input)` validates the input against the policy's schema, runs the
generated code and hands the results to engine.evaluation, which combines them into a
Decision (see there for the combining rules).
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import linecache
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from regua.dsl import types as T
from regua.dsl.coercers import coercer
from regua.dsl.environment import ConnectorSpec
from regua.dsl.values import BusinessDays, CoercionError, Percent

from . import hot_path, runtime
from . import trace as trace_shape
from .blocks import block_resumer
from .connectors import Connectors
from .decision import Decision
from .evaluation import UNBOUND, Combiner, EvalContext, answer_coercers

TRACE_LEVELS = ("off", "rules", "full")
_UNSET = runtime.UNSET
_IMMUTABLE = frozenset((Decimal, Percent, int, str, bool, float, dt.date, dt.timedelta, BusinessDays, type(None)))


def _forget_lines(filename: str, lines: tuple) -> None:
    if linecache.cache.get(filename) is lines:
        linecache.cache.pop(filename, None)


def _has_list(typ, _seen: frozenset = frozenset()) -> bool:
    """Whether values of `typ` can hold a list (records that contain themselves are looked at once)."""
    if isinstance(typ, T.ListType):
        return True
    if isinstance(typ, T.RecordType) and typ.name not in _seen:
        return any(_has_list(f.type, _seen | {typ.name}) for f in typ.fields or ())
    return False


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
    handles: tuple[str, ...] = ()  # connectors whose availability this rule tests
    day: int | None = None  # collection steps: days relative to the due date (D-3 is -3)


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
    full_start: int = 0  # first generated line of `evaluate_full` (compiled on first use)
    #: The policy goes through lists that come from its input: its cost grows with the input
    #: (the server never evaluates it on its event loop).
    input_loops: bool = False
    #: The generated code reads the evaluation context (today, lookups, the budget counter); when
    #: it does not, evaluations run without building one.
    uses_context: bool = True
    # What counterfactual explanations may change, with thresholds (engine.actionable.ActionableSpec).
    actionable: list = field(default_factory=list)
    # evaluate_fast's rule blocks (codegen.Generated.blocks), for resuming one after a failure.
    blocks: list = field(default_factory=list)


class PreparedPolicy:
    def __init__(self, meta: PolicyMeta, code, functions: dict | None = None):
        """`functions`: FunctionSpecs by name (built-ins plus plugins) the generated code may call."""
        self.meta = meta
        # The generated lines, for tracebacks; dropped with the last PreparedPolicy that set them
        # (a server publishing version after version must not keep every version's code).
        lines = (len(meta.generated_source), None, meta.generated_source.splitlines(True), meta.code_filename)
        linecache.cache[meta.code_filename] = lines
        weakref.finalize(self, _forget_lines, meta.code_filename, lines)
        if functions is None:
            from .builtins import default_environment

            functions = default_environment().functions
        missing = [name for name in meta.functions if name not in functions]
        if missing:
            raise LookupError(f"policy {meta.name} needs function(s) no plugin provides: {', '.join(missing)}")
        namespace: dict[str, Any] = {
            "_U": runtime.UNSET, "_Unavailable": runtime.Unavailable, "_div": runtime.div,
            "_date_add": runtime.date_add, "_fold": runtime.fold, "_date_sub": runtime.date_sub, "_smallest": runtime.smallest,
            "_largest": runtime.largest, "_average": runtime.average, "_otherwise": runtime.otherwise,
            "_no_match": runtime.no_match, "_not_unique": runtime.not_unique,
            "_rule_failed": runtime.rule_failed, "_each": runtime.each, "_charge": runtime.charge,
            "_FN": {name: functions[name].impl for name in meta.functions if name in functions},
            "__name__": f"regua_policy_{meta.name}",
        }
        namespace.update(_Decimal=Decimal, _date=dt.date, _timedelta=dt.timedelta, _BusinessDays=BusinessDays)
        if meta.blocks:
            namespace["_resume"] = block_resumer(namespace, meta)
        exec(code, namespace)  # noqa: S102 — generated by engine.codegen, never policy text
        self._namespace = namespace
        self._fast = namespace["evaluate_fast"]
        self._full_function = namespace.get("evaluate_full")
        self._nslots = len(meta.slots)
        self._uses_context = meta.uses_context
        self._combiner = Combiner(meta)
        self._answer_coercers = answer_coercers(meta.connectors)
        self._connector_names = tuple(spec.qualified_name for spec in meta.connectors)
        # Inputs are what a caller sends: money in whole centavos (MONEY_PRECISION otherwise).
        self._fields = [(f.name, f.required, f.default, coercer(f.type, cents=True))
                        for f in meta.input_type.fields]
        self._known = frozenset(f.name for f in meta.input_type.fields)
        self._list_fields: list | None = None  # input fields that hold lists, for check_list_sizes
        # The hot path is the generated function itself (engine.hot_path): one Python frame per
        # evaluation. Its per-policy constants go into the generated module's namespace.
        namespace.update(hot_path.hot_globals(self, self._combiner))
        self.evaluate_validated = self._fast

    def _full(self, inputs, slots, rt):
        if self._full_function is None:
            lines = self.meta.generated_source.split("\n")
            # Padded with blank lines so that line numbers (and the linemap) match the whole source.
            text = "\n" * self.meta.full_start + "\n".join(lines[self.meta.full_start:])
            exec(compile(text, self.meta.code_filename, "exec"), self._namespace)  # noqa: S102 — generated code
            self._full_function = self._namespace["evaluate_full"]
        return self._full_function(inputs, slots, rt)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        return self.meta.version

    def validate(self, data: Mapping[str, Any]) -> dict:
        """The input as typed runtime values; raises InvalidInput naming every bad field path."""
        if data.__class__ is not dict and not isinstance(data, Mapping):  # typing's isinstance: ~1 µs
            raise InvalidInput([CoercionError("input", "TYPE", "expected an object")])
        errors, out = [], {}
        known = self._known
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
                elif default.__class__ in _IMMUTABLE:
                    out[name] = default
                else:
                    out[name] = copy.deepcopy(default)  # a list or record default must not be shared
            except CoercionError as error:
                errors.append(error.prefixed(f"input.{name}"))
        if errors:
            raise InvalidInput(errors)
        return out

    def check_list_sizes(self, data: Mapping[str, Any], max_items: int) -> None:
        """InvalidInput (TOO_MANY_ITEMS, naming each field path) when a list of the input, at any
        depth, has more than `max_items` items: the server's cap, checked before validate()."""
        fields = self._list_fields
        if fields is None:
            fields = self._list_fields = [(f.name, f.type) for f in self.meta.input_type.fields if _has_list(f.type)]
        if not fields or (data.__class__ is not dict and not isinstance(data, Mapping)):
            return
        errors = []
        stack = [(data.get(name), typ, f"input.{name}") for name, typ in reversed(fields)]
        while stack:
            value, typ, path = stack.pop()
            if isinstance(typ, T.ListType) and isinstance(value, list):
                if len(value) > max_items:
                    errors.append(CoercionError(path, "TOO_MANY_ITEMS",
                                                f"has {len(value)} items; at most {max_items} are accepted"))
                elif _has_list(typ.element):
                    stack += [(item, typ.element, f"{path}[{k}]") for k, item in reversed(list(enumerate(value)))]
            elif isinstance(typ, T.RecordType) and isinstance(value, Mapping):
                stack += [(value.get(f.name), f.type, f"{path}.{f.name}") for f in reversed(typ.fields or ())
                          if _has_list(f.type)]
        if errors:
            raise InvalidInput(errors)

    def evaluate(self, data: Mapping[str, Any], *, connectors: Connectors | None = None, trace: str = "off",
                 as_of: dt.date | None = None, deadline: float | None = None,
                 budget: float | None = None) -> Decision:
        return self.evaluate_validated(self.validate(data), connectors=connectors, trace=trace, as_of=as_of,
                                       deadline=deadline, budget=budget)

    def _context(self, as_of: dt.date | None, connectors: Connectors | None, deadline=None, budget=None):
        """(rt, today, connector calls) for one evaluation: no context when the code reads none."""
        if not self._uses_context:
            return None, as_of, []
        names = self._connector_names
        io, impls = UNBOUND if connectors is None else connectors.binding(names)
        rt = EvalContext(as_of or dt.date.today(), connectors, names, self._answer_coercers, deadline, budget,
                         io, impls)
        return rt, rt.today, rt.calls

    def evaluate_raw(self, inputs: dict, as_of: dt.date, connectors: Connectors | None = None):
        """The generated code's own results for validated inputs, without building a Decision:
        (fired [(rule index, sets)], errors [(rule index, exception)], outputs, output errors).
        The collection planner uses it to read each step that fired with its own settings."""
        rt = self._context(as_of, connectors)[0]
        return self._fast(inputs, None, "off", None, None, None, [_UNSET] * self._nslots, rt)

    def evaluate_in(self, inputs: dict, as_of: dt.date, context) -> Decision:
        """Validated inputs evaluated (trace off) in an evaluation context the caller makes:
        `context(as_of, connector_names, answer_coercers)` returns an EvalContext (or a subclass).
        engine.counterfactuals gives one whose lookups share answers across the hundreds of
        evaluations of one search instead of asking and coercing them again each time."""
        return self.evaluate_fired_in(inputs, as_of, context)[0]

    def evaluate_fired_in(self, inputs: dict, as_of: dt.date, context) -> tuple[Decision, list]:
        """evaluate_in, and the indices (in meta.rules) of the rules that fired: what a trace at
        level "rules" lists as fired, without building the trace (the policy lab's replay reads
        both for every stored decision)."""
        if self._uses_context:
            rt = context(as_of, self._connector_names, self._answer_coercers)
            today, calls = rt.today, rt.calls
        else:  # the code reads no date, lookup or budget counter (as in evaluate_validated)
            rt, today, calls = None, as_of, []
        slots = [_UNSET] * self._nslots
        # With slots, evaluate_fast returns the rules' results (engine.hot_path.SIGNATURE).
        fired, errors, outputs, output_errors = self._fast(inputs, None, "off", None, None, None, slots, rt)
        combiner = self._combiner
        indices = [index for index, _ in fired]  # before decide(), which may reorder `fired`
        if fired or errors or output_errors:
            return combiner.decide(fired, errors, outputs, output_errors, inputs, slots, calls, today, None), indices
        return Decision(combiner.name, combiner.version, combiner.default_verb, outputs, combiner.default_codes.copy(),
                        None, calls, combiner.output_types, combiner, None, inputs, slots, today), indices

    def evaluate_validated(self, inputs: dict, *, connectors: Connectors | None = None, trace: str = "off",
                           as_of: dt.date | None = None, deadline: float | None = None,
                           budget: float | None = None) -> Decision:
        """Evaluate inputs that already went through validate(). `deadline` (time.monotonic()):
        when every connector lookup of this decision must have answered; past it, a lookup is
        unavailable (CONNECTOR_TIMEOUT) and the policy's `on error` (or its `available()` rules) decide.
        `budget`: seconds of CPU the evaluation may spend going through lists; past it, what is
        still being computed fails with EVALUATION_TIMEOUT (engine.runtime.each), through `on error`.

        Each PreparedPolicy replaces this method with the generated evaluate_fast itself (same
        signature, see __init__ and engine.hot_path): this definition serves calls made through
        the class."""
        return self._fast(inputs, connectors, trace, as_of, deadline, budget)

    def _evaluate_general(self, inputs: dict, *, connectors: Connectors | None = None, trace: str = "off",
                          as_of: dt.date | None = None, deadline: float | None = None,
                          budget: float | None = None) -> Decision:
        """evaluate_validated for every case and every trace level: the one definition of an
        evaluation that the hot path (evaluate_validated) gives the common cases of, faster."""
        if self._uses_context:
            names = self._connector_names
            io, impls = UNBOUND if connectors is None else connectors.binding(names)
            rt = EvalContext(as_of or dt.date.today(), connectors, names, self._answer_coercers, deadline, budget,
                             io, impls)
            today, calls = rt.today, rt.calls
        else:  # the code reads no date, lookup or budget counter: `today` is never read either
            rt, today, calls = None, as_of, []
        slots = [_UNSET] * self._nslots
        if trace == "off" or trace == "rules":
            fired, errors, outputs, output_errors = self._fast(inputs, None, "off", None, None, None, slots, rt)
            combiner = self._combiner
            if trace == "off":
                shown = None
            elif fired or errors:
                shown = trace_shape.rules_level(self.meta, combiner, fired, errors)
            else:  # trace.rules_level's answer when nothing fired or failed, without the call
                shown = {"level": "rules", "rules": [], "values": {}, "tables": {}}
            if fired or errors or output_errors:
                return combiner.decide(fired, errors, outputs, output_errors, inputs, slots, calls, today, shown)
            # Nothing fired or failed: the default, built here (Combiner.decide's first case) because
            # this is most evaluations of a small policy, where one more call is a tenth of the time.
            return Decision(combiner.name, combiner.version, combiner.default_verb, outputs,
                            combiner.default_codes.copy(), shown, calls, combiner.output_types,
                            combiner, None, inputs, slots, today)
        if trace == "full":
            fired, errors, outputs, output_errors, rule_trace = self._full(inputs, slots, rt)
            full = self._combiner.full_trace(rule_trace, slots)
            return self._combiner.decide(fired, errors, outputs, output_errors, inputs, slots, calls, today,
                                         trace_shape.full_level(self.meta, full))
        raise ValueError(f"trace must be one of {', '.join(TRACE_LEVELS)}")
