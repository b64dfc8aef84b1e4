"""The replay's common case, without the work its report does not need.

regua.lab.replay's general path (`Replayer._one`) handles every record the way `regua eval` would:
the stored answers decoded into dicts and answered through engine.recorded's connectors, the
input validated with its unknown fields dropped, the candidate evaluated with a trace at level
"rules", connector calls recorded. Most records are plain: written by the same input shape, with
recorded answers the candidate reads as they are. For those, per decision, this path

- decodes the recorded answers into typed entries whose answers stay raw JSON (msgspec.Raw), and
  coerces an answer to the candidate's contract once per distinct answer text (a bounded cache:
  a customer who orders again within the bureau cache's lifetime got the very same answer), a
  recorded failure once per connector and error code;
- decodes the input straight into the candidate's runtime values where their types and shapes
  allow (TypedInput), or, when the report is cut by input fields (read from the input as
  stored), looks the input's shape (its field names) up once per shape and validates it;
- evaluates without a trace: the rules that fired come from the evaluation itself
  (PreparedPolicy.evaluate_fired_in), and no connector call is recorded.

Anything else — a record that does not decode as expected, a field the candidate does not know,
an input it refuses, a lookup that raises, `--live` — goes the general path, which counts and
lists it. Both paths feed one tally (`Replayer._tally`), and tests/test_lab_fast.py holds their
reports equal on generated logs, odd records included.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from regua.dsl import types as T
from regua.dsl.coercers import coercer
from regua.dsl.values import _PLAIN_CENTS, normalize_cnpj, normalize_cpf
from regua.engine.connectors import ConnectorError, mask_document
from regua.engine.evaluation import EvalContext
from regua.engine.evaluation import _failure as lookup_failure  # the value a failed lookup has, as evaluation makes it
from regua.engine.prepared import InvalidInput
from regua.engine.recorded import NotRecorded

#: Distinct answers kept coerced: a few MB for bureau reports of a few kB each; cleared when full.
ANSWER_CACHE_SIZE = 2048


class _Entry(msgspec.Struct):
    """One recorded lookup (engine.recorded's format); `answer` stays JSON text until needed."""

    connector: str
    args: list[str] = []
    status: Any = None
    answer: msgspec.Raw = msgspec.Raw()  # empty: no answer recorded (a failure)
    error: Any = None


_decode_entries = msgspec.json.Decoder(list[_Entry]).decode
_decode_answer = msgspec.json.Decoder().decode  # what engine.recorded.decode_answers gives an answer


#: Whole numbers as validation takes them as they are (dsl.values.coerce_int).
_INT = Annotated[int, msgspec.Meta(gt=-10**18, lt=10**18)]
_SCALARS = (int, str, bool, float, Decimal, dt.date, dt.timedelta, type(None))


class TypedInput:
    """A stored input decoded straight into the candidate's runtime values where a field's type
    allows and its value has the shape validation passes through unchanged: an int in range, text,
    a bool, a date as AAAA-MM-DD (checked and converted by msgspec, in C), money as whole reais or
    plain text of centavos (dsl.values.coerce_money's fast case), a document that normalizes.
    Anything else about it — a field the candidate does not know, a value of another shape, a
    missing required field — raises _Fallback, and validation (the general path) says what it
    makes of it. Fields of other types go through their validation coercer, as validate() calls
    it. The conversion is a function generated for the candidate's fields (no loop over them)."""

    def __init__(self, prepared):
        fields = prepared.meta.input_type.fields
        kinds, lines = [], ["def read(s):", "    out, defaulted = {}, []"]
        namespace: dict[str, Any] = {"_Fallback": _Fallback, "_Decimal": Decimal, "_plain_cents": _PLAIN_CENTS,
                                     "_deepcopy": copy.deepcopy}
        for k, spec in enumerate(fields):
            name = spec.type.name if isinstance(spec.type, T.Prim) else None
            key = repr(spec.name)
            if spec.required:
                lines += [f"    v = s.f{k}", "    if v is None:", "        raise _Fallback"]
            else:
                namespace[f"_d{k}"] = spec.default
                default = f"_d{k}" if spec.default.__class__ in _SCALARS else f"_deepcopy(_d{k})"  # never shared
                lines += [f"    v = s.f{k}", "    if v is None:", f"        out[{key}] = {default}",
                          f"        defaulted.append({key})"]
            if name == "money":
                kinds.append(str | _INT | None)
                lines += ["    elif v.__class__ is int or _plain_cents(v):", f"        out[{key}] = _Decimal(v)",
                          "    else:", "        raise _Fallback"]
            elif name in ("int", "text", "bool", "date"):
                kinds.append({"int": _INT, "text": str, "bool": bool, "date": dt.date}[name] | None)
                lines += ["    else:", f"        out[{key}] = v"]
            elif name in ("cpf", "cnpj"):
                kinds.append(str | None)
                namespace[f"_n{k}"] = normalize_cpf if name == "cpf" else normalize_cnpj
                lines += ["    else:", f"        v = out[{key}] = _n{k}(v)", "        if v is None:",
                          "            raise _Fallback"]
            else:
                kinds.append(Any)
                namespace[f"_c{k}"] = coercer(spec.type, cents=True)
                lines += ["    else:", f"        out[{key}] = _c{k}(v)"]
        lines.append("    return out, defaulted")
        exec(compile("\n".join(lines), f"<stored input of {prepared.name}>", "exec"), namespace)  # noqa: S102 — field names only as repr() literals
        self._read = namespace["read"]
        shape = msgspec.defstruct("StoredInput", [(f"f{k}", kind, None) for k, kind in enumerate(kinds)],
                                  rename={f"f{k}": spec.name for k, spec in enumerate(fields)},
                                  forbid_unknown_fields=True)
        # JSON numbers with a fraction as Decimal from their text, as the server read them
        self._decode = msgspec.json.Decoder(shape, float_hook=Decimal).decode

    def read(self, text) -> tuple[dict, list[str]]:
        """(the validated input, the optional fields it lacks)."""
        try:
            return self._read(self._decode(text))
        except (_Fallback, msgspec.DecodeError, TypeError):
            raise _Fallback from None
        except Exception:  # noqa: BLE001 — the general path says what is wrong with the value
            raise _Fallback from None


class _Fallback(Exception):
    """The record is not plain: the general path replays it."""


class _ReplayContext(EvalContext, gc=False):
    """An evaluation context whose lookups are answered from the record being replayed."""

    answers: Any = None  # the FastPath

    def lookup(self, index: int, args: tuple):
        key = (index, args)
        memo = self.memo
        if key in memo:
            return memo[key]
        value = memo[key] = self.answers.answer(index, args)
        return value


class FastPath:
    """Per candidate (and process): the shapes, answers and failures seen so far."""

    def __init__(self, prepared, known: set[str], defaults: set[str], typed: bool = True):
        """`typed`: inputs are decoded by TypedInput (no cut reads the stored input as it was)."""
        self.prepared = prepared
        self.typed = TypedInput(prepared) if typed else None
        self.known, self.defaults = known, tuple(sorted(defaults))
        self.rule_names = [rule.name for rule in prepared.meta.rules]
        self.names = tuple(spec.qualified_name for spec in prepared.meta.connectors)
        self.index = {name: k for k, name in enumerate(self.names)}
        self.coercers: list = []
        self.entries: dict = {}  # (connector, masked args) -> _Entry, of the record being replayed
        self.misses: set[str] = set()
        self._shapes: dict[tuple, tuple | None] = {}
        self._answers: dict[tuple, Any] = {}
        self._failures: dict[tuple, Any] = {}
        self._days: dict[str, dt.date] = {}
        self._args: tuple | None = None  # the last lookup's arguments, and masked as recorded
        self._masked: tuple = ()

    def _context(self, as_of, names, coercers):
        self.coercers = coercers
        return _ReplayContext(as_of, None, names, coercers, answers=self)

    # ---- one record ----
    def load(self, text: str | None) -> list[_Entry]:
        """The record's lookups, keyed as engine.recorded keys them (the first of a key wins)."""
        entries: dict = {}
        listed = _decode_entries(text) if text else []
        for entry in listed:
            entries.setdefault((entry.connector, tuple(entry.args)), entry)
        self.entries = entries
        self.misses = set()
        return listed

    def answers(self) -> dict[str, Any]:
        """Connector -> the answer its first recorded lookup got (RecordedConnectors.answers)."""
        out: dict[str, Any] = {}
        for (name, _args), entry in self.entries.items():
            if name not in out and entry.answer:
                out[name] = _decode_answer(entry.answer)
        return out

    def shape(self, data: dict) -> tuple:
        """(defaults absent, defaults present) of an input whose fields the candidate all knows."""
        keys = tuple(data)
        shape = self._shapes.get(keys, False)
        if shape is False:
            if len(self._shapes) > 1024:
                self._shapes.clear()
            present = set(keys)
            shape = self._shapes[keys] = None if present - self.known else (
                tuple(n for n in self.defaults if n not in present), tuple(n for n in self.defaults if n in present))
        if shape is None:
            raise _Fallback
        return shape

    def day(self, text: str) -> dt.date:
        day = self._days.get(text)
        if day is None:
            if len(self._days) > 10_000:
                self._days.clear()
            day = self._days[text] = dt.date.fromisoformat(text)
        return day

    def validate(self, data: dict) -> dict:
        try:
            return self.prepared.validate(data)
        except InvalidInput:  # the general path reports it
            raise _Fallback from None

    def evaluate(self, inputs: dict, as_of: dt.date):
        """(decision, names of the rules that fired); _Fallback for an input the general path must see."""
        try:
            decision, fired = self.prepared.evaluate_fired_in(inputs, as_of, self._context)
        except Exception:  # noqa: BLE001 — the general path reports it
            raise _Fallback from None
        names = self.rule_names
        return decision, {names[k] for k in fired}

    # ---- lookups ----
    def answer(self, index: int, args: tuple):
        name = self.names[index]
        if args != self._args:  # a policy's lookups mostly share their arguments (the customer's document)
            # text only: equal numbers may be written differently (1.0 and 1), and so masked differently
            self._args = args if all(arg.__class__ is str for arg in args) else None
            self._masked = tuple(map(mask_document, args))
        entry = self.entries.get((name, self._masked))
        if entry is None or entry.status == "unrecorded":
            self.misses.add(name)
            return self._failure(index, None)
        raw = entry.answer
        if not raw:
            return self._failure(index, str(entry.error or "FAILED"))
        key = (index, bytes(raw))
        value = self._answers.get(key)
        if value is None:
            if len(self._answers) >= ANSWER_CACHE_SIZE:
                self._answers.clear()
            try:
                value = self.coercers[index](_decode_answer(raw))
            except Exception as error:  # noqa: BLE001 — as evaluation reads it: a bad answer is a value
                value = lookup_failure(name, error)
            self._answers[key] = value
        return value

    def _failure(self, index: int, code: str | None):
        """The value of a recorded failure (code) or of a lookup not recorded (None), as
        engine.recorded's connectors make evaluation see it; one per connector and code."""
        key = (index, code)
        value = self._failures.get(key)
        if value is None:
            name = self.names[index]
            if code is None:
                error: ConnectorError = NotRecorded(name)
            else:
                error = ConnectorError(code[len("CONNECTOR_"):] if code.startswith("CONNECTOR_") else code,
                                       "recorded failure")
            if len(self._failures) > 1024:
                self._failures.clear()
            value = self._failures[key] = lookup_failure(name, error)
        return value
