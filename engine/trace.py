"""The decision's trace: one shape whatever the level asked for.

    {"level": "rules" | "full",
     "rules":  [{"rule", "line", "result": "fired" | "not_fired" | "error", "outcome", "error"}],
     "values": {let or lookup name: value},
     "tables": {table name: [{"row", "line"}]}}

`trace="off"` gives no trace (`null`). At level `rules`, `rules` holds the rules that fired or
failed, in rule order, and `values` and `tables` are empty; at level `full`, `rules` holds every
rule evaluated, in evaluation order, with every value and table row computed. `outcome` is what
the entry contributed to the decision (the rule's verb, the policy's on-error verb for a failure,
null for a rule that did not fire); `error` is the failure (`code`, `message`, `line`) or null.
A client reads one type at every level; the server's OpenAPI document (server/schemas.py
TraceOut) and docs/language.md §14 describe it.

Decisions recorded before the shape was unified (a bare list at level `rules`; `result` true or
false at level `full`) are read back through `uniform`, so stored and fresh decisions agree.
"""

from __future__ import annotations

from typing import Any

FIRED, NOT_FIRED, ERROR = "fired", "not_fired", "error"


def _entry(rule, result: str, outcome: str | None, error: dict | None) -> dict[str, Any]:
    return {"rule": rule.name, "line": rule.line, "result": result, "outcome": outcome, "error": error}


def rules_level(meta, combiner, fired, errors) -> dict[str, Any]:
    """The rules that fired or failed (evaluate_fast's `fired` [(index, sets)] and `errors`
    [(index, exception)]), in rule order. A fired rule's entry is a copy of one built when the
    policy was prepared (fired_steps): this runs on every evaluation asked for a trace."""
    if errors:
        rules, on_error = meta.rules, meta.on_error.verb
        steps_of = combiner.fired_steps
        hits = [(i, None) for i, _ in fired] + [(i, error) for i, error in errors]
        steps = [steps_of[i].copy() if error is None
                 else _entry(rules[i], ERROR, on_error, combiner.error_detail(error))
                 for i, error in sorted(hits, key=_first)]
    elif not fired:
        steps = []
    elif len(fired) == 1:
        steps = [combiner.fired_steps[fired[0][0]].copy()]
    else:
        steps_of = combiner.fired_steps
        steps = [steps_of[i].copy() for i in sorted([i for i, _ in fired])]
    return {"level": "rules", "rules": steps, "values": {}, "tables": {}}


def fired_steps(meta) -> list[dict[str, Any]]:
    """Per rule, its trace entry when it fires (rules_level copies it)."""
    return [_entry(rule, FIRED, rule.action.verb, None) for rule in meta.rules]


def _first(hit):
    return hit[0]


def full_level(meta, full: dict[str, Any]) -> dict[str, Any]:
    """Combiner.full_trace's {"rules" (result true/false/"error"), "values", "tables"} in the one shape."""
    verbs = {rule.name: rule.action.verb for rule in meta.rules}
    steps = []
    for step in full["rules"]:
        if step["result"] == ERROR:
            steps.append({**step, "outcome": meta.on_error.verb, "error": step.get("error")})
        else:
            fired = step["result"] is True
            steps.append({"rule": step["rule"], "line": step["line"], "result": FIRED if fired else NOT_FIRED,
                          "outcome": verbs.get(step["rule"]) if fired else None, "error": None})
    return {"level": "full", "rules": steps, "values": full["values"], "tables": full["tables"]}


def uniform(trace: Any) -> Any:
    """A stored decision's trace in the one shape, whatever version of the server recorded it."""
    if isinstance(trace, list):  # level rules, as first recorded: [{"rule", "line", "result", "outcome"}]
        steps = [{"rule": s.get("rule"), "line": s.get("line"), "result": s.get("result"),
                  "outcome": s.get("outcome"), "error": s.get("error")} for s in trace if isinstance(s, dict)]
        return {"level": "rules", "rules": steps, "values": {}, "tables": {}}
    if isinstance(trace, dict) and "level" not in trace and isinstance(trace.get("rules"), list):
        steps = []
        for s in trace["rules"]:
            if not isinstance(s, dict):
                continue
            result = s.get("result")
            result = FIRED if result is True else NOT_FIRED if result is False else result
            steps.append({"rule": s.get("rule"), "line": s.get("line"), "result": result,
                          "outcome": s.get("outcome"), "error": s.get("error")})
        return {"level": "full", "rules": steps, "values": trace.get("values") or {},
                "tables": trace.get("tables") or {}}
    return trace
