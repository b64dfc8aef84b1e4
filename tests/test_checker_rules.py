"""Static checks of dependencies: cycles between values (E301), rules reading other rules through
fired(...) (E203, E303, the rule order), and what monitoring policies must declare (E117, E108, E115).
"""

from __future__ import annotations

import pytest
from check_harness import D, H, at, codes, diagnostics, position_of, single

from regua.dsl.diagnostics import PolicyError
from regua.engine.compiler import check_source, compile_policy

# ---- cycles (E301) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "let a = b\nlet b = a\n",
        "let a = a + 1\n",
        "let a = b + 1\nlet b = c * 2\nlet c = a\n",
        "input\n  x: int\ntable t (first) by u\n  1 -> 1\n  else -> 2\nlet u = t\n",
        "input\n  x: int\ntable t (first) by x\n  < u -> 1\n  else -> 2\nlet u = t\n",
    ],
)
def test_cycles_are_reported_once_as_E301(body):
    found = diagnostics(H + body + D)
    assert [d.code for d in found] == ["E301"]
    assert "cycle" in found[0].message


def test_cycle_message_names_the_path():
    d = single(H + "let a = b\nlet b = a\n" + D, "E301")
    assert "a -> b -> a" in d.message or "b -> a -> b" in d.message


def test_no_cycle_through_comprehension_variables():
    # `a` as a comprehension variable is not the let `a`.
    source = H + "let a = 1\nlet b = sum(a for a in [1, 2])\n" + D
    assert codes(source) == []


def test_monitoring_policy_needs_the_new_limit_output_and_money():
    missing = "policy p kind monitoring\ndefault keep\n"
    with pytest.raises(PolicyError) as info:
        compile_policy(missing)
    assert [d.code for d in info.value.diagnostics] == ["E117"]
    assert "output new_limit" in info.value.diagnostics[0].message
    wrong = "policy p kind monitoring\ndefault keep\noutput new_limit = 3\n"
    with pytest.raises(PolicyError) as info:
        compile_policy(wrong)
    assert [d.code for d in info.value.diagnostics] == ["E117"]


def test_monitoring_policy_reads_a_fixed_input_and_its_actions():
    source = ("policy p kind monitoring\ninput\n  x: int\nrule r\n  when event == \"protest\"\n  deny \"A\" \"b\"\n"
              "default keep\noutput new_limit = limit\n")
    with pytest.raises(PolicyError) as info:
        compile_policy(source)
    codes = sorted(d.code for d in info.value.diagnostics)
    assert codes == ["E108", "E115"]
    ok = ("policy p kind monitoring\nrule r\n  when event == \"protest\"\n  block \"P\" \"protesto\"\n"
          "default keep\noutput new_limit = limit\n")
    assert compile_policy(ok).evaluate({"event": "protest"}).outcome == "block"
    assert compile_policy(ok).evaluate({"event": "inquiry"}).outcome == "keep"


# ---- rules reading other rules: fired(...) -----------------------------------------------------

R = H + "input\n  x: int\n" + D


def test_fired_outside_a_rule_condition_is_E203():
    source = R + "let f = fired(r)\nrule r\n  when x > 1\n  deny \"A\" \"a\"\n"
    assert at(single(source, "E203")) == position_of(source, "fired(r)")


def test_fired_of_an_unknown_rule_is_E101_with_a_hint():
    source = R + "rule restricao\n  when x > 1\n  deny \"A\" \"a\"\nrule r\n  when not fired(restricoa)\n  approve\n"
    d = single(source, "E101")
    assert at(d) == position_of(source, "restricoa")
    assert d.hint == "did you mean 'restricao'?"


def test_fired_of_itself_is_E303():
    source = R + "rule r\n  when x > 1 and not fired(r)\n  deny \"A\" \"a\"\n"
    assert at(single(source, "E303")) == position_of(source, "r)")


def test_two_deny_rules_reading_fired_deny_are_a_cycle():
    source = R + ("rule a\n  when x > 1 and not fired(deny)\n  deny \"A\" \"a\"\n"
                  "rule b\n  when x > 2 and not fired(deny)\n  deny \"B\" \"b\"\n")
    d = single(source, "E303")
    assert "a -> b -> a" in d.message or "b -> a -> b" in d.message


def test_rules_are_ordered_after_the_rules_they_read():
    source = R + ("rule a\n  when fired(c)\n  approve\nrule b\n  when true\n  approve\n"
                  "rule c\n  when fired(deny)\n  approve\nrule d\n  when x > 1\n  deny \"D\" \"d\"\n")
    checked = check_source(source, "f.regua")
    names = [checked.policy.rules[k].name for k in checked.rule_order]
    assert names.index("d") < names.index("c") < names.index("a")
    assert sorted(names) == ["a", "b", "c", "d"]
