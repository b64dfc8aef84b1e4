"""Static checks: an ordered list of named passes over the AST that collect every error.

The result, a CheckedPolicy, is what the graph builder and code generator consume:
names resolved, types known, lets and tables in dependency order. The declarations pass
(and constant_of_type) is in checker_declarations.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ast, collection
from . import types as T
from .actionable import ActionableTarget, check_actionable
from .ast import free_names
from .checker_declarations import DeclarationsPass
from .diagnostics import Diagnostic, DiagnosticBag, PolicyError, Severity, Span, did_you_mean
from .environment import Environment
from .infer import BUILTIN_NAMES, ExprTyper, Symbol
from .kinds import KINDS, check_step_setting
from .limits import check_lazy_chains, check_record_nesting
from .lint import Linter
from .policy_tests import check_policy_tests
from .rule_order import fired_references, order_rules
from .tables import analyse_table

# Actions per policy kind with their severity: the combining rule is "most severe wins".
ACTIONS: dict[str, dict[str, int]] = {name: kind.actions for name, kind in KINDS.items()}
HIT_POLICIES = ("first", "unique", "collect", "priority")


@dataclass
class OutputSpec:
    name: str
    type: T.Type
    value: ast.Expr | None  # None: the output is the let or table of the same name
    span: Span


@dataclass
class CheckedPolicy:
    policy: ast.Policy
    environment: Environment
    enums: dict[str, T.EnumType]
    records: dict[str, T.RecordType]
    input_type: T.RecordType
    symbols: dict[str, Symbol]
    deps: dict[str, set[str]]
    order: list[str]  # lets and tables, dependencies first
    outputs: list[OutputSpec]
    default: ast.Action
    on_error: ast.Action
    severities: dict[str, int]
    warnings: list[Diagnostic] = field(default_factory=list)
    # Rule indexes in evaluation order: a rule that reads fired(other) comes after `other`.
    rule_order: list[int] = field(default_factory=list)
    # What counterfactual explanations may change (dsl/actionable.py), in declaration order.
    actionable: list[ActionableTarget] = field(default_factory=list)
    # "fired" / "available": the rules whose condition calls it (indexes), or None when not known
    # (then a pass that needs it walks the conditions).
    calls: dict[str, frozenset[int]] | None = None

    def may_call(self, rule: ast.Rule, function: str) -> bool:
        """False when the rule's condition surely does not call fired() / available()."""
        return self.calls is None or rule.index in self.calls[function]

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def version(self) -> str:
        return self.policy.version or "0"



