"""What replay and backtest share: compiling a policy in a worker, and statistics that merge."""

from __future__ import annotations

import statistics
from decimal import Decimal
from typing import Any

from regua.dsl import types as T
from regua.dsl.values import to_json

OUTCOMES = ("approve", "review", "deny")


def compile_source(source: str, file: str, plugins: bool = True):
    """The PreparedPolicy for `source`, with the installed plugins' functions and contracts
    (REGUA_PLUGINS_ALLOW / REGUA_PLUGINS_DENY apply), as `regua eval` compiles it."""
    from regua.engine.compiler import compile_policy

    env = None
    if plugins:
        from regua.plugins.manager import PluginSettings
        from regua.plugins.registry import Registry

        env = Registry.load(PluginSettings.from_env()).environment()
    return compile_policy(source, file, env)


def money_outputs(prepared) -> list[str]:
    return [name for name, typ in prepared.meta.outputs if isinstance(typ, T.Prim) and typ.name == "money"]


def outputs_json(decision) -> dict[str, Any]:
    return {k: to_json(v, decision.output_types.get(k)) for k, v in decision.outputs.items()}


def fired_rules(decision) -> list[str]:
    """Rules that fired (needs trace="rules")."""
    return [step["rule"] for step in (decision.trace or {}).get("rules", ()) if step["result"] == "fired"]


def as_decimal(value) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def distribution(values: list[Decimal]) -> dict[str, str] | None:
    """min, p10, median, p90, max and mean of money deltas, as text (exact decimals)."""
    if not values:
        return None
    ordered = sorted(values)

    def quantile(q: float) -> Decimal:
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]

    mean = (sum(ordered, Decimal(0)) / len(ordered)).quantize(Decimal("0.01"))
    return {"min": str(ordered[0]), "p10": str(quantile(0.1)), "median": str(statistics.median_low(ordered)),
            "p90": str(quantile(0.9)), "max": str(ordered[-1]), "mean": str(mean)}


def add_counts(target: dict, source: dict) -> None:
    for key, value in source.items():
        target[key] = target.get(key, 0) + value
