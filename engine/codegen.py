"""Code generation: a checked policy becomes one deterministic Python module.

Safety: no policy text is ever pasted into code. Identifiers become positional names
(i[...] keys, slot numbers, v0..vn), literals are emitted with repr() or hoisted
into typed constants, and record keys with repr(). Hostile names or strings can
therefore only ever be data.

Shape of the module (see docs/language.md, "How policies run"):
- one function per let and per table, computing the value on first use and storing it
  in the per-evaluation slot list `s` (laziness: a connector lookup runs only when a
  rule that needs it is reached, and short-circuits like `and` skip it);
- `evaluate_fast` runs the rules in order and returns the fired rules, errors and
  outputs; `evaluate_full` does the same and also records every rule's result.
Every emitted line maps back to a policy line (`linemap`) so runtime errors name it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from regua.dsl import ast
from regua.dsl import types as T
from regua.dsl.checker import CheckedPolicy
from regua.dsl.infer import AGGREGATES
from regua.dsl.values import BusinessDays

SCALARS = (T.INT, T.DECIMAL, T.MONEY, T.PERCENT, T.BOOL, T.TEXT, T.DATE, T.DURATION, T.BUSINESS_DAYS, T.CPF, T.CNPJ)


@dataclass
class Generated:
    source: str
    linemap: list[int]  # generated line (1-based index - 1) -> policy line
    slots: list[tuple[str, str, int, object]]  # (name, kind, policy line, type) per slot
    connectors: list[str]
    functions: list[str]
    value_paths: list[tuple]  # per rule: ((label, kind, key, path), ...)
    table_rows: dict[str, tuple[int, list[int]]] = field(default_factory=dict)  # table -> (row slot, row lines)
    # Lines before this index hold everything but `evaluate_full`, which is compiled only when a
    # full trace is first asked for (it doubles the code; most deployments never need it).
    full_start: int = 0


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.linemap: list[int] = []
        self.depth = 0

    def line(self, text: str, policy_line: int = 0) -> None:
        self.lines.append("    " * self.depth + text if text else "")
        self.linemap.append(policy_line)

    def indent(self) -> None:
        self.depth += 1

    def dedent(self) -> None:
        self.depth -= 1


class CodeGenerator:
    def __init__(self, checked: CheckedPolicy):
        self.checked = checked
        self.policy = checked.policy
        self.w = _Writer()
        self.constants: dict[tuple, str] = {}
        self.constant_lines: list[str] = []
        self.connectors: list[str] = []
        self.functions: list[str] = []
        self.slots: list[tuple[str, str, int]] = []
        self.slot_of: dict[str, int] = {}
        self.table_rows: dict[str, tuple[int, list[int]]] = {}
        self.locals: list[dict[str, str]] = []
        self.local_counter = 0
        # Inside evaluate_*: lets and tables also live in locals l0..ln (cheaper than slot reads);
        # `no_walrus` > 0 where an assignment expression is not allowed or would not bind there
        # (comprehension iterables, lambdas).
        self.main = False
        self.no_walrus = 0
        for name in checked.order:
            symbol = checked.symbols[name]
            self.slot_of[name] = len(self.slots)
            self.slots.append((name, symbol.kind, symbol.node.span.line, symbol.type))
        for name in checked.order:
            if checked.symbols[name].kind == "table":
                table = checked.symbols[name].node
                self.table_rows[name] = (len(self.slots), [r.span.line for r in table.rows])
                self.slots.append((name + "#row", "row", table.span.line, None))

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
        return getattr(self, "_" + type(e).__name__)(e)

    def _Literal(self, e: ast.Literal) -> str:
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

    def _Name(self, e: ast.Name) -> str:
        if e.ref == "local":
            for scope in reversed(self.locals):
                if e.name in scope:
                    return scope[e.name]
        if e.ref == "input":
            return f"i[{e.name!r}]"
        if e.ref == "builtin":
            return "rt.today"
        k = self.slot_of[e.name]
        slot = f"(s[{k}] if s[{k}] is not _U else _L{k}(s, i, rt))"
        if not self.main:
            return slot
        if self.no_walrus:
            return f"(l{k} if l{k} is not _U else {slot})"
        return f"(l{k} if l{k} is not _U else (l{k} := {slot}))"

    def _Attribute(self, e: ast.Attribute) -> str:
        if isinstance(e.target.type, T.ListType):
            self.no_walrus += 1
            try:
                target = self.expr(e.target)
            finally:
                self.no_walrus -= 1
            return f"[_e[{e.attr!r}] for _e in {target}]"
        target = self.expr(e.target)
        return f"{target}[{e.attr!r}]"

    def _ListLit(self, e: ast.ListLit) -> str:
        return "[" + ", ".join(self.expr(i) for i in e.items) + "]"

    def _RecordLit(self, e: ast.RecordLit) -> str:
        return "{" + ", ".join(f"{k!r}: {self.expr(v)}" for k, v in e.entries) + "}"

    def _Unary(self, e: ast.Unary) -> str:
        return f"(not {self.expr(e.operand)})" if e.op == "not" else f"(-{self.expr(e.operand)})"

    def _Binary(self, e: ast.Binary) -> str:
        left, right = self.expr(e.left), self.expr(e.right)
        lt, rt_ = e.left.type, e.right.type
        if e.op == "/":
            return f"_div({left}, {right})"
        # Calendar days are plain timedelta arithmetic; business days need the calendar.
        if e.op == "+" and lt == T.DATE and rt_ == T.BUSINESS_DAYS:
            return f"_date_add({left}, {right})"
        if e.op == "+" and rt_ == T.DATE and lt == T.BUSINESS_DAYS:
            return f"_date_add({right}, {left})"
        if e.op == "-" and lt == T.DATE and rt_ == T.BUSINESS_DAYS:
            return f"_date_sub({left}, {right})"
        return f"({left} {e.op} {right})"

    def _InRange(self, e: ast.InRange) -> str:
        test = f"({self.expr(e.low)} <= {self.expr(e.value)} <= {self.expr(e.high)})"
        return f"(not {test})" if e.negated else test

    def _InList(self, e: ast.InList) -> str:
        container = e.container
        if isinstance(container, ast.ListLit) and all(isinstance(i, ast.Literal) for i in container.items):
            values = tuple(i.value if i.kind in ("int", "text", "bool") else None for i in container.items)
            code = self.const(values) if None not in values else self.expr(container)
        else:
            code = self.expr(container)
        return f"({self.expr(e.value)} {'not in' if e.negated else 'in'} {code})"

    def _IfExpr(self, e: ast.IfExpr) -> str:
        return f"({self.expr(e.then)} if {self.expr(e.condition)} else {self.expr(e.otherwise)})"

    def _Otherwise(self, e: ast.Otherwise) -> str:
        self.no_walrus += 1
        try:
            return f"_otherwise(lambda: {self.expr(e.value)}, lambda: {self.expr(e.fallback)})"
        finally:
            self.no_walrus -= 1

    def _Call(self, e: ast.Call) -> str:
        args = [self.expr(a) for a in e.args if not isinstance(a, ast.Comprehension)]
        if e.resolved == "connector":
            qualified = f"{e.namespace}.{e.func}"
            if qualified not in self.connectors:
                self.connectors.append(qualified)
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
        items = generator = self.expr(arg)
        if name == "count":
            return f"len({items})"
        return self._finish_aggregate(name, items, generator, element_type)

    def _comprehension_aggregate(self, name, arg, element_type) -> str:
        var = f"v{self.local_counter}"
        self.local_counter += 1
        source = self.expr(arg.source)
        self.locals.append({arg.var: var})
        try:
            element = self.expr(arg.element)
            condition = f" if {self.expr(arg.condition)}" if arg.condition is not None else ""
        finally:
            self.locals.pop()
        if name == "count":
            return f"len([1 for {var} in {source}{condition}])"
        items = f"[{element} for {var} in {source}{condition}]"
        generator = f"({element} for {var} in {source}{condition})"
        return self._finish_aggregate(name, items, generator, element_type)

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

    # ---- statements ----
    def generate(self) -> Generated:
        w = self.w
        checked = self.checked
        for name in checked.order:
            symbol = checked.symbols[name]
            if symbol.kind == "let":
                self._let(name, symbol.node)
            else:
                self._table(name, symbol.node)
        value_paths = [self._value_paths(rule.condition) for rule in self.policy.rules]
        self._evaluate(False, value_paths)
        full_start = len(w.lines)
        self._evaluate(True, value_paths)
        header = [
            f"# Régua generated code for policy {self.policy.name!r} version {checked.version!r}.",
            "# Do not edit: regenerated from the policy source. Lines map back via the linemap.",
        ]
        prologue = header + self.constant_lines + [f"_F{n} = _FN[{name!r}]" for n, name in enumerate(self.functions)] + [""]
        source = "\n".join(prologue + w.lines) + "\n"
        linemap = [0] * len(prologue) + w.linemap
        return Generated(source, linemap, self.slots, self.connectors, self.functions, value_paths, self.table_rows,
                         full_start + len(prologue))

    def _let(self, name: str, let: ast.Let) -> None:
        w, k, line = self.w, self.slot_of[name], let.span.line
        w.line(f"def _L{k}(s, i, rt):  # let {name}", line)
        w.indent()
        w.line(f"v = {self.expr(let.value)}", let.value.span.line)
        w.line(f"s[{k}] = v", line)
        w.line("return v", line)
        w.dedent()
        w.line("")

    def _table(self, name: str, table: ast.Table) -> None:
        w, k = self.w, self.slot_of[name]
        row_slot = self.table_rows[name][0]
        w.line(f"def _L{k}(s, i, rt):  # table {name} ({table.hit_policy})", table.span.line)
        w.indent()
        for n, column in enumerate(table.inputs):
            w.line(f"c{n} = {self.expr(column)}", column.span.line)
        rows = list(enumerate(table.rows))
        if table.hit_policy == "priority":
            rows.sort(key=lambda pair: (-pair[1].priority, pair[0]))
        policy = table.hit_policy
        if policy in ("collect", "unique"):
            w.line("out = []", table.span.line)
            w.line("hit = []", table.span.line)
        for index, row in rows:
            condition = " and ".join(self._cell(f"c{n}", cell) for n, cell in enumerate(row.cells or [])
                                     if cell.kind != "any") or "True"
            if row.is_else:
                if policy in ("collect", "unique"):
                    w.line("if not hit:", row.span.line)
                    w.indent()
                    w.line(f"out.append({self.expr(row.result)}); hit.append({index})", row.span.line)
                    w.dedent()
                    continue
                w.line(f"s[{row_slot}] = {index}", row.span.line)
                w.line(f"v = {self.expr(row.result)}", row.span.line)
                w.line(f"s[{k}] = v", row.span.line)
                w.line("return v", row.span.line)
                break
            w.line(f"if {condition}:", row.span.line)
            w.indent()
            if policy in ("collect", "unique"):
                w.line(f"out.append({self.expr(row.result)}); hit.append({index})", row.span.line)
            else:
                w.line(f"s[{row_slot}] = {index}", row.span.line)
                w.line(f"v = {self.expr(row.result)}", row.span.line)
                w.line(f"s[{k}] = v", row.span.line)
                w.line("return v", row.span.line)
            w.dedent()
        else:
            if policy == "collect":
                w.line(f"s[{row_slot}] = hit", table.span.line)
                w.line(f"s[{k}] = out", table.span.line)
                w.line("return out", table.span.line)
            elif policy == "unique":
                w.line("if len(hit) > 1:", table.span.line)
                w.line(f"    _not_unique({name!r})", table.span.line)
                w.line("if not hit:", table.span.line)
                w.line(f"    _no_match({name!r})", table.span.line)
                w.line(f"s[{row_slot}] = hit[0]", table.span.line)
                w.line(f"s[{k}] = out[0]", table.span.line)
                w.line("return out[0]", table.span.line)
            else:
                w.line(f"_no_match({name!r})", table.span.line)
        w.dedent()
        w.line("")

    def _cell(self, column: str, cell: ast.Cell) -> str:
        values = [self.expr(v) for v in cell.values]
        if cell.kind == "compare":
            return f"({column} {cell.op} {values[0]})"
        if cell.kind == "range":
            return f"({values[0]} <= {column} <= {values[1]})"
        if cell.kind == "in":
            return f"({column} in ({''.join(v + ', ' for v in values)}))"
        return f"({column} == {values[0]})"

    def _value_paths(self, condition: ast.Expr) -> tuple:
        """The scalar facts a rule's condition reads, recorded as the reason's values when it fires."""
        found: dict[str, tuple] = {}

        def chain(e):
            path = []
            while isinstance(e, ast.Attribute):
                path.append(e.attr)
                e = e.target
            return e, tuple(reversed(path))

        def visit(e, in_comprehension: bool):
            if e is None:
                return
            if isinstance(e, (ast.Name, ast.Attribute)) and not in_comprehension:
                base, path = chain(e)
                if isinstance(base, ast.Name) and base.ref in ("input", "let", "table", "builtin") \
                        and (e.type in SCALARS or isinstance(e.type, T.EnumType)):
                    label = ".".join((base.name,) + path)
                    key = base.name if base.ref != "let" and base.ref != "table" else self.slot_of[base.name]
                    found.setdefault(label, (label, base.ref, key, path, str(e.type)))
                    return
                if isinstance(e, ast.Attribute):
                    visit(e.target, in_comprehension)
                return
            if isinstance(e, ast.Comprehension):
                visit(e.source, in_comprehension)
                visit(e.condition, True)
                visit(e.element, True)
                return
            from regua.dsl.infer import children

            for child in children(e):
                visit(child, in_comprehension)

        visit(condition, False)
        return tuple(found.values())

    def _prefetch(self) -> str:
        """Lookups every evaluation needs, whose arguments are plain inputs: started together.

        Laziness is kept: a lookup is prefetched only when a rule or output that is always
        evaluated reads it outside any `and`/`or`/`if` branch, so it would be called anyway.
        """
        symbols = self.checked.symbols
        needed: set[str] = set()
        for rule in self.policy.rules:
            needed |= _unconditional(rule.condition)
        for output in self.checked.outputs:
            needed |= _unconditional(output.value) if output.value is not None else {output.name}
        frontier = list(needed)
        while frontier:
            name = frontier.pop()
            symbol = symbols.get(name)
            if symbol is None or symbol.kind == "input":
                continue
            node = symbol.node
            inner = _unconditional(node.value) if symbol.kind == "let" else \
                set().union(*(_unconditional(e) for e in node.inputs))
            for found in inner - needed:
                needed.add(found)
                frontier.append(found)
        requests = []
        for name in self.checked.order:
            symbol = symbols[name]
            value = getattr(symbol.node, "value", None)
            if name in needed and symbol.kind == "let" and isinstance(value, ast.Call) and value.namespace \
                    and all(isinstance(a, ast.Literal) or (isinstance(a, ast.Name) and a.ref == "input")
                            for a in value.args):
                index = self.connectors.index(f"{value.namespace}.{value.func}")
                args = "".join(self.expr(a) + ", " for a in value.args)
                requests.append(f"({index}, ({args}))")
        return ", ".join(requests) + "," if len(requests) >= 2 else ""

    def _evaluate(self, full: bool, value_paths: list[tuple]) -> None:
        w = self.w
        name = "evaluate_full" if full else "evaluate_fast"
        w.line(f"def {name}(i, s, rt):", 1)
        w.indent()
        self.main = True
        lets = [k for k, (_, kind, _, _) in enumerate(self.slots) if kind in ("let", "table")]
        if lets:
            w.line(" = ".join(f"l{k}" for k in lets) + " = _U", 1)
        prefetch = self._prefetch()
        if prefetch:
            w.line(f"rt.prefetch(({prefetch}))", 1)
        w.line("fired = []", 1)
        w.line("errors = []", 1)
        if full:
            w.line("trace = []", 1)
        for rule in self.policy.rules:
            r = rule.index
            line = rule.condition.span.line
            w.line(f"# rule {rule.name}", rule.span.line)
            w.line("try:", line)
            w.indent()
            self._hoist(rule.condition)
            condition = self.expr(rule.condition)
            if rule.is_step:
                condition = _step_condition(rule, condition)
            sets = "{" + ", ".join(f"{a.name!r}: {self.expr(a.value)}" for a in rule.sets) + "}" if rule.sets else "None"
            if full:
                w.line(f"r = {condition}", line)
                w.line(f"trace.append(({r}, r))", line)
                w.line("if r:", line)
            else:
                w.line(f"if {condition}:", line)
            w.indent()
            # The facts behind a fired rule are read later, on demand, from `i` and `s`.
            w.line(f"fired.append(({r}, {sets}))", rule.action.span.line)
            w.dedent()
            w.dedent()
            w.line("except Exception as e:", line)
            w.indent()
            if full:
                w.line(f"trace.append(({r}, e))", line)
            w.line(f"errors.append(({r}, e))", line)
            w.dedent()
        w.line("outputs = {}", 1)
        w.line("output_errors = []", 1)
        for output in self.checked.outputs:
            line = output.span.line
            if output.value is not None:
                code = self.expr(output.value)
            else:
                ref = ast.Name(output.name, ref=self.checked.symbols[output.name].kind)
                code = self.expr(ref)
            w.line("try:", line)
            w.line(f"    outputs[{output.name!r}] = {code}", line)
            w.line("except Exception as e:", line)
            w.line(f"    output_errors.append(({output.name!r}, e))", line)
        w.line("return fired, errors, outputs, output_errors" + (", trace" if full else ""), 1)
        w.dedent()
        w.line("")
        self.main = False

    def _hoist(self, condition) -> None:
        """Compute, as plain statements, the lets this condition always reads (no function call)."""
        order = {name: n for n, name in enumerate(self.checked.order)}
        for name in sorted((n for n in _unconditional(condition) if n in order), key=order.get):
            symbol = self.checked.symbols[name]
            if symbol.kind != "let":
                continue
            k = self.slot_of[name]
            line = symbol.node.span.line
            self.w.line(f"if l{k} is _U:", line)
            self.w.line(f"    l{k} = s[{k}] = {self.expr(symbol.node.value)}", line)


def _step_condition(rule: ast.Rule, condition: str) -> str:
    """A step is due once its day has come, until it has been carried out (`sent`); a step before
    the due date (a reminder) is pointless once the debt is overdue, so it lapses then."""
    guards = [f"i['days_late'] >= {rule.day}", f"{rule.name!r} not in i['sent']"]
    if rule.day < 0:
        guards.append("i['days_late'] <= 0")
    return " and ".join(guards) + ("" if not rule.has_when else f" and ({condition})")


def _unconditional(expr) -> set[str]:
    """Names an expression always reads, whatever the values (short-circuits excluded)."""
    if expr is None:
        return set()
    if isinstance(expr, ast.Name):
        return {expr.name} if expr.ref in ("input", "let", "table") else set()
    if isinstance(expr, ast.Binary) and expr.op in ("and", "or"):
        return _unconditional(expr.left)
    if isinstance(expr, ast.IfExpr):
        return _unconditional(expr.condition)
    if isinstance(expr, ast.Otherwise):
        return _unconditional(expr.value)
    if isinstance(expr, ast.Comprehension):
        return _unconditional(expr.source)
    from regua.dsl.infer import children

    found: set[str] = set()
    for child in children(expr):
        found |= _unconditional(child)
    return found


def generate(checked: CheckedPolicy) -> Generated:
    return CodeGenerator(checked).generate()


__all__ = ["generate", "Generated", "AGGREGATES"]
