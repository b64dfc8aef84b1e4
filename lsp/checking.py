"""Checking a policy being edited, rule by rule, so an edit re-checks only the rules it affects.

`regua check` runs the checker's passes over the whole policy; almost all of that time goes to the
rules (typing each condition, then the lint passes over it), and an edit changes one of them. So
the language server checks with IncrementalChecker: the checker itself, with a memory (CheckMemo,
one per open document) of what each rule gave last time: the diagnostics of its own checks, what
the lint needs of it, and the types the checker wrote on its nodes (lsp/incremental.py keeps a
rule's nodes, and those notes, for as long as its text is unchanged).

A rule's checks read the rule and, of the rest of the policy, only what its signature lists: the
symbols it names (kind and type, and for a let whether it is a connector lookup), and, when it
needs them, every declared name (a name it cannot find gets a "did you mean"), the rule names and
actions (fired()), the output names (`set`). A rule whose nodes and signature are both unchanged
keeps its results, its diagnostics moved to its lines; any other rule is checked again. So an edit
re-checks the edited rule and its dependents through the reference graph (rules that name a let
whose type changed, that read fired() of a renamed rule, ...). The passes over the whole policy
(declarations, lets and tables, outputs, tests, the rule order, reasons used twice, rules covered
by an earlier deny) run every time, from the remembered per-rule results.

tests/test_lsp_checking.py checks, over random edits, that this gives what a from-scratch check
gives: the same diagnostics and the same types on every node.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from regua.dsl import ast
from regua.dsl import types as T
from regua.dsl.checker import Checker
from regua.dsl.diagnostics import Diagnostic, Span
from regua.dsl.environment import Environment
from regua.dsl.infer import BUILTIN_NAMES
from regua.dsl.lint import Linter, _Conjuncts
from regua.dsl.rule_order import fired_references

from .incremental import Cancelled, forget_notes


@dataclass
class _Rule:
    """What checking one rule gave, and under which signature."""

    rule: ast.Rule  # held, so that its id() is not given to another node while remembered
    free: tuple[str, ...]  # the names it reads, sorted (syntax: kept even when the signature changes)
    calls_fired: bool  # whether its condition calls fired() at all (syntax)
    signature: tuple | None = None
    line: int = 0  # the rule's first line when the diagnostics below were made
    diagnostics: list[Diagnostic] = field(default_factory=list)  # of the rules pass
    lint: dict | None = None  # what the lint passes made of it (Linter hooks), once they ran


#: What the linter made of a rule that are diagnostics (located: moved with the rule).
LINT_DIAGNOSTICS = ("condition diagnostics", "settings diagnostics")


class CheckMemo:
    """Per open document: what each rule gave at the last check that ran to the end."""

    def __init__(self):
        self.rules: dict[int, _Rule] = {}  # id(rule node) -> its results
        # W607 compares each rule with the earlier denies: their _Conjuncts at the last check, and
        # that check's number (a rule's remembered comparison holds against this list only).
        self.denies: list = []
        self.generation = 0
        self.symbols: dict[str, tuple] = {}  # name -> the signature part it had (kept to compare by identity)
        self.checked = self.reused = 0


class IncrementalChecker(Checker):
    def __init__(self, policy: ast.Policy, env: Environment, memo: CheckMemo, cancelled=None):
        super().__init__(policy, env)
        self.memo = memo
        self.cancelled = cancelled
        self.entries: dict[int, _Rule] = {}
        self._shared: dict[str, object] = {}
        self._parts: dict[str, tuple] = {}  # name -> _symbol_part, made once per check
        self.generation = memo.generation + 1
        self.denies: list | None = None  # the linter's, when it ran to the end of W607

    def run(self):
        # Every item but the rules is checked from scratch: forget what the last check wrote on it.
        forget_notes([item for item in self.policy.items if not isinstance(item, ast.Rule)])
        return super().run()

    def passes(self):
        def step(run_pass):
            def run():
                if self.cancelled is not None and self.cancelled():
                    raise Cancelled()
                run_pass()
            return run
        return [(name, step(run_pass)) for name, run_pass in super().passes()] + [("remember", self.remember)]

    def remember(self) -> None:
        self.memo.rules = self.entries
        self.memo.denies = [conjuncts for _rule, conjuncts in self.denies or ()]
        self.memo.generation = self.generation

    # ---- signatures ----
    def _symbol_part(self, name: str) -> tuple:
        """What a rule reading `name` sees of it; the same object as last time when unchanged, so
        comparing signatures mostly compares identities."""
        part = self._parts.get(name)
        if part is not None:
            return part
        symbol = self.symbols.get(name)
        if symbol is None:
            part = ("builtin",) if name in BUILTIN_NAMES else ("missing",)
        else:
            lookup = symbol.kind == "let" and isinstance(symbol.node.value, ast.Call) \
                and symbol.node.value.namespace is not None
            part = (symbol.kind, type_key(symbol.type), lookup)
        previous = self.memo.symbols.get(name)
        if previous == part:
            part = previous
        self.memo.symbols[name] = self._parts[name] = part
        return part

    def _shared_part(self, what: str) -> object:
        """The parts of the policy some rules read whole, made once per check."""
        if what not in self._shared:
            if what == "names":
                value = frozenset(self.symbols)
            elif what == "rules":
                value = (tuple(self.typer.rule_names), self.typer.actions)
            else:
                value = frozenset(item.name for item in self.policy.outputs)
            previous = self.memo.symbols.get("\0" + what)
            self._shared[what] = previous if previous == value else value
            self.memo.symbols["\0" + what] = self._shared[what]
        return self._shared[what]

    def _signature(self, entry: _Rule) -> tuple:
        parts = [self.policy.kind, id(self.env)]
        missing = False
        for name in entry.free:
            part = self._symbol_part(name)
            missing |= part[0] == "missing"
            parts.append(part)
        if missing:
            parts.append(self._shared_part("names"))
        if entry.calls_fired:
            parts.append(self._shared_part("rules"))
        if entry.rule.sets:
            parts.append(self._shared_part("outputs"))
        return tuple(parts)

    # ---- the rules pass ----
    def check_rule(self, rule: ast.Rule, output_names: set[str]) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled()
        entry = self.memo.rules.get(id(rule))
        if entry is None or entry.rule is not rule:
            exprs = [rule.condition] + [a.value for a in rule.sets]
            entry = _Rule(rule, tuple(sorted(set().union(*(ast.free_names(e) for e in exprs)))),
                          any(isinstance(n, ast.Call) and n.func == "fired" and n.namespace is None
                              for n in ast.walk(rule.condition)))
        self.entries[id(rule)] = entry
        signature = self._signature(entry)
        if entry.signature == signature:
            self.memo.reused += 1
            delta = rule.span.line - entry.line
            if delta:  # the rule moved (lines added or removed above it): so do its diagnostics
                entry.line = rule.span.line
                if entry.diagnostics:
                    entry.diagnostics = [_moved(d, delta) for d in entry.diagnostics]
                for what in LINT_DIAGNOSTICS:
                    if entry.lint and entry.lint.get(what):
                        entry.lint[what] = [_moved(d, delta) for d in entry.lint[what]]
            self.bag.items += entry.diagnostics
            return
        # Checked again: until it is done, its results are no one's (a check stopped half-way
        # leaves it out of the memory, never half-written).
        self.memo.rules.pop(id(rule), None)
        self.memo.checked += 1
        forget_notes([rule])
        before = len(self.bag.items)
        super().check_rule(rule, output_names)
        entry.signature, entry.line, entry.lint = signature, rule.span.line, None
        entry.diagnostics = self.bag.items[before:]

    def order_rules(self) -> None:
        from regua.dsl.rule_order import order_rules

        def reads(rule, rules, by_name):
            entry = self.entries.get(id(rule))
            if entry is not None and not entry.calls_fired:
                return []
            return fired_references(rule, rules, by_name)

        self.rule_order = order_rules(self.policy.rules, self.typer.rule_names, self.bag, reads)

    def linter(self) -> Linter:
        return _RememberingLinter(self)


class _RememberingLinter(Linter):
    """The linter, keeping what it makes of each rule in the rule's memory entry."""

    def __init__(self, checker: IncrementalChecker):
        super().__init__(checker.policy, checker.bag, checker.severities)
        self.checker = checker
        self.entries = checker.entries
        self.previous = checker.memo.denies  # the denies of the last check, in order
        self.same = 0  # how many of the denies so far are, in order, the last check's

    def covered_rules(self) -> None:
        super().covered_rules()
        self.checker.denies = getattr(self, "denies", None)

    def covering(self, rule: ast.Rule, mine: _Conjuncts, denies: list, budget: int) -> tuple[ast.Rule | None, int]:
        """The last check's answer when it compared the same conjuncts with the same earlier denies
        from the same budget; else compared again (and remembered)."""
        previous, same = self.previous, self.same
        while same < len(denies) and same < len(previous) and denies[same][1] is previous[same]:
            same += 1
        self.same = same
        lint = self._lint(rule)
        known = lint.get("covering")
        if known is not None:
            generation, start, conjuncts, compared, found = known
            if generation == self.checker.memo.generation and start == budget and conjuncts is mine \
                    and compared <= same and (found is not None or compared == len(denies)):
                lint["covering"] = (self.checker.generation, *known[1:])  # holds for this check's list too
                return (denies[found][0] if found is not None else None), budget - compared
        earlier, left = super().covering(rule, mine, denies, budget)
        found = next(i for i, (other, _) in enumerate(denies) if other is earlier) if earlier is not None else None
        lint["covering"] = (self.checker.generation, budget, mine, budget - left, found)
        return earlier, left

    def _lint(self, rule: ast.Rule) -> dict:
        entry = self.entries[id(rule)]
        if entry.lint is None:
            entry.lint = {}
        return entry.lint

    def _diagnostics(self, rule: ast.Rule, what: str, make) -> None:
        lint = self._lint(rule)
        if what not in lint:
            before = len(self.bag.items)
            make(rule)
            lint[what] = self.bag.items[before:]
        else:
            self.bag.items += lint[what]

    def rule_condition(self, rule: ast.Rule) -> None:
        self._diagnostics(rule, LINT_DIAGNOSTICS[0], super().rule_condition)

    def rule_settings(self, rule: ast.Rule) -> None:
        self._diagnostics(rule, LINT_DIAGNOSTICS[1], super().rule_settings)

    def _value(self, rule: ast.Rule, what: str, make):
        lint = self._lint(rule)
        if what not in lint:
            lint[what] = make(rule)
        return lint[what]

    def rule_reads(self, rule: ast.Rule) -> set[str]:
        return self._value(rule, "reads", super().rule_reads)

    def rule_conjuncts(self, rule: ast.Rule) -> _Conjuncts:
        return self._value(rule, "conjuncts", super().rule_conjuncts)

    def rule_reads_fired(self, rule: ast.Rule) -> bool:
        return self._value(rule, "reads fired", super().rule_reads_fired)


def _moved(diagnostic: Diagnostic, delta: int) -> Diagnostic:
    span = diagnostic.span
    return dataclasses.replace(diagnostic, span=Span(span.line + delta, span.column,
                                                     span.end_line + delta if span.end_line else 0, span.end_column))


def type_key(typ: T.Type, inside: tuple[str, ...] = ()) -> object:
    """A type as comparable data, everything a check may read of it: a record's fields (their types,
    whether required, defaults and declared ranges), an enum's values. (RecordType compares by name
    only, so it cannot stand for itself here.)"""
    if isinstance(typ, T.RecordType):
        if typ.name in inside:  # a record holding itself: its fields are already being listed
            return ("record", typ.name)
        inner = inside + (typ.name,)
        return ("record", typ.name, tuple((f.name, type_key(f.type, inner), f.required, repr(f.default), f.bounds)
                                          for f in typ.fields))
    if isinstance(typ, T.ListType):
        return ("list", type_key(typ.element, inside))
    if isinstance(typ, T.EnumType):
        return ("enum", typ.name, typ.values)
    return ("type", str(typ), type(typ).__name__)
