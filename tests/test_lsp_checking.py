"""Checking rule by rule (lsp/checking.py) gives exactly what a from-scratch check gives: after any
sequence of edits, and after checks stopped half-way by a newer text, the same diagnostics and the
same types and references written on every node; and an edit re-checks only the rules it affects."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lsp_incremental import DOC_POLICIES, POLICIES, _edit

from regua.dsl import ast
from regua.dsl.checker import Checker
from regua.dsl.diagnostics import PolicyError
from regua.dsl.parser import parse
from regua.engine.builtins import default_environment
from regua.lsp.analysis import analyse
from regua.lsp.checking import CheckMemo, type_key
from regua.lsp.incremental import Cancelled, ItemCache

ENV = default_environment()
# Bundled policies, and the docs examples that use fired() (rules reading rules).
TEXTS = dict(POLICIES) | {name: text for name, text in DOC_POLICIES.items() if "fired(" in text}


def noted(node):
    """A node as plain data, with what the checker wrote on it (types as type_key sees them)."""
    if isinstance(node, ast.Node):
        return (type(node).__name__, tuple(
            (f.name, type_key(getattr(node, f.name)) if f.name == "type" and getattr(node, f.name) is not None
             else noted(getattr(node, f.name)))
            for f in dataclasses.fields(node) if f.name != "source"))
    if isinstance(node, (list, tuple)):
        return tuple(noted(x) for x in node)
    return node


def from_scratch(text: str, file: str = "f.regua"):
    try:
        policy = parse(text, file)
    except PolicyError as error:
        return list(error.diagnostics), None
    checker = Checker(policy, ENV)
    try:
        checker.run()
    except PolicyError:
        pass
    return checker.bag.sorted(), noted(policy)


def incrementally(text: str, cache: ItemCache, memo: CheckMemo, cancelled=None):
    analysis = analyse(text, "f.regua", ENV, cache, memo, cancelled)
    return analysis.diagnostics, noted(analysis.policy) if analysis.parsed else None


class After:
    """A `cancelled()` that turns true after it was asked `n` times (a newer text arriving mid-check)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self) -> bool:
        self.n -= 1
        return self.n < 0


# Edits that change what other items read, on top of test_lsp_incremental's: a let's or an input's
# type, a rule's name (fired() reads it), an output removed.
MORE_EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(
    ["insert blank", "insert comment", "delete", "duplicate", "bump number", "rename", "swap", "let to text",
     "retype input", "rename rule", "drop output", "indent"])), min_size=1, max_size=6)
OWN_EDITS = ("let to text", "retype input", "rename rule", "drop output")


def _edit_more(text: str, line: int, how: str) -> str:
    lines = text.split("\n")
    i = line % len(lines)
    if how == "let to text":  # the rules reading it see another type
        for j in list(range(i, len(lines))) + list(range(i)):
            if lines[j].startswith("let ") and "=" in lines[j]:
                lines[j] = lines[j].split("=", 1)[0] + '= "x"'
                return "\n".join(lines)
    elif how == "retype input":
        for j in list(range(i, len(lines))) + list(range(i)):
            for old, new in ((": money", ": int"), (": int", ": money"), (": date", ": text")):
                if lines[j].startswith("  ") and old in lines[j]:
                    lines[j] = lines[j].replace(old, new, 1)
                    return "\n".join(lines)
    elif how == "rename rule":
        for j in list(range(i, len(lines))) + list(range(i)):
            if lines[j].startswith(("rule ", "step ")):
                lines[j] = lines[j].replace(" ", " x", 1)
                return "\n".join(lines)
    elif how == "drop output":
        for j in list(range(i, len(lines))) + list(range(i)):
            if lines[j].startswith("output "):
                del lines[j]
                return "\n".join(lines)
    else:
        return _edit(text, line, how)
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(TEXTS)), edits=MORE_EDITS, stops=st.lists(st.integers(0, 400), max_size=6))
def test_edited_policies_check_as_a_check_from_scratch(name, edits, stops):
    cache, memo = ItemCache(), CheckMemo()
    text = TEXTS[name]
    assert incrementally(text, cache, memo) == from_scratch(text)
    for (line, how), stop in zip(edits, stops + [None] * len(edits)):
        text = _edit_more(text, line, how) if how in OWN_EDITS else _edit(text, line, how)
        if stop is not None:  # a check of this text stopped half-way by a newer one, then the newer one
            try:
                incrementally(text, cache, memo, After(stop))
            except Cancelled:
                pass
            text = _edit(text, line + 1, "bump number")
        assert incrementally(text, cache, memo) == from_scratch(text), (how, line)


