"""What differs between the policy kinds (credit, collection, monitoring), in one place.

The checker asks the policy's Kind for its actions, its fixed input (collection and monitoring
policies read what the engine gives them and declare none), the action taken when evaluation
fails, and the checks only that kind needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import ast, collection, monitoring
from . import types as T
from .diagnostics import DiagnosticBag, did_you_mean


@dataclass(frozen=True)
class Kind:
    name: str
    #: action -> severity; the combining rule is "most severe wins".
    actions: dict[str, int]
    #: Actions that need no reason code and message (the quiet, nothing-happens ones).
    quiet: frozenset[str]
    #: The error action when no `on error` is declared.
    on_error: ast.Action
    #: The input the engine fills (None: the policy declares its own) and who fills it.
    fixed_input: T.RecordType | None = None
    filled_by: str = ""
    #: The default outcome when none is declared (None: `default` is required, E113).
    default: ast.Action | None = None
    #: Extra checks of outputs and `set`s: (checker's bag, output types, policy) -> None.
    check_outputs: Callable[[DiagnosticBag, dict[str, T.Type], ast.Policy], None] | None = None
    #: A step's condition as evaluated, guards included (None: the kind has no steps).
    step_guard: Callable[[ast.Rule], ast.Expr] | None = None


def _check_collection_outputs(bag: DiagnosticBag, types: dict[str, T.Type], policy: ast.Policy) -> None:
    priority = types.get(collection.PRIORITY)
    if priority is not None and not T.is_unknown(priority) \
            and not any(T.assignable(priority, t) for t in (T.INT, T.DECIMAL)):
        bag.error("E201", f"output 'priority' ranks debtors and must be a number, not {priority}",
                  next(o.span for o in policy.outputs if o.name == collection.PRIORITY))


def _collection_step_guard(rule: ast.Rule) -> ast.Expr:
    """A step is due once its day has come, until it has been carried out (`sent`); a step before
    the due date (a reminder) is pointless once the debt is overdue, so it lapses then."""
    span = rule.span

    def days_late(op: str, day: int) -> ast.Expr:
        name = ast.Name(collection.DAYS_LATE, ref="input", type=T.INT, span=span)
        return ast.Binary(op, name, ast.Literal("int", day, str(day), type=T.INT, span=span), type=T.BOOL, span=span)

    sent = ast.Name(collection.SENT, ref="input", type=collection.INPUT[collection.SENT][0], span=span)
    guards = [days_late(">=", rule.day),
              ast.InList(ast.Literal("text", rule.name, rule.name, type=T.TEXT, span=span), sent, negated=True,
                         type=T.BOOL, span=span)]
    if rule.day < 0:
        guards.append(days_late("<=", 0))
    if rule.has_when:
        guards.append(rule.condition)
    condition = guards[0]
    for guard in guards[1:]:
        condition = ast.Binary("and", condition, guard, type=T.BOOL, span=span)
    return condition


def _check_monitoring_outputs(bag: DiagnosticBag, types: dict[str, T.Type], policy: ast.Policy) -> None:
    spans = {o.name: o.span for o in policy.outputs}
    for name, (expected, required, meaning) in monitoring.OUTPUTS.items():
        typ = types.get(name)
        if typ is None:
            if required:
                bag.error("E117", f"a monitoring policy declares `output {name}` ({expected}: {meaning}), "
                          f"e.g. `output {name} = limit`", policy.name_span)
        elif not T.is_unknown(typ) and not T.assignable(typ, expected):
            bag.error("E117", f"output '{name}' is {expected} ({meaning}), not {typ}", spans[name])
    # Literal recipients are checked here; computed ones are checked by the monitor when it reads them.
    values = [o.value for o in policy.outputs if o.name == monitoring.NOTIFY and o.value is not None]
    values += [a.value for r in policy.rules for a in r.sets if a.name == monitoring.NOTIFY]
    for value in values:
        for item in value.items if isinstance(value, ast.ListLit) else []:
            if isinstance(item, ast.Literal) and item.value not in monitoring.RECIPIENTS:
                bag.error("E117", f"'{item.value}' is not a recipient (use {', '.join(monitoring.RECIPIENTS)})",
                          item.span, did_you_mean(str(item.value), monitoring.RECIPIENTS))


def check_step_setting(bag: DiagnosticBag, assignment: ast.Assignment, typ: T.Type) -> None:
    setting = collection.STEP_SETTINGS.get(assignment.name)
    if setting is None:
        bag.error("E116", f"'{assignment.name}' is not a step setting (use "
                  f"{', '.join(collection.STEP_SETTINGS)})", assignment.span,
                  did_you_mean(assignment.name, collection.STEP_SETTINGS))
    elif not T.assignable(typ, setting[0]) and not T.is_unknown(typ):
        bag.error("E201", f"step setting '{assignment.name}' is {setting[0]}, but this sets {typ}",
                  assignment.value.span, T.describe_mismatch("+", setting[0], typ))


KINDS: dict[str, Kind] = {
    "credit": Kind(
        "credit", {"approve": 0, "review": 1, "deny": 2}, frozenset({"approve"}),
        ast.Action("review", "ERRO_AVALIACAO", "Não foi possível avaliar a política; encaminhar para análise")),
    "collection": Kind(
        "collection", collection.ACTIONS, frozenset(collection.ACTIONS),
        # A régua that cannot evaluate a receivable waits (and says why) rather than guessing a step.
        ast.Action("wait", "ERRO_AVALIACAO", "Não foi possível avaliar a régua para este título"),
        collection.INPUT_TYPE, "the receivable the runner gives it", ast.Action("wait"),
        _check_collection_outputs, _collection_step_guard),
    "monitoring": Kind(
        "monitoring", monitoring.ACTIONS, frozenset({"keep"}),
        # A monitoring decision that cannot be made is left to a person, and the limit stays.
        ast.Action("review", "ERRO_AVALIACAO", "Não foi possível avaliar o monitoramento; encaminhar para análise"),
        monitoring.INPUT_TYPE, "the alert and the customer's account the monitor gives it", None,
        _check_monitoring_outputs),
}
