"""What counterfactual explanations may change in a decision, one ActionableSpec per actionable
fact (built at compile time by engine.actionable, kept in PolicyMeta and so in the disk cache).

A module of its own, importing nothing of the syntax tree: unpickling a cached PolicyMeta imports
it, and a warm start from the disk cache must stay quick.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionableSpec:
    label: str  # as written in the policy: `valor_pedido`, `bureau.serasa.score.value`
    connector: str | None  # qualified connector name; None for an input
    path: tuple[str, ...]  # input name, or the field path inside the connector's answer
    type_name: str  # int, decimal, money or percent
    low: object
    high: object
    text: str | None  # the label for people ("valor do pedido")
    thresholds: tuple = ()  # sorted constants the policy compares the fact with
    unit: object = 1  # the smallest change: 1 for int, 0.01 for money and decimal, 0.01 point for percent
