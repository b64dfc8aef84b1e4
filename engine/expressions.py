"""Expressions to Python, for the code generator (engine.codegen): one visitor method per node.

Chains are flat: `a or b or c` is one Python `or`, `a + b - c` one line of operators; an
arithmetic chain longer than LONG_CHAIN, or with more than LONG_CALLS division or business-day
steps, becomes a call of the runtime's `_fold` (CPython compiles long operator chains
recursively). Literals are emitted with repr() or hoisted into typed constants; names become
positions, so no policy text is ever pasted into code.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from regua.dsl import ast
from regua.dsl import types as T
from regua.dsl.infer import AGGREGATES
from regua.dsl.values import BusinessDays

LONG_CHAIN, LONG_CALLS = 64, 8
CALLS = {"/": "_div({}, {})", "A": "_date_add({}, {})", "B": "_date_add({1}, {0})", "S": "_date_sub({}, {})"}


class ExpressionCompiler(ast.Visitor):
    """`expr(e)` is the Python source of expression `e`; `slot_of` maps lets and tables to slots."""

    def __init__(self) -> None:
        self.constants: dict[tuple, str] = {}
        self.constant_lines: list[str] = []
        self.connectors: list[str] = []
        self.functions: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.locals: list[dict[str, str]] = []
        self.local_counter = 0
        # Inside evaluate_*: lets and tables also live in locals l0..ln (cheaper than slot reads);
        # `no_walrus` > 0 where an assignment expression is not allowed or would not bind there
        # (comprehension iterables, lambdas).
        self.main = False
        self.no_walrus = 0
        self.used_locals: set[int] = set()  # the l<k> locals the function being generated reads
        # Lets hoisted (computed as statements) earlier in the current try block: plain l<k> reads.
        self.known: set[int] = set()
        # Every list expression the code iterates with a loop body (comprehensions, `list.field`):
        # whether one of them comes from the input tells the server that the policy's cost grows
        # with its input beyond reading it (scans such as `in` and sum() run at C speed).
        self.iterated: list[ast.Expr] = []
        # Comprehension bodies being generated around the current expression, and how many lists
        # were handed to the budget counter so far (see _scan).
        self.loop_depth = 0
        self.counted = 0
        # Some generated code reads the evaluation context `rt` (today, a lookup, the budget
        # counter): without it, evaluations skip building one (engine.prepared).
        self.uses_context = False

    # ---- constants ----
    def const(self, value) -> str:
        key = (type(value).__name__, repr(value))
        if key not in self.constants:
            name = f"_K{len(self.constants)}"
            self.constants[key] = name
            if isinstance(value, Decimal):
                text = f"_Decimal({str(value)!r})"
            elif isinstance(value, dt.date):
                text = f"_date({value.year}, {value.month}, {value.day})"
            elif isinstance(value, dt.timedelta):
                text = f"_timedelta(days={value.days})"
            elif isinstance(value, BusinessDays):
                text = f"_BusinessDays({value.days})"
            elif isinstance(value, tuple):
                text = repr(value)
            else:
                raise TypeError(type(value))
            self.constant_lines.append(f"{name} = {text}")
        return self.constants[key]

    def function(self, name: str) -> str:
        if name not in self.functions:
            self.functions.append(name)
        return f"_F{self.functions.index(name)}"

    # ---- expressions ----
    def expr(self, e: ast.Expr) -> str:
        return self.visit(e)

    def visit_Literal(self, e: ast.Literal) -> str:
        if e.kind == "int":
            return repr(e.value)
        if e.kind == "text":
            return repr(e.value)
        if e.kind == "bool":
            return "True" if e.value else "False"
        if e.kind == "days":
            return self.const(dt.timedelta(days=e.value))
        if e.kind == "business_days":
            return self.const(BusinessDays(e.value))
        return self.const(e.value)  # decimal, money, percent, date

    def visit_Name(self, e: ast.Name) -> str:
        if e.ref == "local":
            for scope in reversed(self.locals):
                if e.name in scope:
                    return scope[e.name]
        if e.ref == "input":
            return f"i[{e.name!r}]"
        if e.ref == "builtin":
            self.uses_context = True
            return "rt.today"
        k = self.slot_of[e.name]
        slot = f"(s[{k}] if s[{k}] is not _U else _L{k}(s, i, rt))"
        if not self.main:
            return slot
        self.used_locals.add(k)
        if k in self.known:
            return f"l{k}"
        if self.no_walrus:
            return f"(l{k} if l{k} is not _U else {slot})"
        return f"(l{k} if l{k} is not _U else (l{k} := {slot}))"

    def visit_Attribute(self, e: ast.Attribute) -> str:
        if isinstance(e.target.type, T.ListType):
            self.no_walrus += 1
            try:
                target = self.expr(e.target)
            finally:
                self.no_walrus -= 1
            return f"[_e[{e.attr!r}] for _e in {self._scan('_each', e.target, target)}]"
        target = self.expr(e.target)
        return f"{target}[{e.attr!r}]"

    def visit_ListLit(self, e: ast.ListLit) -> str:
        return "[" + ", ".join(self.expr(i) for i in e.items) + "]"

    def visit_RecordLit(self, e: ast.RecordLit) -> str:
        return "{" + ", ".join(f"{k!r}: {self.expr(v)}" for k, v in e.entries) + "}"

    def visit_Unary(self, e: ast.Unary) -> str:
        return f"(not {self.expr(e.operand)})" if e.op == "not" else f"(-{self.expr(e.operand)})"

    def visit_Binary(self, e: ast.Binary) -> str:
        if e.op in ("and", "or"):
            # A chain is one flat Python expression: `(a or b or c)`, no nested parentheses.
            return "(" + f" {e.op} ".join(self.expr(x) for x in ast.chain(e)[0]) + ")"
        if e.op not in ast.CHAIN_GROUPS:
            return f"({self.expr(e.left)} {e.op} {self.expr(e.right)})"
        # Arithmetic chains (`a + b - c`, `a * b / c`) left to right in one loop; operators stay
        # inline, division and business days call the runtime.
        operands, links = ast.chain(e)
        code = self.expr(operands[0])
        steps = [(arithmetic_step(link), self.expr(link.right)) for link in links]
        if len(steps) > LONG_CHAIN or sum(op not in "+-*" for op, _ in steps) > LONG_CALLS:
            # CPython compiles a long `a + b + ...` recursively: a runtime loop instead.
            signs = "".join(op for op, _ in steps)
            return f"_fold({code}, {signs!r}, ({''.join(c + ', ' for _, c in steps)}))"
        inline = False
        for op, right in steps:
            if op in "+-*":
                code, inline = f"{code} {op} {right}", True
            else:
                code, inline = CALLS[op].format(code, right), False
        return f"({code})" if inline else code

    def visit_InRange(self, e: ast.InRange) -> str:
        test = f"({self.expr(e.low)} <= {self.expr(e.value)} <= {self.expr(e.high)})"
        return f"(not {test})" if e.negated else test

    def visit_InList(self, e: ast.InList) -> str:
        container = e.container
        if isinstance(container, ast.ListLit) and all(isinstance(i, ast.Literal) for i in container.items):
            values = tuple(i.value if i.kind in ("int", "text", "bool") else None for i in container.items)
            code = self.const(values) if None not in values else self.expr(container)
        elif isinstance(container, ast.ListLit):
            code = self.expr(container)
        else:
            code = self._scan("_charge", container, self.expr(container))
        return f"({self.expr(e.value)} {'not in' if e.negated else 'in'} {code})"

    def visit_IfExpr(self, e: ast.IfExpr) -> str:
        return f"({self.expr(e.then)} if {self.expr(e.condition)} else {self.expr(e.otherwise)})"

    def visit_Otherwise(self, e: ast.Otherwise) -> str:
        self.no_walrus += 1
        try:
            return f"_otherwise(lambda: {self.expr(e.value)}, lambda: {self.expr(e.fallback)})"
        finally:
            self.no_walrus -= 1

    def visit_Call(self, e: ast.Call) -> str:
        args = [self.expr(a) for a in e.args if not isinstance(a, ast.Comprehension)]
        if e.resolved == "connector":
            qualified = f"{e.namespace}.{e.func}"
            if qualified not in self.connectors:
                self.connectors.append(qualified)
            self.uses_context = True
            return f"rt.lookup({self.connectors.index(qualified)}, ({''.join(a + ', ' for a in args)}))"
        if e.resolved == "available":
            return f"({self.expr(e.args[0])}.__class__ is not _Unavailable)"
        if e.resolved == "aggregate":
            return self._aggregate(e)
        return f"{self.function(e.func)}({', '.join(args)})"

    def _aggregate(self, e: ast.Call) -> str:
        name = e.func
        if name in ("min", "max") and len(e.args) >= 2:
            return f"{name}({', '.join(self.expr(a) for a in e.args)})"
        arg = e.args[0]
        element_type = arg.type.element if isinstance(arg.type, T.ListType) else T.UNKNOWN
        if isinstance(arg, ast.Comprehension):
            self.no_walrus += 1
            try:
                return self._comprehension_aggregate(name, arg, element_type)
            finally:
                self.no_walrus -= 1
        items = self.expr(arg)
        if name == "count":
            return f"len({items})"
        if not isinstance(arg, ast.ListLit):
            items = self._scan("_charge", arg, items)
        generator = items
        return self._finish_aggregate(name, items, generator, element_type)

    def _comprehension_aggregate(self, name, arg, element_type) -> str:
        var = f"v{self.local_counter}"
        self.local_counter += 1
        source = self.expr(arg.source)
        counted = self.counted
        self.locals.append({arg.var: var})
        self.loop_depth += 1
        try:
            element = self.expr(arg.element)
            condition = f" if {self.expr(arg.condition)}" if arg.condition is not None else ""
        finally:
            self.locals.pop()
            self.loop_depth -= 1
        source = self._scan("_each", arg.source, source, nested=self.counted != counted)
        if name == "count":
            return f"len([1 for {var} in {source}{condition}])"
        items = f"[{element} for {var} in {source}{condition}]"
        generator = f"({element} for {var} in {source}{condition})"
        return self._finish_aggregate(name, items, generator, element_type)

    def _scan(self, helper: str, e: ast.Expr, code: str, nested: bool = False) -> str:
        """`code` (list expression `e`) through the runtime's budget counter (engine.runtime):
        `_each` for a list looped over, `_charge` for a list scanned. Only where the cost can grow
        faster than the input: a list inside a comprehension's body (gone through once per item)
        and the source of a comprehension whose body goes through lists (`nested`). A single pass
        over a list costs at most what reading the (capped) input did, and stays free."""
        if helper == "_each":
            self.iterated.append(e)
        if not (self.loop_depth or nested):
            return code
        self.counted += 1
        self.uses_context = True
        return f"{helper}(rt, {code})"

    def _finish_aggregate(self, name, items, generator, element_type) -> str:
        if name == "sum":
            generator = items  # sum() over a list is faster than over a generator in CPython
            if element_type == T.INT:
                return f"sum({generator})"
            zero = self.const(dt.timedelta(0)) if element_type == T.DURATION else self.const(Decimal(0))
            return f"sum({generator}, {zero})"
        if name in ("any", "all"):
            return f"{name}({generator})"
        helper = {"min": "_smallest", "max": "_largest", "avg": "_average"}[name]
        return f"{helper}({items})"


def arithmetic_step(e: ast.Binary) -> str:
    """The step of an arithmetic chain: an operator, or a key of CALLS (date and business days
    need the calendar; calendar days are plain timedelta arithmetic)."""
    if e.op == "/":
        return "/"
    if e.left.type == T.DATE and e.right.type == T.BUSINESS_DAYS:
        return "A" if e.op == "+" else "S"
    if e.op == "+" and e.right.type == T.DATE and e.left.type == T.BUSINESS_DAYS:
        return "B"
    return e.op


__all__ = ["ExpressionCompiler", "AGGREGATES"]
