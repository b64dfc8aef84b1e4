"""Compiling large decision tables (issue 13, point 6): 1,000, 2,000 and 10,000 rows.

The table is a pricing grid keyed by CNAE code and a score range (`first`, two columns), the
shape of real tables that reach 10,000 rows. Each size is compiled cold in a fresh interpreter
and timed by stage: parse (Lark), check (types and the table analysis: unreachable rows,
overlaps, coverage) and build (code generation and Python's compile). Printed side by side with
the ratios t(2k)/t(1k) and t(10k)/t(1k) per stage: 2 and 10 are exactly linear.

Run from the repository root:  .venv/bin/python benchmarks/bench_tables.py [--sizes 1000,2000,10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import gc, json, resource, sys, time
from regua.dsl.checker import check
from regua.dsl.parser import parse
from regua.engine.builtins import default_environment
from regua.engine.compiler import build_artifact

n = int(sys.argv[1])
rows = "\n".join(f'  "{4700000 + k}", {k % 50}..{k % 50 + 10} -> {k % 97} BRL' for k in range(n))
source = ("policy tabela kind credit\n\ninput\n  cnae: text\n  score: int\n\n"
          f"table preco (first) by cnae, score\n{rows}\n  else -> 0 BRL\n\n"
          "rule caro\n  when preco > 50 BRL\n  review \"CARO\" \"caro\"\n\ndefault approve\n")
env = default_environment()
parse("policy warm kind credit\n\ndefault approve\n")  # the grammar is built once per process
gc.disable()  # as engine.compiler.compile_policy does while compiling
t0 = time.perf_counter(); tree = parse(source)
t1 = time.perf_counter(); checked = check(tree, env)
t2 = time.perf_counter(); build_artifact(checked, "0" * 64)
t3 = time.perf_counter()
warnings = sorted({w.code for w in checked.warnings})
print(json.dumps({"parse": t1 - t0, "check": t2 - t1, "build": t3 - t2, "warnings": warnings,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def measure(rows: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(rows)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,2000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {n: measure(n) for n in sizes}
    print(f"{'rows':>7} {'parse s':>8} {'check s':>8} {'build s':>8} {'check+build':>12} {'peak RSS':>9}  warnings")
    for n, r in results.items():
        print(f"{n:>7} {r['parse']:>8.2f} {r['check']:>8.2f} {r['build']:>8.2f} {r['check'] + r['build']:>12.2f} "
              f"{r['rss_mb']:>7} MB  {' '.join(r['warnings']) or '-'}")
    base = sizes[0]
    for n in sizes[1:]:
        ratios = {stage: results[n][stage] / results[base][stage] for stage in ("parse", "check", "build")}
        print(f"t({n})/t({base}) (linear = {n / base:g}): "
              + ", ".join(f"{stage} {ratio:.1f}" for stage, ratio in ratios.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
