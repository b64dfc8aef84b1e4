"""The evaluation hot path, inside the generated `evaluate_fast`.

`evaluate_fast(i, s, rt)` runs the rules and returns (fired, errors, outputs, output_errors) for
the callers that combine results themselves (PreparedPolicy.evaluate_raw, evaluate_fired_in,
_evaluate_general). Called as `evaluate_fast(i, connectors=..., trace=..., as_of=..., ...)`,
without slots, it is PreparedPolicy.evaluate_validated: it makes the evaluation context and the
slots before the rules (PROLOGUE) and builds the Decision of the common cases after them
(EPILOGUE), at trace off or rules: nothing fired or failed (the default), or exactly one rule
fired and nothing failed. Every other case goes to Combiner.decide, and trace level full (or a
level that does not exist) to PreparedPolicy._evaluate_general.

Why inside the generated function: for a small policy the fixed cost around the rules was most
of an evaluation (benchmarks/bench_quick.py, a 20-row table against the if/elif chain written by
hand), and a second Python frame (a wrapper calling evaluate_fast) with its argument tuple and the
result tuple's unpacking cost about a quarter of it. The rule code is emitted once (compile time
and size do not grow); the two extra tests a slot-passing caller pays are a few nanoseconds.

The per-policy constants (`_hot_*` names) are set in the generated module's namespace by
`hot_globals` when the policy is prepared. Locals of these lines start with `_h`, names the rule
code never uses (its locals are l<n>, t<n>_<m>, c<n>, f<n>, v, e, fired, errors, outputs, ...).
Without a failure every output is in `outputs` (each output's code either sets it or records an
error), so, unlike Combiner.decide, the epilogue fills in no missing outputs.
tests/test_evaluate_hot_path.py holds this path to _evaluate_general's decisions.
"""

from __future__ import annotations

import datetime as dt
import functools

from . import trace as trace_shape
from .decision import Decision
from .evaluation import UNBOUND, EvalContext

# evaluate_validated's parameters, then the slots and context of the callers that pass them (by
# position: `fast(inputs, None, "off", None, None, None, slots, rt)`). Not keyword-only: CPython
# fills missing keyword-only parameters from a dict, one lookup each, positional ones from a tuple
# (a tenth of a small table's evaluation). A caller passing them by position gets what they mean.
SIGNATURE = "(inputs, connectors=None, trace='off', as_of=None, deadline=None, budget=None, s=None, rt=None)"

PROLOGUE = """\
i = inputs
_hrules = None
if s is None:
    if trace == 'off':
        _hrules = False
    elif trace == 'rules':
        _hrules = True
    else:
        return _hot_general(i, connectors, trace, as_of, deadline, budget)
    if _hot_uses_context:
        _hio, _himpls = _hot_unbound if connectors is None else connectors.binding(_hot_names)
        rt = _hot_context(as_of or _hot_date.today(), connectors, _hot_names, _hot_coercers, deadline, budget,
                          _hio, _himpls)
        _htoday, _hcalls = rt.today, rt.calls
    else:  # the code reads no date, lookup or budget counter: `today` is never read either
        _htoday, _hcalls = as_of, []
    s = {slots}"""

EPILOGUE = """\
if _hrules is None:
    return fired, errors, outputs, output_errors
if not errors and not output_errors:
    if not fired:
        return _hot_Decision(_hot_name, _hot_version, _hot_default_verb, outputs, {default_codes},
                             {'level': 'rules', 'rules': [], 'values': {}, 'tables': {}} if _hrules else None,
                             _hcalls, _hot_output_types, _hot_combiner, None, i, s, _htoday)
    if len(fired) == 1:
        _hindex, _hsets = fired[0]
        if _hsets:
            outputs.update(_hsets)
        return _hot_Decision(_hot_name, _hot_version, _hot_verbs[_hindex], outputs, _hot_code_lists[_hindex].copy(),
                             {'level': 'rules', 'rules': [_hot_fired_steps[_hindex].copy()], 'values': {},
                              'tables': {}} if _hrules else None,
                             _hcalls, _hot_output_types, _hot_combiner, fired, i, s, _htoday)
return _hot_combiner.decide(fired, errors, outputs, output_errors, i, s, _hcalls, _htoday,
                            _hot_rules_level(fired, errors) if _hrules else None)"""


def prologue(slot_count: int) -> str:
    """PROLOGUE with the fresh slot list: a list display for a few slots (no call)."""
    slots = f"[{', '.join(['_U'] * slot_count)}]" if slot_count <= 16 else f"[_U] * {slot_count}"
    return PROLOGUE.replace("{slots}", slots)


def epilogue(default_code: str | None) -> str:
    """EPILOGUE with the default's reason codes as a list display (Combiner.default_codes)."""
    return EPILOGUE.replace("{default_codes}", f"[{default_code!r}]" if default_code else "[]")


def hot_globals(prepared, combiner) -> dict:
    """The `_hot_*` names PROLOGUE and EPILOGUE read, for one prepared policy. The general path is
    reached through the policy itself: `evaluate_validated`, kept without its policy, must still
    answer every trace level, as the bound method it replaces did. That is a reference cycle
    (policy, namespace, this function), which the garbage collector frees like any other
    (tests/test_policy_memory.py counts the versions still alive after gc.collect())."""
    general_path = prepared._evaluate_general

    def general(inputs, connectors, trace, as_of, deadline, budget):
        return general_path(inputs, connectors=connectors, trace=trace, as_of=as_of, deadline=deadline,
                            budget=budget)

    return {
        "_hot_general": general, "_hot_uses_context": prepared.meta.uses_context, "_hot_unbound": UNBOUND,
        "_hot_names": prepared._connector_names, "_hot_context": EvalContext, "_hot_date": dt.date,
        "_hot_coercers": prepared._answer_coercers, "_hot_combiner": combiner,
        "_hot_rules_level": functools.partial(trace_shape.rules_level, prepared.meta, combiner),
        "_hot_Decision": Decision, "_hot_name": combiner.name, "_hot_version": combiner.version,
        "_hot_default_verb": combiner.default_verb,
        "_hot_output_types": combiner.output_types, "_hot_verbs": combiner.verbs,
        "_hot_code_lists": combiner.code_lists, "_hot_fired_steps": combiner.fired_steps,
    }