def test_an_edit_checks_again_only_the_rules_it_affects():
    text = POLICIES["credito_b2b.regua"]
    cache, memo = ItemCache(), CheckMemo()
    incrementally(text, cache, memo)
    rules = len(parse(text, "f").rules)
    assert (memo.checked, memo.reused) == (rules, 0)

    def recheck(new: str) -> int:
        checked = memo.checked
        assert incrementally(new, cache, memo) == from_scratch(new)
        return memo.checked - checked

    assert recheck(text) == 0
    # A comment added at the top: every rule moves down a line, none is checked again.
    assert recheck(text.replace("\ninput", "\n# nota\ninput", 1)) == 0
    # One rule's condition: that rule.
    [rule_line] = [line for line in text.split("\n") if line.startswith("  when ") and "score <" in line][:1]
    assert recheck(text.replace(rule_line, rule_line + " and true")) == 1
    # A type changed: the rules that read a name whose type changed, directly or through lets (and
    # no other).
    text = POLICIES["credito_b2c.regua"]
    incrementally(text, cache, memo)
    rules = len(parse(text, "f").rules)
    for old, new in (("renda_mensal: money", "renda_mensal: text"), ("parcelas: int = 1", "parcelas: money = 1 BRL"),
                     ("let idade = years_between(data_nascimento, today)", 'let idade = "x"')):
        edited = text.replace(old, new)
        assert edited != text
        affected = readers_of_changed_types(text, edited)
        assert 0 < affected < rules
        recheck(text)
        assert recheck(edited) == affected, old


def readers_of_changed_types(before: str, after: str) -> int:
    """How many rules of `after` read a name whose type is not the one it has in `before`."""
    def types(text):
        checker = Checker(parse(text, "f"), ENV)
        try:
            checker.run()
        except PolicyError:
            pass
        return checker, {name: type_key(symbol.type) for name, symbol in checker.symbols.items()}

    _, old_types = types(before)
    checker, new_types = types(after)
    changed = {name for name in new_types if old_types.get(name) != new_types[name]}
    return sum(1 for rule in checker.policy.rules
               if changed & set().union(*(ast.free_names(e) for e in [rule.condition] + [a.value for a in rule.sets])))


def test_a_stopped_check_raises_cancelled_and_leaves_nothing_half_done():
    text = POLICIES["credito_b2b.regua"]
    cache, memo = ItemCache(), CheckMemo()
    with pytest.raises(Cancelled):
        incrementally(text, cache, memo, After(3))
    assert memo.rules == {}
    assert incrementally(text, cache, memo) == from_scratch(text)


def _deny_rules(rules: list[tuple[str, int]]) -> str:
    """A policy of rules on one input, so that many are covered by an earlier deny (W607)."""
    text = "policy p kind credit\ninput\n  renda: int\n  idade: int\n"
    for index, (verb, threshold) in enumerate(rules):
        text += f"rule r{index}\n  when renda > {threshold} and idade > {threshold % 7}\n"
        text += f'  {verb} "C{index}" "m"\n' if verb != "approve" else "  approve\n"
    return text + "default approve\n"


RULES = st.lists(st.tuples(st.sampled_from(["deny", "deny", "review", "approve"]), st.integers(0, 40)),
                 min_size=1, max_size=14)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=RULES, edits=st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["deny", "review", "approve"]),
                                             st.integers(0, 40), st.sampled_from(["change", "insert", "delete"])),
                                   min_size=1, max_size=6),
       budget=st.sampled_from([3, 12, 20_000]))
def test_rules_covered_by_earlier_denies_are_found_as_from_scratch(first, edits, budget):
    """W607 compares each rule with the earlier denies, within a budget of comparisons: remembered
    comparisons hold only while the earlier denies and the budget are the same."""
    from regua.dsl import lint

    saved, lint.COVERED_PAIRS = lint.COVERED_PAIRS, budget
    try:
        cache, memo = ItemCache(), CheckMemo()
        rules = list(first)
        text = _deny_rules(rules)
        assert incrementally(text, cache, memo) == from_scratch(text)
        for position, verb, threshold, how in edits:
            at = position % (len(rules) + 1)
            if how == "insert" or not rules:
                rules.insert(at, (verb, threshold))
            elif how == "change":
                rules[at % len(rules)] = (verb, threshold)
            elif len(rules) > 1:
                del rules[at % len(rules)]
            text = _deny_rules(rules)
            assert incrementally(text, cache, memo) == from_scratch(text), (how, at)
    finally:
        lint.COVERED_PAIRS = saved


def test_the_server_drops_an_analysis_a_newer_change_made_stale():
    from regua.lsp.server import ReguaLanguageServer

    server = ReguaLanguageServer(env=ENV)
    uri, text = "file:///x.regua", POLICIES["credito_b2c.regua"]
    assert server._analyse(uri, text, cancelled=lambda: True) is None
    edited = text.replace("renda_mensal: money", "renda_mensal: text")
    assert server._analyse(uri, edited, cancelled=After(40)) is None  # stopped half-way
    analysis = server._analyse(uri, edited)
    assert (analysis.diagnostics, noted(analysis.policy)) == from_scratch(edited, "/x.regua")
    assert server.document(uri).checks.checked > 0
