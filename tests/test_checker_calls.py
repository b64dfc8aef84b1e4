"""CheckedPolicy.calls: the rules whose condition calls fired() / available(), noted while typing
them, so that rule ordering, the linter, code generation and the compiler's metadata skip walking
every other condition; unknown (None) when not every rule was typed, and then they walk."""

from __future__ import annotations

import dataclasses

from policy_harness import source

from regua.dsl.checker import Checker
from regua.dsl.parser import parse
from regua.engine.builtins import default_environment
from regua.engine.codegen import generate
from regua.engine.compiler import _handles, check_source
from regua.engine.graph import build_graph

POLICY = """
input
  cnpj: cnpj
  valor: money

let relatorio = bureau.serasa(cnpj)

rule bureau_indisponivel
  when not available(relatorio)
  review "BUREAU_INDISPONIVEL" "birô indisponível"

rule confirma
  when fired(grande) and valor > 10 BRL
  review "CONFIRMA" "confirma"

rule grande
  when valor > 1_000 BRL
  deny "GRANDE" "grande"

rule qualquer
  when fired(deny)
  review "QUALQUER" "qualquer"

default approve "OK" "ok"
"""


def test_the_checker_notes_which_rules_call_fired_and_available():
    checked = check_source(source(POLICY))
    assert checked.calls == {"fired": frozenset({1, 3}), "available": frozenset({0})}
    rules = checked.policy.rules
    assert [checked.may_call(r, "fired") for r in rules] == [False, True, False, True]
    assert [checked.may_call(r, "available") for r in rules] == [True, False, False, False]
    assert checked.rule_order == [0, 2, 1, 3]  # `confirma` after `grande`, which it reads


def test_knowing_the_calls_changes_nothing_the_compiler_makes():
    checked = check_source(source(POLICY))
    unknown = dataclasses.replace(checked, calls=None)
    assert [_handles(checked, r) for r in checked.policy.rules] == \
        [_handles(unknown, r) for r in unknown.policy.rules] == [("bureau.serasa",), (), (), ()]
    assert generate(checked).source == generate(unknown).source
    graph = build_graph(checked).to_dict()
    assert graph == build_graph(unknown).to_dict()
    assert {"from": "rule:grande", "to": "rule:confirma", "kind": "fired"} in graph["edges"]


def test_calls_are_unknown_when_some_rule_was_not_typed():
    class Partial(Checker):  # as regua lsp's checker, which types only the rules that changed
        def check_rule(self, rule, output_names):
            if rule.index != 1:
                super().check_rule(rule, output_names)

    checked = Partial(parse(source(POLICY), "<p>"), default_environment()).run()
    assert checked.calls is None
    assert all(checked.may_call(r, "fired") for r in checked.policy.rules)


def test_policy_item_filters_follow_the_item_list():
    from regua.dsl import ast

    policy = parse(source(POLICY), "<p>")
    rules = policy.rules
    assert [r.name for r in rules] == ["bureau_indisponivel", "confirma", "grande", "qualquer"]
    rules.pop()  # a new list each time: the caller's to change
    assert len(policy.rules) == 4 and policy.rules is not policy.rules
    policy.items.append(ast.Rule("nova", policy.rules[0].condition, policy.rules[0].action, index=4))
    assert [r.name for r in policy.rules][-1] == "nova"
    policy.items = [item for item in policy.items if not isinstance(item, ast.Rule)]
    assert policy.rules == [] and policy.lets
