"""Type inference for expressions: resolves every name and call, annotates `expr.type`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from . import ast
from . import types as T
from .diagnostics import DiagnosticBag, did_you_mean
from .environment import Environment
from .values import normalize_cnpj, normalize_cpf

AGGREGATES = ("sum", "count", "min", "max", "avg", "any", "all")
AGGREGATE_DOCS = {
    "sum": "sum(list): the total of a list of numbers, money, percents or durations",
    "count": "count(list): how many items",
    "min": "min(list) or min(a, b, ...): the smallest",
    "max": "max(list) or max(a, b, ...): the largest",
    "avg": "avg(list): the average",
    "any": "any(list of bool): whether one is true",
    "all": "all(list of bool): whether all are true",
}
# Words analysts write for a built-in (checked by E106's hint, never accepted as names).
FUNCTION_SYNONYMS = {
    "arredondar": "round", "arredonda": "round", "truncar": "floor", "piso": "floor", "teto": "ceil",
    "absoluto": "abs", "modulo": "abs", "soma": "sum", "somar": "sum", "total": "sum", "contar": "count",
    "quantidade": "count", "qtd": "count", "len": "count", "length": "count", "media": "avg", "média": "avg",
    "average": "avg", "mean": "avg", "minimo": "min", "mínimo": "min", "maximo": "max", "máximo": "max",
    "dias_entre": "days_between", "anos_entre": "years_between", "dias_uteis_entre": "business_days_between",
    "dias_úteis_entre": "business_days_between", "dia_util": "is_business_day", "dia_útil": "is_business_day",
}
# Names every policy can use without declaring them.
BUILTIN_NAMES: dict[str, T.Type] = {"today": T.DATE}

LITERAL_TYPES: dict[str, T.Type] = {
    "int": T.INT,
    "decimal": T.DECIMAL,
    "money": T.MONEY,
    "percent": T.PERCENT,
    "days": T.DURATION,
    "business_days": T.BUSINESS_DAYS,
    "text": T.TEXT,
    "date": T.DATE,
    "bool": T.BOOL,
}


@dataclass
class Symbol:
    kind: str  # input, let, table
    name: str
    type: T.Type
    node: ast.Node


class ExprTyper(ast.Visitor):
    """Types expressions against the policy's symbols. `symbol_type` gives a let's or a table's
    type on demand, which lets the checker type them in dependency order."""

    def __init__(self, env: Environment, bag: DiagnosticBag, symbols: dict[str, Symbol],
                 symbol_type: Callable[[str], T.Type]):
        self.env = env
        self.bag = bag
        self.symbols = symbols
        self.symbol_type = symbol_type
        self.scopes: list[dict[str, T.Type]] = []
        # Set by the checker while it types a rule's condition: `fired(...)` is allowed there only.
        self.rule: ast.Rule | None = None
        self.rule_names: dict[str, ast.Rule] = {}
        self.actions: tuple[str, ...] = ()
        # The rules (indexes) whose condition calls fired() / available(), seen while typing them:
        # later passes skip walking the conditions of the others (see CheckedPolicy.calls).
        self.calls: dict[str, set[int]] = {"fired": set(), "available": set()}

    # ---- entry points ----
    def infer(self, expr: ast.Expr) -> T.Type:
        result = self.visit(expr)
        expr.type = result
        return result

    def expect_bool(self, expr: ast.Expr, what: str) -> None:
        typ = self.infer(expr)
        if typ != T.BOOL and not T.is_unknown(typ):
            self.bag.error("E202", f"{what} must be true or false, but this is {typ}", expr.span)

    # ---- leaves ----
    def visit_Literal(self, expr: ast.Literal) -> T.Type:
        return LITERAL_TYPES[expr.kind]

    def visit_Name(self, expr: ast.Name) -> T.Type:
        for scope in reversed(self.scopes):
            if expr.name in scope:
                expr.ref = "local"
                return scope[expr.name]
        symbol = self.symbols.get(expr.name)
        if symbol is not None:
            expr.ref = symbol.kind
            return symbol.type if symbol.kind == "input" else self.symbol_type(expr.name)
        if expr.name in BUILTIN_NAMES:
            expr.ref = "builtin"
            return BUILTIN_NAMES[expr.name]
        candidates = list(self.symbols) + list(BUILTIN_NAMES) + [n for s in self.scopes for n in s]
        message = f"'{expr.name}' is not defined"
        if expr.name in self.env.namespaces:
            message = f"'{expr.name}' is a connector namespace; call a connector, e.g. {expr.name}.nome(documento)"
        self.bag.error("E101", message, expr.span, did_you_mean(expr.name, candidates))
        return T.UNKNOWN

    # ---- structure ----
    def visit_Attribute(self, expr: ast.Attribute) -> T.Type:
        target = self.infer(expr.target)
        if T.is_unknown(target):
            return T.UNKNOWN
        record, projected = target, False
        if isinstance(target, T.ListType) and isinstance(target.element, T.RecordType):
            record, projected = target.element, True
        if not isinstance(record, T.RecordType):
            self.bag.error("E107", f"{target} has no field '{expr.attr}'", expr.span)
            return T.UNKNOWN
        spec = record.field(expr.attr)
        if spec is None:
            names = [f.name for f in record.fields]
            self.bag.error("E107", f"{record.name} has no field '{expr.attr}'", expr.span, did_you_mean(expr.attr, names))
            return T.UNKNOWN
        return T.ListType(spec.type) if projected else spec.type

    def visit_ListLit(self, expr: ast.ListLit) -> T.Type:
        element: T.Type = T.UNKNOWN
        for item in expr.items:
            typ = self.infer(item)
            joined = T.unify(element, typ)
            if joined is None:
                self.bag.error("E201", f"a list cannot mix {element} and {typ}", item.span)
                return T.UNKNOWN
            element = joined
        return T.ListType(element)

    def visit_RecordLit(self, expr: ast.RecordLit) -> T.Type:
        fields = tuple(T.FieldSpec(name, self.infer(value)) for name, value in expr.entries)
        return T.RecordType("{" + ", ".join(f.name for f in fields) + "}", fields)

    def visit_Comprehension(self, expr: ast.Comprehension) -> T.Type:
        self.bag.error("E203", "`... for x in list` can only be the argument of an aggregate "
                       f"({', '.join(AGGREGATES)})", expr.span)
        return T.UNKNOWN

    # ---- operators ----
    def visit_Unary(self, expr: ast.Unary) -> T.Type:
        if expr.op == "not":
            self.expect_bool(expr.operand, "the operand of `not`")
            return T.BOOL
        typ = self.infer(expr.operand)
        if typ in T.SUMMABLE or typ == T.BUSINESS_DAYS or T.is_unknown(typ):
            return typ
        self.bag.error("E201", f"cannot negate {typ}", expr.span)
        return T.UNKNOWN

    def visit_Binary(self, expr: ast.Binary) -> T.Type:
        # Chains (`a or b or ...`, `a + b - c ...`) are typed left to right in a loop, not recursively.
        operands, links = ast.chain(expr)
        if expr.op in ("and", "or"):
            for operand in operands:
                self.expect_bool(operand, f"each side of `{expr.op}`")
            for link in links:
                link.type = T.BOOL
            return T.BOOL
        if expr.op in ast.CHAIN_GROUPS:
            left = self.infer(operands[0])
            for link in links:
                left = link.type = self._arithmetic(link, left, self.infer(link.right))
            return left
        left, right = self.infer(expr.left), self.infer(expr.right)
        if not T.comparable(expr.op, left, right):
            self.bag.error("E201", f"cannot compare {left} with {right} using {expr.op}", expr.span,
                           T.describe_mismatch(expr.op, left, right))
        else:
            self._check_enum_literals(left, [expr.right])
            self._check_enum_literals(right, [expr.left])
            self._normalize_document_literals(left, [expr.right])
            self._normalize_document_literals(right, [expr.left])
        return T.BOOL

    def _arithmetic(self, expr: ast.Binary, left: T.Type, right: T.Type) -> T.Type:
        result = T.arithmetic(expr.op, left, right)
        if result is None:
            verb = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}[expr.op]
            joiner = {"+": "and", "-": "from", "*": "by", "/": "by"}[expr.op]
            a, b = (right, left) if expr.op == "-" else (left, right)
            self.bag.error("E201", f"cannot {verb} {a} {joiner} {b}", expr.span,
                           T.describe_mismatch(expr.op, left, right))
            return T.UNKNOWN
        return result

    def visit_InRange(self, expr: ast.InRange) -> T.Type:
        value = self.infer(expr.value)
        for bound in (expr.low, expr.high):
            typ = self.infer(bound)
            if not T.comparable("<=", value, typ):
                self.bag.error("E201", f"cannot check whether {value} is in a range of {typ}", bound.span,
                               T.describe_mismatch("<=", value, typ))
        return T.BOOL

    def visit_InList(self, expr: ast.InList) -> T.Type:
        value = self.infer(expr.value)
        container = self.infer(expr.container)
        if T.is_unknown(container):
            return T.BOOL
        if not isinstance(container, T.ListType):
            self.bag.error("E201", f"`in` needs a list or a range (a..b), not {container}", expr.container.span)
        elif not T.comparable("==", value, container.element):
            self.bag.error("E201", f"cannot look for {value} in a {container}", expr.span)
        elif isinstance(expr.container, ast.ListLit):
            self._check_enum_literals(value, expr.container.items)
            self._normalize_document_literals(value, expr.container.items)
        return T.BOOL

    def visit_IfExpr(self, expr: ast.IfExpr) -> T.Type:
        self.expect_bool(expr.condition, "the condition of `if`")
        return self._join(expr.then, expr.otherwise, "the two branches of `if`")

    def visit_Otherwise(self, expr: ast.Otherwise) -> T.Type:
        return self._join(expr.value, expr.fallback, "the two sides of `otherwise`")

    def _join(self, a: ast.Expr, b: ast.Expr, what: str) -> T.Type:
        ta, tb = self.infer(a), self.infer(b)
        joined = T.unify(ta, tb)
        if joined is None:
            self.bag.error("E201", f"{what} must have the same type, not {ta} and {tb}", b.span,
                           T.describe_mismatch("+", ta, tb))
            return T.UNKNOWN
        return joined

    def _check_enum_literals(self, typ: T.Type, exprs: list[ast.Expr]) -> None:
        if not isinstance(typ, T.EnumType):
            return
        for e in exprs:
            if isinstance(e, ast.Literal) and e.kind == "text" and e.value not in typ.values:
                self.bag.error("E110", f"'{e.value}' is not a value of {typ.name} ({', '.join(typ.values)})",
                               e.span, did_you_mean(e.value, typ.values))

    def _normalize_document_literals(self, typ: T.Type, exprs: list[ast.Expr]) -> None:
        """Documents are compared in compact form: "529.982.247-25" in a policy means 52998224725."""
        if typ not in (T.CPF, T.CNPJ):
            return
        normalize = normalize_cpf if typ == T.CPF else normalize_cnpj
        for e in exprs:
            if isinstance(e, ast.Literal) and e.kind == "text":
                compact = normalize(e.value)
                if compact is None:
                    self.bag.error("E201", f"this text is not a valid {typ.name.upper()}", e.span)
                else:
                    e.value = compact

    # ---- calls ----
    def visit_Call(self, expr: ast.Call) -> T.Type:
        if expr.namespace is not None:
            return self._lookup(expr)
        if expr.func in AGGREGATES:
            expr.resolved = "aggregate"
            return self._aggregate(expr)
        if expr.func == "fired":
            expr.resolved = "fired"
            if self.rule is not None:
                self.calls["fired"].add(self.rule.index)
            self._fired(expr)
            return T.BOOL
        if expr.func == "available":
            expr.resolved = "available"
            if self.rule is not None:
                self.calls["available"].add(self.rule.index)
            if len(expr.args) != 1 or not _is_lookup_value(expr.args[0], self.symbols):
                self.bag.error("E203", "available() takes one connector lookup, e.g. available(relatorio)", expr.span)
            for arg in expr.args:
                self.infer(arg)
            return T.BOOL
        spec = self.env.functions.get(expr.func)
        if spec is None:
            self.bag.error("E106", f"unknown function '{expr.func}'", expr.span, self._close_functions(expr.func))
            for arg in expr.args:
                self.infer(arg)
            return T.UNKNOWN
        expr.resolved = "function"
        args = [self.infer(a) for a in expr.args]
        result = spec.signature(args)
        if isinstance(result, str):
            self.bag.error("E203", result, expr.span)
            return T.UNKNOWN
        return result

    def _fired(self, expr: ast.Call) -> None:
        """`fired(rule)`: whether that rule fired; `fired(deny)`: whether a rule with that action fired.
        Only in the `when` of a rule; the checker orders the rules (E303 for a cycle)."""
        if self.rule is None:
            self.bag.error("E203", "fired() can only be used in the `when` of a rule or step", expr.span)
            return
        if len(expr.args) != 1 or not isinstance(expr.args[0], ast.Name):
            self.bag.error("E203", "fired() takes one rule name or action, e.g. fired(restricao) or fired(deny)",
                           expr.span)
            return
        arg = expr.args[0]
        arg.type = T.BOOL
        if arg.name in self.rule_names:
            arg.ref = "rule"
            if arg.name == self.rule.name:
                self.bag.error("E303", f"rule '{arg.name}' cannot depend on whether it fired itself", arg.span)
        elif arg.name in self.actions:
            arg.ref = "action"
        else:
            self.bag.error("E101", f"'{arg.name}' is neither a rule nor an action", arg.span,
                           did_you_mean(arg.name, list(self.rule_names) + list(self.actions)))

    def _close_functions(self, name: str) -> str | None:
        """A hint naming up to three functions close to `name`, each with its signature doc."""
        docs = {n: spec.doc or f"{n}(...)" for n, spec in self.env.functions.items()}
        docs.update({n: AGGREGATE_DOCS[n] for n in AGGREGATES})
        docs["available"] = "available(lookup): whether a connector lookup answered"
        docs["fired"] = "fired(rule) or fired(deny): whether a rule, or any rule with that action, fired"
        lowered = name.lower()
        close = [FUNCTION_SYNONYMS[lowered]] if FUNCTION_SYNONYMS.get(lowered) in docs else []
        close += [c for c in difflib.get_close_matches(lowered, sorted(docs), n=3, cutoff=0.5) if c not in close]
        close = close[:3]
        # A name that contains, or is contained in, the word written (`round` for `arredondar` does
        # not match, but `floor` for `floor_value` or `between` for `days_between` does).
        for candidate in sorted(docs):
            if len(close) >= 3:
                break
            if candidate not in close and len(lowered) >= 3 and (lowered in candidate or candidate in lowered):
                close.append(candidate)
        if not close:
            return "see the built-in functions: " + ", ".join(sorted(docs))
        return "close functions: " + "; ".join(docs[c] for c in close)

    def _lookup(self, expr: ast.Call) -> T.Type:
        qualified = f"{expr.namespace}.{expr.func}"
        spec = self.env.connectors.get(qualified)
        args = [self.infer(a) for a in expr.args]
        if spec is None:
            self.bag.error("E105", f"unknown connector '{qualified}'", expr.span,
                           did_you_mean(qualified, self.env.connectors))
            return T.UNKNOWN
        expr.resolved = "connector"
        problem = spec.check_args(args)
        if problem:
            self.bag.error("E203", problem, expr.span)
        return spec.returns

    def _aggregate(self, expr: ast.Call) -> T.Type:
        name = expr.func
        if name in ("min", "max") and len(expr.args) >= 2:
            return self._scalar_extreme(expr)
        if len(expr.args) != 1:
            self.bag.error("E203", f"{name}() takes one list, e.g. {name}(faturas.valor)", expr.span)
            return T.UNKNOWN
        element = self._element_type(expr.args[0], name)
        if T.is_unknown(element):
            return T.BOOL if name in ("any", "all") else (T.INT if name == "count" else T.UNKNOWN)
        if name == "count":
            return T.INT
        if name in ("any", "all"):
            if element != T.BOOL:
                self.bag.error("E203", f"{name}() needs true/false items, e.g. {name}(f.atrasada for f in faturas)",
                               expr.span)
            return T.BOOL
        if name == "sum":
            if element not in T.SUMMABLE:
                self.bag.error("E203", f"cannot sum {element}", expr.span)
                return T.UNKNOWN
            return element
        if name == "avg":
            if element not in (T.INT, T.DECIMAL, T.MONEY, T.PERCENT):
                self.bag.error("E203", f"cannot average {element}", expr.span)
                return T.UNKNOWN
            return T.DECIMAL if element == T.INT else element
        if element not in T.ORDERED:
            self.bag.error("E203", f"{name}() needs comparable items, not {element}", expr.span)
            return T.UNKNOWN
        return element

    def _element_type(self, arg: ast.Expr, name: str) -> T.Type:
        if isinstance(arg, ast.Comprehension):
            source = self.infer(arg.source)
            if T.is_unknown(source):
                item: T.Type = T.UNKNOWN
            elif not isinstance(source, T.ListType):
                self.bag.error("E203", f"`for {arg.var} in ...` needs a list, not {source}", arg.source.span)
                item = T.UNKNOWN
            else:
                item = source.element
            self.scopes.append({arg.var: item})
            try:
                if arg.condition is not None:
                    self.expect_bool(arg.condition, "the `where` condition")
                element = self.infer(arg.element)
            finally:
                self.scopes.pop()
            arg.type = T.ListType(element)
            return element
        typ = self.infer(arg)
        if T.is_unknown(typ):
            return T.UNKNOWN
        if not isinstance(typ, T.ListType):
            self.bag.error("E203", f"{name}() needs a list, not {typ}", arg.span)
            return T.UNKNOWN
        return typ.element

    def _scalar_extreme(self, expr: ast.Call) -> T.Type:
        result: T.Type = T.UNKNOWN
        for arg in expr.args:
            typ = self.infer(arg)
            joined = T.unify(result, typ)
            if joined is None or (not T.is_unknown(joined) and joined not in T.ORDERED):
                self.bag.error("E203", f"{expr.func}() needs values of one comparable type, got {result} and {typ}",
                               arg.span)
                return T.UNKNOWN
            result = joined
        return result


def _is_lookup_value(expr: ast.Expr, symbols: dict[str, Symbol]) -> bool:
    if isinstance(expr, ast.Call) and expr.namespace is not None:
        return True
    if isinstance(expr, ast.Name) and expr.name in symbols and symbols[expr.name].kind == "let":
        value = symbols[expr.name].node.value  # type: ignore[attr-defined]
        return isinstance(value, ast.Call) and value.namespace is not None
    return False

