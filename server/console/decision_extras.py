"""What a decision's console page shows besides the decision itself: the counterfactuals (what
would have got an approval, as data for a table: the same search as GET /decisions/{id}/
counterfactuals, with the policy's own labels and Brazilian formats) and the experiment arm that
decided, with the shadows' decisions beside it."""

from __future__ import annotations

import msgspec

from ..experiments import decision_experiment
from .render import brl, number_br

STATUS = {
    "found": "Mudanças que levariam à aprovação, verificadas reavaliando a política:",
    "none_within_bounds": "Nenhuma mudança dentro dos limites que a política declara levaria à aprovação.",
}


def _value(value, type_name: str) -> str:
    text = str(value)
    if type_name == "money":
        return brl(text)
    if type_name == "percent":
        return number_br(text.rstrip("%")) + "%"
    if type_name == "int":
        return number_br(text, 0)
    return number_br(text)


def counterfactual_rows(found: dict | None) -> dict | None:
    """None when there is nothing to show (an approval, no actionable block, a purged input)."""
    if not found or found["status"] not in STATUS:
        return None
    alternatives = [{"changes": [{"label": c["label"], "from": _value(c["from"], c["type"]),
                                  "to": _value(c["to"], c["type"]), "direction": c["direction"]}
                                 for c in a["changes"]],
                     "outcome": a["outcome"], "reasons": a["reasons"]} for a in found["alternatives"]]
    return {"status": found["status"], "headline": STATUS[found["status"]], "facts": found["facts"],
            "alternatives": alternatives, "complete": found["complete"], "evaluations": found["evaluations"]}


def decision_arm(svc, row: dict, body: dict) -> dict | None:
    if "experiment" not in body:
        return None
    found = decision_experiment(svc.evaluator.experiments, row)
    return msgspec.to_builtins(found) if found is not None else None
