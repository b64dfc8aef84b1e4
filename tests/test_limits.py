"""Long and deep policies (issue 13, items 2 and 12): they compile to flat Python and evaluate, or
they get a located error (E006, E302) — never a SyntaxError, a RecursionError or a crash.

dsl/limits.py holds the limits; engine/expressions.py emits chains flat (`a or b or c` is one
Python `or`; long arithmetic chains are folded by the runtime's `_fold`).
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_harness import ProcessServer, copy_policies

from regua.dsl import ast
from regua.dsl.diagnostics import CODES, PolicyError
from regua.dsl.formatter import format_source
from regua.dsl.limits import MAX_LAZY_CHAIN
from regua.engine.compiler import check_source, compile_policy

LOCATION = re.compile(r"^.+:\d+:\d+$")


def cnae_policy(n: int, name: str = "cnae_longo") -> str:
    terms = " or ".join(f'cnae == "{4700 + k}"' for k in range(n))
    return (f"policy {name} kind credit\n\ninput\n  cnae: text\n\nrule cnae_restrito\n  when {terms}\n"
            '  deny "CNAE" "CNAE restrito"\n\ndefault approve\n')


def chained_lets(n: int, read: str = "a{n} > 5") -> str:
    lets = "".join(f"let a{k} = a{k - 1} + 1\n" for k in range(1, n + 1))
    return (f"policy lets kind credit\n\ninput\n  x: int\n\nlet a0 = x\n{lets}\nrule r\n  when {read.format(n=n)}\n"
            f'  deny "X" "x"\n\ndefault approve\n\noutput a{n}\n')


def assert_located(error: PolicyError, codes: set[str]) -> None:
    assert {d.code for d in error.diagnostics} <= codes, error.render()
    for d in error.diagnostics:
        assert d.code in CODES and d.span.line >= 1 and d.span.column >= 1
        assert LOCATION.match(d.location()), d.location()


@pytest.mark.parametrize("n", [200, 1000])
def test_long_or_chains_of_cnae_comparisons_compile_flat_and_evaluate(n):
    source = cnae_policy(n)
    check_source(source)
    prepared = compile_policy(source, f"cnae{n}.regua")
    assert prepared.evaluate({"cnae": str(4700 + n - 1)}).outcome == "deny"
    assert prepared.evaluate({"cnae": "4700"}).outcome == "deny"
    assert prepared.evaluate({"cnae": "0111"}).outcome == "approve"
    # One flat `or`: no parenthesis nests more than a few levels in the generated code.
    condition = next(line for line in prepared.meta.generated_source.splitlines() if "== '4700'" in line)
    assert condition.count(" or ") == n - 1 and _paren_depth(condition) < 10
    assert format_source(source) == source


def _paren_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        deepest = max(deepest, depth)
    return deepest


def test_a_thousand_chained_lets_evaluate():
    prepared = compile_policy(chained_lets(1000), "lets.regua")
    decision = prepared.evaluate({"x": 2})
    assert decision.outcome == "deny" and decision.outputs["a1000"] == 1002
    assert prepared.evaluate({"x": -2000}).outcome == "approve"


def test_a_long_chain_of_lets_read_in_a_branch_is_a_located_error():
    with pytest.raises(PolicyError) as raised:
        check_source(chained_lets(1000, "x > 0 or a{n} > 5"), "lets.regua")
    assert_located(raised.value, {"E302"})
    [d] = raised.value.diagnostics
    assert d.location() == f"lets.regua:{1000 + 9}:17"  # the `a1000` of the rule
    # Just within the limit it compiles and evaluates (lazily, in the branch).
    n = MAX_LAZY_CHAIN - 1
    prepared = compile_policy(chained_lets(n, "x > 0 or a{n} > 5"), "lets.regua")
    assert prepared.evaluate({"x": 0}).outcome == "deny"


def test_deep_nesting_and_deep_records_are_located_errors():
    deep = cnae_policy(1).replace('cnae == "4700"', "(" * 100 + 'cnae == "4700"' + ")" * 100)
    assert check_source(deep)  # parentheses alone do not nest the tree
    deep = cnae_policy(1).replace('cnae == "4700"', "not " * 200 + 'cnae == "4700"')
    with pytest.raises(PolicyError) as raised:
        compile_policy(deep, "deep.regua")
    assert_located(raised.value, {"E006"})
    records = "".join(f"record R{k}\n  v: int\n  n: R{k + 1}\n\n" for k in range(300)) + "record R300\n  v: int\n"
    with pytest.raises(PolicyError) as raised:
        compile_policy(f"policy r kind credit\n\n{records}\ninput\n  r: R0\n\ndefault approve\n", "records.regua")
    assert_located(raised.value, {"E006"})


# ---- property: long chains and deep nesting never crash ------------------------------------------


def _chain(rng: random.Random, kind: str, n: int) -> tuple[str, str]:
    """(policy text, Python text) of one chain of `n` terms over the input `x`."""
    if kind == "sum":
        terms = [rng.choice(["x", str(rng.randint(0, 9))]) for _ in range(n)]
        ops = [rng.choice(["+", "-"]) for _ in range(n - 1)]
        text = terms[0] + "".join(f" {op} {t}" for op, t in zip(ops, terms[1:]))
        return text, text
    op = kind if kind in ("or", "and") else "or"
    if kind == "mixed":
        terms = [f"x > {rng.randint(-9, 9)} and x < {rng.randint(-9, 9)}" for _ in range(n)]
    else:
        terms = [f"x {rng.choice(['==', '!=', '<', '>='])} {rng.randint(-9, 9)}" for _ in range(n)]
    text = f" {op} ".join(terms)
    return text, text


def _nest(rng: random.Random, numeric: bool, depth: int, policy: str, python: str) -> tuple[str, str]:
    for _ in range(depth):
        if numeric:
            choice = rng.choice(["neg", "add", "if"])
            if choice == "neg":
                policy, python = f"-({policy})", f"-({python})"
            elif choice == "add":
                policy, python = f"1 + ({policy})", f"1 + ({python})"
            else:
                policy, python = f"if x > 0 then ({policy}) else 0", f"(({python}) if x > 0 else 0)"
        else:
            choice = rng.choice(["not", "and", "if"])
            if choice == "not":
                policy, python = f"not ({policy})", f"not ({python})"
            elif choice == "and":
                policy, python = f"x > -100 and ({policy})", f"x > -100 and ({python})"
            else:
                policy, python = f"if x > 0 then ({policy}) else false", f"(({python}) if x > 0 else False)"
    return policy, python


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["or", "and", "sum", "mixed"]), n=st.integers(1, 2000), depth=st.integers(0, 90),
       seed=st.integers(0, 2**32), x=st.integers(-10, 10))
def test_long_chains_and_deep_nesting_compile_and_evaluate_or_get_a_located_error(kind, n, depth, seed, x):
    rng = random.Random(seed)
    policy_text, python_text = _nest(rng, kind == "sum", depth, *_chain(rng, kind, n))
    if kind == "sum":
        source = (f"policy p kind credit\n\ninput\n  x: int\n\nlet v = {policy_text}\n\n"
                  "default approve\n\noutput v\n")
    else:
        source = (f"policy p kind credit\n\ninput\n  x: int\n\nrule r\n  when {policy_text}\n"
                  '  deny "X" "x"\n\ndefault approve\n')
    try:
        prepared = compile_policy(source, "p.regua")
    except PolicyError as error:
        assert_located(error, {"E006"})
        # Only nesting is ever refused, never length: a wrapping step adds one level, or two for an
        # `if … then (…) else …`, on top of the chain's own three (chain, term, comparison).
        assert 2 * depth + 3 > ast.MAX_NESTING
        return
    decision = prepared.evaluate({"x": x})
    expected = eval(python_text, {}, {"x": x})  # our own generated arithmetic
    if kind == "sum":
        assert decision.outputs["v"] == expected
    else:
        assert decision.outcome == ("deny" if expected else "approve")


# ---- the server -------------------------------------------------------------------------------


def test_the_server_starts_and_serves_with_a_long_and_a_too_deep_policy_in_its_folder(tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "cnae_longo.regua").write_text(cnae_policy(1000), encoding="utf-8")
    deep = cnae_policy(1, "cnae_fundo").replace('cnae == "4700"', "not " * 200 + 'cnae == "4700"')
    (folder / "cnae_fundo.regua").write_text(deep, encoding="utf-8")
    with ProcessServer(tmp_path, policies=folder) as server, server.client() as client:
        listing = client.get("/policies").json()
        names = [p["name"] for p in listing["policies"]]
        assert "cnae_longo" in names and "credito_b2b" in names and "cnae_fundo" not in names
        problems = {p["file"]: p["errors"] for p in listing["problems"]}
        [errors] = [e for file, e in problems.items() if file.endswith("cnae_fundo.regua")]
        assert errors[0]["code"] == "E006" and LOCATION.match(errors[0]["location"])
        response = client.post("/evaluate/cnae_longo", json={"input": {"cnae": "5699"}})
        assert response.status_code == 200 and response.json()["outcome"] == "deny"
        response = client.post("/policies", json={"source": deep})
        assert response.status_code == 422 and response.json()["errors"][0]["code"] == "E006"
        response = client.post("/policies", json={"source": cnae_policy(2000, "cnae_maior")})
        assert response.status_code in (200, 201), response.text
