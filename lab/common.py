"""What replay and backtest share: compiling a policy in a worker, and statistics that merge."""

from __future__ import annotations

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


def outputs_encoder(prepared):
    """decision -> its outputs as JSON values, for decisions of `prepared`: the output types are
    looked up once (the primitive ones as the very objects to_json compares first)."""
    types = {name: T.BUILTIN_TYPES.get(typ.name, typ) if isinstance(typ, T.Prim) else typ for name, typ in prepared.meta.outputs}

    def encode(decision) -> dict[str, Any]:
        return {k: to_json(v, types.get(k)) for k, v in decision.outputs.items()}

    return encode


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


def distribution(counts: dict[Decimal, int]) -> dict[str, str] | None:
    """min, p10, median, p90, max and mean of money deltas given as {delta: how many}, as text
    (exact decimals; a quantile is the value at that rank, the median the lower middle one)."""
    total = sum(counts.values())
    if not total:
        return None
    ordered = sorted(counts.items())

    def at_rank(rank: int) -> Decimal:
        seen = 0
        for value, n in ordered:
            seen += n
            if rank < seen:
                return value
        return ordered[-1][0]

    def quantile(q: float) -> Decimal:
        return at_rank(min(total - 1, int(q * (total - 1) + 0.5)))

    mean = (sum((v * n for v, n in ordered), Decimal(0)) / total).quantize(Decimal("0.01"))
    return {"min": str(ordered[0][0]), "p10": str(quantile(0.1)), "median": str(at_rank((total - 1) // 2)),
            "p90": str(quantile(0.9)), "max": str(ordered[-1][0]), "mean": str(mean),
            "histogram": [[str(v), n] for v, n in _bins(ordered)]}


def _bins(ordered: list[tuple[Decimal, int]], most: int = 20) -> list[tuple[Decimal, int]]:
    """At most `most` (lower bound, count) bins of equal width over the deltas, for charts."""
    low, high = ordered[0][0], ordered[-1][0]
    if low == high:
        return [(low, sum(n for _, n in ordered))]
    width = (high - low) / most
    bins = [0] * most
    for value, n in ordered:
        bins[min(most - 1, int((value - low) / width))] += n
    return [((low + width * i).quantize(Decimal("0.01")), n) for i, n in enumerate(bins)]


def add_counts(target: dict, source: dict) -> None:
    for key, value in source.items():
        target[key] = target.get(key, 0) + value
