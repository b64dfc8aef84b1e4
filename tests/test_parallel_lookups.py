"""Independent lookups that every evaluation needs run in parallel; conditional ones stay lazy."""

import threading
import time

from regua.engine import Connectors, compile_policy

POLICY = """policy dois_birôs kind credit

input
  cnpj: cnpj
  valor: money

let serasa = bureau.serasa(cnpj)
let spc = bureau.spc(cnpj)
let quod = bureau.quod(cnpj)

rule serasa_baixo
  when serasa.score.value < 300
  deny "SERASA" "baixo"

rule spc_baixo
  when spc.score.value < 300
  deny "SPC" "baixo"

rule grande
  when valor > 1_000_000 BRL and quod.score.value < 800
  review "GRANDE" "grande"

default approve
"""
DELAY = 0.3


def slow_bureaus(log):
    def make(name, score):
        def fetch(document):
            log.append((name, threading.get_ident()))
            time.sleep(DELAY)
            return {"score": {"value": score}}
        return fetch
    return Connectors({"bureau.serasa": make("serasa", 700), "bureau.spc": make("spc", 200),
                       "bureau.quod": make("quod", 900)})


def test_certain_independent_lookups_run_at_the_same_time():
    log = []
    policy = compile_policy(POLICY)
    started = time.perf_counter()
    decision = policy.evaluate({"cnpj": "11.222.333/0001-81", "valor": 10}, connectors=slow_bureaus(log))
    elapsed = time.perf_counter() - started
    assert decision.outcome == "deny" and decision.reason_codes == ["SPC"]
    assert sorted(name for name, _ in log) == ["serasa", "spc"]  # quod sits behind `and`: never called
    assert len({thread for _, thread in log}) == 2
    assert elapsed < 2 * DELAY * 0.9, elapsed  # sequential calls would take 2 x DELAY
    assert [c.connector for c in decision.connector_calls] == ["bureau.serasa", "bureau.spc"]


def test_a_lookup_behind_a_short_circuit_is_still_made_when_reached():
    log = []
    decision = compile_policy(POLICY).evaluate({"cnpj": "11.222.333/0001-81", "valor": 2_000_000},
                                               connectors=slow_bureaus(log))
    assert sorted(name for name, _ in log) == ["quod", "serasa", "spc"]
    assert decision.reason_codes == ["SPC"]  # quod 900 is not < 800


def test_a_single_certain_lookup_is_not_sent_to_another_thread():
    log = []
    body = POLICY.replace("""rule spc_baixo
  when spc.score.value < 300
  deny "SPC" "baixo"

""", "")
    compile_policy(body).evaluate({"cnpj": "11.222.333/0001-81", "valor": 10}, connectors=slow_bureaus(log))
    assert [name for name, _ in log] == ["serasa"]
    assert log[0][1] == threading.get_ident()
