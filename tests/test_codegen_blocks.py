"""evaluate_fast's rule blocks have no `try` per rule: a failing rule is recorded and the block goes
on from the next rule in its evaluate_full twin (engine/blocks.py), with the decision per-rule
`try` blocks gave."""

from __future__ import annotations

import re

import pytest
from policy_harness import AS_OF, error_reasons, line_of, policy

from regua.engine import codegen
from regua.engine.compiler import clear_memory_cache

RULES = 3 * codegen.RULE_BLOCK + 5


def _body() -> str:
    """Every rule fires when `a` > 0; the rules at positions 130 and 140 (block 1) divide by `b`,
    and every rule from 300 on reads a let that divides by `c`."""
    body = ["input\n  a: int\n  b: int = 1\n  c: int = 1\n\nlet per_c = a / c\n"]
    for n in range(RULES):
        if n in (130, 140):
            condition = "a / b > 0"
        elif n >= 300:
            condition = "per_c > 0"
        else:
            condition = f"a > {-n}"
        body.append(f"rule r{n}\n  when {condition}\n  review \"R{n}\" \"regra {n}\"\n")
    body.append("default approve\n")
    return "\n".join(body)


BODY = _body()


def _fast_block_sources(prepared) -> list[str]:
    return re.findall(r"^def _B\d+\(.*?(?=^def )", prepared.meta.generated_source, re.S | re.M)


def test_fast_blocks_have_no_try_per_rule():
    prepared = policy(BODY)
    blocks = _fast_block_sources(prepared)
    assert len(blocks) == 4
    assert not any("try:" in block for block in blocks)
    # A rule without `set` appends its shared (index, None) pair.
    assert "fired.append(_FIRED[131])" in blocks[1]
    assert prepared._namespace["_FIRED"][131] == (131, None)
    assert "def _T1(i, s, rt, fired, errors, trace, start=0):" in prepared.meta.generated_source


def test_a_failing_rule_is_recorded_and_its_block_goes_on_from_the_next_rule():
    prepared = policy(BODY)
    decision = prepared.evaluate({"a": 5, "b": 0}, as_of=AS_OF)
    failed = error_reasons(decision)
    assert [r.rule for r in failed] == ["r130", "r140"]
    # Each failure names its own rule's condition line (the line of `when`, after `rule rN`).
    assert [(r.error["code"], r.error["line"]) for r in failed] == [
        ("DIVISION_BY_ZERO", line_of(BODY, f"rule {name}") + 1) for name in ("r130", "r140")]
    fired = {r.rule for r in decision.reasons if not r.error}
    assert fired == {f"r{n}" for n in range(RULES)} - {"r130", "r140"}
    # Only the failing block's careful twin was compiled.
    namespace = prepared._namespace
    assert "_T1" in namespace and "_T0" not in namespace and "_T2" not in namespace


@pytest.mark.parametrize("data", [{"a": 5, "b": 0}, {"a": 5, "c": 0}, {"a": 5, "b": 0, "c": 0}, {"a": -500},
                                  {"a": 5}])
@pytest.mark.parametrize("trace", ["off", "full"])
def test_blocks_decide_as_the_inline_code(monkeypatch, data, trace):
    split = policy(BODY)
    clear_memory_cache()
    monkeypatch.setattr(codegen, "RULE_BLOCK", 10_000)
    inline = policy(BODY)
    clear_memory_cache()
    assert "def _B0(" not in inline.meta.generated_source
    for _ in range(2):  # the second time, the careful twins are compiled already
        a = split.evaluate(data, trace=trace, as_of=AS_OF).to_dict()
        b = inline.evaluate(data, trace=trace, as_of=AS_OF).to_dict()
        assert a == b


def test_the_failure_of_a_let_hoisted_in_a_block_is_each_readers():
    decision = policy(BODY).evaluate({"a": 5, "c": 0}, as_of=AS_OF)
    assert [r.rule for r in error_reasons(decision)] == [f"r{n}" for n in range(300, RULES)]


def test_a_block_policy_from_the_disk_cache_resumes_its_blocks_too(tmp_path):
    from policy_harness import source

    from regua.engine.compiler import compile_policy

    first = compile_policy(source(BODY), cache_dir=tmp_path)
    expected = first.evaluate({"a": 5, "b": 0}, as_of=AS_OF).to_dict()
    clear_memory_cache()
    cached = compile_policy(source(BODY), cache_dir=tmp_path)
    assert cached is not first and cached.meta.blocks == first.meta.blocks
    assert cached.evaluate({"a": 5, "b": 0}, as_of=AS_OF).to_dict() == expected


def test_the_main_code_is_the_generated_source_up_to_evaluate_full():
    from regua.engine.compiler import _first_lines

    text = "a\nbb\n\nccc\nd\n"
    assert [_first_lines(text, k) for k in range(1, 6)] == ["a\n", "a\nbb\n", "a\nbb\n\n", "a\nbb\n\nccc\n", text]
    prepared = policy(BODY)
    main = _first_lines(prepared.meta.generated_source, prepared.meta.full_start)
    assert main.endswith("\n") and "def evaluate_fast(" in main and "def _T0(" not in main
    assert prepared.meta.generated_source.split("\n")[prepared.meta.full_start].startswith("def _T0(")