class Checker(DeclarationsPass):
    def __init__(self, policy: ast.Policy, env: Environment):
        self.policy = policy
        self.env = env
        self.bag = DiagnosticBag(policy.file)
        self.enums: dict[str, T.EnumType] = {}
        self.records: dict[str, T.RecordType] = {}
        self.symbols: dict[str, Symbol] = {}
        self.deps: dict[str, set[str]] = {}
        self.order: list[str] = []
        self.cyclic: set[str] = set()
        self.outputs: list[OutputSpec] = []
        self.rule_order: list[int] = []
        self.typed_rules = 0  # rule conditions the typer has seen (rule_calls)
        self.actionable: list[ActionableTarget] = []
        self.kind = KINDS.get(policy.kind)
        self.severities = self.kind.actions if self.kind else {}
        self.collection = policy.kind == "collection"
        self._typing: set[str] = set()
        self._typed: set[str] = set()  # inferred once, even when the result is UNKNOWN
        self.typer = ExprTyper(env, self.bag, self.symbols, self._symbol_type)

    # The passes, in order. Each reads what the previous ones built and adds diagnostics.
    def passes(self):
        return [
            ("header", self.check_header),
            ("declarations", self.collect_declarations),
            ("dependencies", self.collect_dependencies),
            ("cycles", self.find_cycles),
            ("types", self.check_types),
            ("rules", self.check_rules),
            ("rule order", self.order_rules),
            ("tables", self.check_tables),
            ("outputs", self.check_outputs),
            ("tests", self.check_tests),
            ("actionable", self.check_actionable),
            ("limits", self.check_limits),
            ("lint", self.lint),
        ]

    def run(self) -> CheckedPolicy:
        for _name, run_pass in self.passes():
            run_pass()
        if self.bag.has_errors:
            raise PolicyError(self.bag.sorted(), self.policy.source)
        defaults = self.policy.of_type(ast.DefaultDecl) or [ast.DefaultDecl(self.kind.default)]
        errors = self.policy.of_type(ast.OnErrorDecl)
        return CheckedPolicy(
            policy=self.policy,
            environment=self.env,
            enums=self.enums,
            records=self.records,
            input_type=self.input_type,
            symbols=self.symbols,
            deps=self.deps,
            order=self.order,
            outputs=self.outputs,
            default=defaults[0].action,
            on_error=errors[0].action if errors else self.kind.on_error,
            severities=self.severities,
            warnings=[d for d in self.bag.sorted() if d.severity is Severity.WARNING],
            rule_order=self.rule_order,
            actionable=self.actionable,
            calls=self.rule_calls(),
        )

    def rule_calls(self) -> dict[str, frozenset[int]] | None:
        """Which rules call fired() / available(), when the typer saw every rule's condition (a
        checker that types only some rules, as regua lsp's, leaves it unknown)."""
        if self.typed_rules != len(self.policy.rules):
            return None
        return {name: frozenset(indexes) for name, indexes in self.typer.calls.items()}

    # ---- header ----
    def check_header(self) -> None:
        p = self.policy
        if p.kind not in KINDS:
            self.bag.error("E112", f"unknown policy kind '{p.kind}' (use {', '.join(KINDS)})", p.kind_span,
                           did_you_mean(p.kind, KINDS))
        defaults = p.of_type(ast.DefaultDecl)
        if not defaults and self.kind and self.kind.default is None:  # a régua waits when no step is due
            quiet = min(self.kind.actions, key=self.kind.actions.get)
            self.bag.error("E113", f"a policy needs a default outcome, e.g. `default {quiet}`", p.name_span)
        for extra in defaults[1:]:
            self.bag.error("E102", "the default outcome is declared twice", extra.span)
        for extra in p.of_type(ast.OnErrorDecl)[1:]:
            self.bag.error("E102", "`on error` is declared twice", extra.span)
        for extra in p.of_type(ast.Description)[1:]:
            self.bag.error("E102", "the description is declared twice", extra.span)
        for decl in defaults[:1] + p.of_type(ast.OnErrorDecl)[:1]:
            self._check_action(decl.action)

    # ---- dependencies and cycles ----
    def collect_dependencies(self) -> None:
        for name, symbol in self.symbols.items():
            if symbol.kind in ("let", "table"):
                used = set().union(*(free_names(e) for e in ast.value_exprs(symbol.node)))
                self.deps[name] = {n for n in used if n in self.symbols and self.symbols[n].kind != "input"}

    def find_cycles(self) -> None:
        """E301 for each cycle; `order` lists dependencies first (iterative: any chain length)."""
        state: dict[str, int] = {}  # 1 visiting, 2 done
        for root in self.deps:
            if root in state:
                continue
            state[root] = 1
            path, pending = [root], [iter(sorted(self.deps.get(root, ())))]
            while pending:
                dep = next(pending[-1], None)
                if dep is None:
                    pending.pop()
                    name = path.pop()
                    state[name] = 2
                    self.order.append(name)
                elif state.get(dep) == 1:
                    cycle = path[path.index(dep):] + [dep]
                    self.cyclic.update(cycle)
                    self.bag.error("E301", "cycle: " + " -> ".join(cycle), self.symbols[dep].node.span)
                elif dep not in state:
                    state[dep] = 1
                    path.append(dep)
                    pending.append(iter(sorted(self.deps.get(dep, ()))))

    def lint(self) -> None:
        if not self.bag.has_errors:  # warnings about a policy that does not compile would be noise
            self.linter().run(self.kind is not None and self.kind.fixed_input is None)

    def linter(self) -> Linter:
        calls = self.rule_calls()
        return Linter(self.policy, self.bag, self.severities, None if calls is None else calls["fired"])

    def check_actionable(self) -> None:
        self.actionable = check_actionable(self.policy, self.input_type, self.env.connectors, self.bag,
                                           self.constant_of_type)

    def check_limits(self) -> None:
        check_record_nesting(self.records, self.policy.of_type(ast.RecordDecl), self.bag)
        check_lazy_chains(self.order, self.deps, self.symbols, self.policy, self.bag)

    # ---- types ----
    def _symbol_type(self, name: str) -> T.Type:
        symbol = self.symbols[name]
        if name in self.cyclic or name in self._typing:
            return T.UNKNOWN
        if name not in self._typed and symbol.kind in ("let", "table"):
            self._typed.add(name)
            self._typing.add(name)
            try:
                if symbol.kind == "let":
                    symbol.type = self.typer.infer(symbol.node.value)  # type: ignore[attr-defined]
                else:
                    symbol.type = self._table_type(symbol.node)  # type: ignore[arg-type]
            finally:
                self._typing.discard(name)
        return symbol.type

    def check_types(self) -> None:
        for name in self.order:
            self._symbol_type(name)

    def _table_type(self, table: ast.Table) -> T.Type:
        if table.hit_policy not in HIT_POLICIES:
            self.bag.error("E109", f"unknown hit policy '{table.hit_policy}' (use {', '.join(HIT_POLICIES)})",
                           table.hit_policy_span, did_you_mean(table.hit_policy, HIT_POLICIES))
        columns = [self.typer.infer(e) for e in table.inputs]
        result: T.Type = T.UNKNOWN
        seen_else = False
        for row in table.rows:
            if seen_else:
                self.bag.error("E401", "rows after `else` can never match", row.span)
            seen_else = seen_else or row.is_else
            if row.priority and table.hit_policy != "priority":
                self.bag.error("E203", "`priority` only applies to tables with the (priority) hit policy", row.span)
            if not row.is_else:
                if len(row.cells) != len(columns):
                    self.bag.error("E403", f"this row has {len(row.cells)} cell(s) but the table reads "
                                   f"{len(columns)} value(s)", row.span)
                for cell, column in zip(row.cells, columns):
                    self._check_cell(cell, column)
            typ = self.typer.infer(row.result)
            joined = T.unify(result, typ)
            if joined is None:
                self.bag.error("E201", f"every row of table '{table.name}' must give the same type: {result} vs {typ}",
                               row.result.span, T.describe_mismatch("+", result, typ))
            else:
                result = joined
        return T.ListType(result) if table.hit_policy == "collect" else result

    def _check_cell(self, cell: ast.Cell, column: T.Type) -> None:
        op = cell.op or "<="
        if cell.kind == "any":
            return
        for value in cell.values:
            if self._bare_word(value, column):
                continue
            typ = self.typer.infer(value)
            check_op = "==" if cell.kind in ("equals", "in") else op
            if not T.comparable(check_op, column, typ):
                self.bag.error("E205", f"this cell compares {column} with {typ}", value.span,
                               T.describe_mismatch(check_op, column, typ))
            elif isinstance(column, T.EnumType) and isinstance(value, ast.Literal) and value.value not in column.values:
                self.bag.error("E110", f"'{value.value}' is not a value of {column.name}", value.span,
                               did_you_mean(str(value.value), column.values))

    def _bare_word(self, value: ast.Expr, column: T.Type) -> bool:
        """E101 with a quoting hint for a bare word in a cell of a text or enum column (`varejo` for
        `"varejo"`); True when reported."""
        if not isinstance(value, ast.Name) or value.name in self.symbols or value.name in BUILTIN_NAMES:
            return False
        if isinstance(column, T.EnumType):
            if value.name in column.values:
                hint = f'write "{value.name}" (quoted): it is a value of {column.name}'
            else:
                close = did_you_mean(value.name, column.values)
                hint = f"values of {column.name} are quoted texts: " + ", ".join(f'"{v}"' for v in column.values) \
                    + (f"; {close}" if close else "")
        elif column == T.TEXT:
            hint = f'write "{value.name}" (quoted) to compare with the text'
        else:
            return False
        self.bag.error("E101", f"'{value.name}' is not defined", value.span, hint)
        value.type = T.UNKNOWN
        return True

    # ---- rules ----
    def _check_action(self, action: ast.Action) -> None:
        if not self.severities:
            return  # the kind itself is already reported (E112)
        if action.verb not in self.severities:
            known = list(self.severities)
            self.bag.error("E108", f"unknown action '{action.verb}' for a {self.policy.kind} policy"
                           + (f" (use {', '.join(known)})" if known else ""), action.span, did_you_mean(action.verb, known))
        elif self.collection:
            if action.verb in collection.CONTACT_ACTIONS and not action.code:
                self.bag.error("E206", f"`{action.verb}` writes to the debtor and needs a template, e.g. "
                               f"{action.verb} \"lembrete_vencimento\"", action.span)
        elif action.verb not in self.kind.quiet and (not action.code or not action.message):
            self.bag.error("E206", f"`{action.verb}` needs a reason code and a message, e.g. "
                           f"{action.verb} \"CODIGO\" \"Mensagem para o cliente\"", action.span)

    def check_rules(self) -> None:
        output_names = {item.name for item in self.policy.outputs}
        self.typer.rule_names = {}
        for rule in self.policy.rules:
            self.typer.rule_names.setdefault(rule.name, rule)
        self.typer.actions = tuple(self.severities)
        for rule in self.policy.rules:
            self.check_rule(rule, output_names)

    def check_rule(self, rule: ast.Rule, output_names: set[str]) -> None:
        """One rule: its condition, action and settings (what it reads of the rest of the policy: the
        symbols it names, the rule names and actions fired() reads, the output names)."""
        self.typer.rule = rule
        try:
            self.typer.expect_bool(rule.condition, f"the condition of rule '{rule.name}'")
        finally:
            self.typer.rule = None
        self.typed_rules += 1
        self._check_action(rule.action)
        for assignment in rule.sets:
            typ = self.typer.infer(assignment.value)
            if rule.is_step:
                check_step_setting(self.bag, assignment, typ)
            elif assignment.name not in output_names:
                self.bag.error("E111", f"'{assignment.name}' is not a declared output", assignment.span,
                               did_you_mean(assignment.name, output_names))

    def order_rules(self) -> None:
        calls = self.rule_calls()
        if calls is None:
            self.rule_order = order_rules(self.policy.rules, self.typer.rule_names, self.bag)
            return
        readers = calls["fired"]

        def reads(rule, rules, by_name):  # only the rules seen calling fired() are walked
            return fired_references(rule, rules, by_name) if rule.index in readers else []

        self.rule_order = order_rules(self.policy.rules, self.typer.rule_names, self.bag, reads)

    def check_tables(self) -> None:
        for table in self.policy.tables:
            if table.name not in self.symbols or self.symbols[table.name].node is not table:
                continue
            columns = [e.type for e in table.inputs]
            labels = [_label(e) for e in table.inputs]
            if table.hit_policy in HIT_POLICIES and all(len(r.cells or columns) == len(columns) for r in table.rows):
                analyse_table(table, columns, self.bag, labels)

    # ---- outputs ----
    def check_outputs(self) -> None:
        seen: set[str] = set()
        for item in self.policy.outputs:
            if item.name in seen:
                self.bag.error("E102", f"output '{item.name}' is declared twice", item.span)
                continue
            seen.add(item.name)
            if item.value is None:
                symbol = self.symbols.get(item.name)
                if symbol is None:
                    self.bag.error("E101", f"output '{item.name}' names nothing; give it a value "
                                   f"(output {item.name} = ...) or define it", item.span,
                                   did_you_mean(item.name, self.symbols))
                    continue
                typ = symbol.type if symbol.kind == "input" else self._symbol_type(item.name)
            else:
                if item.name in self.symbols:
                    self.bag.error("E102", f"output '{item.name}' hides the {self.symbols[item.name].kind} "
                                   "of the same name", item.span)
                typ = self.typer.infer(item.value)
            self.outputs.append(OutputSpec(item.name, typ, item.value, item.span))
        types = {o.name: o.type for o in self.outputs}
        if self.kind and self.kind.check_outputs:
            self.kind.check_outputs(self.bag, types, self.policy)
        for rule in self.policy.rules:
            if rule.is_step:
                continue
            for assignment in rule.sets:
                expected = types.get(assignment.name)
                if expected is not None and T.unify(expected, assignment.value.type) is None:
                    self.bag.error("E201", f"output '{assignment.name}' is {expected}, but this sets "
                                   f"{assignment.value.type}", assignment.value.span)

    # ---- tests ----
    def check_tests(self) -> None:
        check_policy_tests(self)


def _label(expr: ast.Expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.name
    if isinstance(expr, ast.Attribute):
        return f"{_label(expr.target)}.{expr.attr}"
    return "the value"


def check(policy: ast.Policy, env: Environment) -> CheckedPolicy:
    """Run every pass; raise PolicyError with all errors (sorted) if any pass found one."""
    return Checker(policy, env).run()
