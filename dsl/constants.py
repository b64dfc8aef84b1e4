"""Compile-time values of constant expressions (literals, negation, lists and records of them)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from . import ast
from .values import BusinessDays, Percent


class NotConstant(Exception):
    pass


def constant(expr: ast.Expr):
    """The runtime value of a constant expression; raises NotConstant otherwise."""
    if isinstance(expr, ast.Literal):
        if expr.kind == "days":
            return dt.timedelta(days=expr.value)
        if expr.kind == "business_days":
            return BusinessDays(expr.value)
        if expr.kind == "percent":
            return Percent(expr.value)
        return expr.value
    if isinstance(expr, ast.Unary) and expr.op == "-":
        value = constant(expr.operand)
        if isinstance(value, BusinessDays):
            return BusinessDays(-value.days)
        if isinstance(value, Percent):
            return Percent(-value)
        if isinstance(value, (int, Decimal, dt.timedelta)) and not isinstance(value, bool):
            return -value
        raise NotConstant(expr)  # `-"texto"`: the type pass reports it
    if isinstance(expr, ast.ListLit):
        return [constant(item) for item in expr.items]
    if isinstance(expr, ast.RecordLit):
        return {name: constant(value) for name, value in expr.entries}
    raise NotConstant(expr)
