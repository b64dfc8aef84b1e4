"""The evaluation budget (issue 13, point 4): a CPU budget per decision that ends in
EVALUATION_TIMEOUT through the policy's `on error`; policies whose cost grows with their input
never run on the server's event loop; a cap on input list sizes answered with a 422 naming the
field path."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from server_harness import SANDBOX_HEADERS, ThreadedServer, sandbox_settings

from regua.engine import compile_file, compile_policy

ROOT = Path(__file__).resolve().parent.parent
NESTED = """policy pares kind credit

input
  valores: list of int

let pares = count(a for a in valores where any(b * 2 == a for b in valores))

rule muitos_pares
  when pares > 10
  review "PARES" "muitos pares"

rule vazio
  when count(valores) == 0
  deny "VAZIO" "sem valores"

default approve
on error review "ERRO" "não foi possível avaliar"
"""


def error_codes(decision) -> list[str]:
    return [r["error"]["code"] for r in decision.to_dict()["reasons"] if "error" in r]


def test_a_nested_loop_over_a_long_input_ends_in_evaluation_timeout_through_on_error():
    policy = compile_policy(NESTED)
    decision = policy.evaluate({"valores": list(range(3000))}, budget=0.02)  # 9 million steps: far more
    assert decision.outcome == "review" and decision.reason_codes == ["ERRO"]
    assert error_codes(decision) == ["EVALUATION_TIMEOUT"]
    reason = decision.to_dict()["reasons"][0]
    assert reason["error"]["line"] == 6 and "budget" in reason["error"]["message"]


def test_otherwise_does_not_turn_a_spent_budget_into_a_value():
    policy = compile_policy(NESTED.replace("where any(b * 2 == a for b in valores))",
                                           "where any(b * 2 == a for b in valores)) otherwise 0"))
    decision = policy.evaluate({"valores": list(range(3000))}, budget=0.02)
    assert decision.outcome == "review" and error_codes(decision) == ["EVALUATION_TIMEOUT"]


def test_without_a_budget_or_within_it_the_policy_decides_as_written():
    policy = compile_policy(NESTED)
    assert policy.evaluate({"valores": list(range(40))}).reason_codes == ["PARES"]
    assert policy.evaluate({"valores": list(range(40))}, budget=5.0).reason_codes == ["PARES"]
    assert policy.evaluate({"valores": []}, budget=5.0).reason_codes == ["VAZIO"]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(-50, 50), max_size=60), budget=st.sampled_from([None, 30.0]))
def test_counting_lists_never_changes_a_decision(values, budget):
    policy = compile_policy(NESTED)
    evens = sum(1 for a in values if any(b * 2 == a for b in values))
    expected = "VAZIO" if not values else ("PARES" if evens > 10 else None)
    decision = policy.evaluate({"valores": values}, budget=budget)
    assert decision.reason_codes == ([expected] if expected else [])


def test_only_loops_over_the_input_make_a_policy_grow_with_its_input():
    assert compile_policy(NESTED).meta.input_loops
    # credito_b2b loops over the bureau's lists (their size is the provider's), not over its input
    for name in ("credito_b2b", "credito_b2c", "cobranca_b2b", "monitoramento_credito"):
        assert not compile_file(ROOT / "policies" / f"{name}.regua").meta.input_loops, name
    through_a_let = NESTED.replace("let pares = count(a for a in valores",
                                   "let todos = valores\nlet pares = count(a for a in todos")
    assert compile_policy(through_a_let).meta.input_loops


def test_single_passes_are_not_counted():
    """Only lists gone through inside a comprehension's body cost more than reading the input:
    the bundled policies (single passes) carry no counter at all."""
    for path in sorted((ROOT / "policies").glob("*.regua")):
        source = compile_file(path).meta.generated_source
        assert "_each(" not in source and "_charge(" not in source, path.name
    assert "_each(rt, i['valores'])" in compile_policy(NESTED).meta.generated_source


# ---------------------------------------------------------------- over HTTP

LISTS = """policy pedidos kind credit

record Pedido
  itens: list of int

input
  valores: list of int
  pedidos: list of Pedido = []

rule muitos
  when count(valores) > 3
  review "MUITOS" "muitos"

default approve
"""


def serve(tmp_path, **server):
    settings = sandbox_settings(tmp_path, server=server)
    folder = Path(settings.policies.folder)
    (folder / "pares.regua").write_text(NESTED, encoding="utf-8")
    (folder / "pedidos.regua").write_text(LISTS, encoding="utf-8")
    return ThreadedServer(settings)


def test_input_lists_over_the_cap_get_a_422_naming_the_field_path(tmp_path):
    with serve(tmp_path, max_list_items=5) as server, server.client() as client:
        ok = client.post("/evaluate/pedidos", json={"input": {"valores": [1, 2, 3, 4, 5]}})
        assert ok.status_code == 200 and ok.json()["outcome"] == "review"
        too_long = client.post("/evaluate/pedidos", json={"input": {"valores": list(range(6))}})
        assert too_long.status_code == 422
        body = too_long.json()
        assert body["code"] == "INVALID_INPUT"
        assert [(e["code"], e["location"]) for e in body["errors"]] == [("TOO_MANY_ITEMS", "input.valores")]
        nested = client.post("/evaluate/pedidos", json={"input": {"valores": [1], "pedidos": [
            {"itens": [1]}, {"itens": list(range(9))}]}})
        assert nested.status_code == 422
        assert [e["location"] for e in nested.json()["errors"]] == ["input.pedidos[1].itens"]


def test_a_spent_budget_over_http_is_the_policys_on_error(tmp_path):
    with serve(tmp_path, evaluation_budget=0.02) as server, server.client() as client:
        response = client.post("/evaluate/pares", json={"input": {"valores": list(range(3000))}, "dry_run": True})
        assert response.status_code == 200
        body = response.json()
        assert body["outcome"] == "review"
        assert [(r["code"], r["error"]["code"]) for r in body["reasons"]] == [("ERRO", "EVALUATION_TIMEOUT")]


def test_a_policy_that_loops_over_its_input_does_not_block_the_event_loop(tmp_path):
    """While a long evaluation runs (until its 1 s CPU budget is spent), /health still answers: the
    evaluation is in a worker thread. Before, it ran on the event loop and /health waited for it."""
    with serve(tmp_path, evaluation_budget=1.0) as server:
        assert not server.services.policies.active["pares"].inline
        assert server.services.policies.active["pedidos"].inline  # no loop over its input

        def heavy():
            with httpx.Client(base_url=server.url, headers=SANDBOX_HEADERS, timeout=120) as client:
                # Odd numbers: no `any` stops early, so 8,000² = 64 million steps, far past any budget.
                return client.post("/evaluate/pares", json={"input": {"valores": list(range(1, 16_000, 2))},
                                                             "dry_run": True})

        with concurrent.futures.ThreadPoolExecutor(1) as pool, httpx.Client(base_url=server.url, timeout=120) as probe:
            running = pool.submit(heavy)
            time.sleep(0.5)  # the request has arrived and is being evaluated
            answered_while_running = 0
            while not running.done():
                if probe.get("/health").status_code == 200 and not running.done():
                    answered_while_running += 1
            response = running.result()
        assert response.json()["reasons"][0]["error"]["code"] == "EVALUATION_TIMEOUT"
        assert answered_while_running >= 1
