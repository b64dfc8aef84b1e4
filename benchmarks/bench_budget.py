"""What the evaluation budget costs (issue 13, point 4), measured side by side in one run.

Generated code hands every list it iterates to engine.runtime.each and every list it scans to
engine.runtime.charge, which count items and read the CPU clock every 1,024 of them. This
benchmark evaluates the bundled credito_b2b (the eight profiles of benchmarks/workload.py, in-memory
bureau fixture, trace off), then a small nested comprehension, each twice over, in paired
interleaved rounds:

- `budget`: as the server runs it, with a budget of 1 s;
- `bare`: the same compiled policy with each/charge replaced by functions that return the list
  untouched (the code as it was before the budget existed, minus nothing else).

Only lists gone through inside a comprehension's body are counted (a single pass costs what
reading the input did), so credito_b2b has no counter at all; the second pair is a small nested
comprehension, where every inner list is counted. It prints the median per-round ratio budget/bare
(1.00: the budget costs nothing) of each pair, then how long
the issue's hostile case takes to end in EVALUATION_TIMEOUT: a nested comprehension over a
30,000-item input list (8 s per evaluation without a budget) with the default budget of 1 s.

Run from the repository root:  .venv/bin/python benchmarks/bench_budget.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import AS_OF, CONNECTORS, POLICY_PATH, PROFILES

from regua.engine import compile_file, compile_policy
from regua.engine.compiler import clear_memory_cache

HOSTILE = """policy pares kind credit

input
  valores: list of int

let pares = count(a for a in valores where any(b * 2 == a for b in valores))

rule muitos_pares
  when pares > 10
  review "PARES" "muitos pares"

default approve
on error review "ERRO" "falhou"
"""


def _passthrough(rt, items):
    return items


def paired(label: str, source: str | None, inputs_raw: list[tuple[dict, str]], connectors, rounds: int,
           per_round: int) -> None:
    """Paired interleaved rounds: the policy as compiled (counters on, budget 1 s) vs the same
    code with each/charge returning the list untouched (as before the budget existed)."""
    compiled = (lambda: compile_file(POLICY_PATH)) if source is None else (lambda: compile_policy(source))
    with_budget = compiled()
    clear_memory_cache()
    bare = compiled()  # its own namespace: patched below, the other one untouched
    assert bare is not with_budget
    bare._namespace["_each"] = bare._namespace["_charge"] = _passthrough
    clear_memory_cache()  # the patched copy must not be what a later compile finds
    counters = sum(with_budget.meta.generated_source.count(f) for f in ("_each(", "_charge("))
    inputs = [(with_budget.validate(raw), expected) for raw, expected in inputs_raw]
    for values, expected in inputs:  # both sides decide alike
        for policy in (with_budget, bare):
            outcome = policy.evaluate_validated(values, connectors=connectors, as_of=AS_OF, budget=1.0).outcome
            assert outcome == expected, (outcome, expected)

    def run(policy, budget) -> float:
        started = time.perf_counter()
        for _ in range(per_round):
            for values, _expected in inputs:
                policy.evaluate_validated(values, connectors=connectors, as_of=AS_OF, budget=budget)
        return time.perf_counter() - started

    ratios, per_eval = [], []
    for n in range(rounds):
        if n % 2:
            b, a = run(bare, None), run(with_budget, 1.0)
        else:
            a, b = run(with_budget, 1.0), run(bare, None)
        ratios.append(a / b)
        per_eval.append((a / (per_round * len(inputs)) * 1e6, b / (per_round * len(inputs)) * 1e6))
    print(f"{label} ({counters} counted lists in the generated code), {rounds} paired rounds:")
    print(f"  with budget {statistics.median(p[0] for p in per_eval):.1f} µs/evaluation, "
          f"bare {statistics.median(p[1] for p in per_eval):.1f} µs/evaluation; ratio budget/bare "
          f"(median of rounds) {statistics.median(ratios):.3f} (rounds: {min(ratios):.3f}..{max(ratios):.3f})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=400, help="evaluations of each input per round")
    args = parser.parse_args()

    paired("credito_b2b, 8 profiles, trace off", None, [(raw, expected) for _, raw, _, expected in PROFILES],
           CONNECTORS, args.rounds, args.per_round)
    paired("nested comprehension over a 40-item input list", HOSTILE,
           [({"valores": list(range(40))}, "review")], None, args.rounds, args.per_round // 4)

    hostile = compile_policy(HOSTILE)
    values = hostile.validate({"valores": list(range(30_000))})
    started, cpu = time.perf_counter(), time.thread_time()
    decision = hostile.evaluate_validated(values, as_of=AS_OF, budget=1.0)
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
    error = decision.to_dict()["reasons"][0]["error"]["code"]
    print(f"nested comprehension over 30,000 input items, budget 1 s: {decision.outcome} {error} "
          f"after {wall:.2f} s wall, {cpu:.2f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
