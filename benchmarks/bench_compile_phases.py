"""Where a cold compile of a large policy goes: the parse (Lark's LALR parser building the syntax
tree), the checker, code generation with Python's compile(), for generated policies of 1,000 and 10,000
rules (benchmarks/gen_policy.py), each in a fresh interpreter. Issue 14's target is ≤ 3 s for
10,000 rules, linear; this script says which phase to work on and how each one grows with 10× the
rules (1.0× per rule = linear).

Run from the repository root:  .venv/bin/python benchmarks/bench_compile_phases.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_CHILD = """
import gc, json, sys, time
sys.path[:0] = [{root!r}, {here!r}]
import gen_policy
from regua.dsl import checker, parser
from regua.engine import compiler
from regua.engine.builtins import default_environment

text = gen_policy.generate({n}) + "\\n"
env = default_environment()
parser._lark()  # the grammar's tables: built once per process, not part of a policy's compile
gc.disable()  # as compile_policy does
clock = time.process_time
t0 = clock()
policy = parser.parse(text, "<bench>")  # Lark's LALR parse, building the syntax tree as it goes
t1 = clock()
checked = checker.check(policy, env)
t2 = clock()
compiler.build_artifact(checked, "0" * 64)
t3 = clock()
print(json.dumps({{"parse": t1 - t0, "check": t2 - t1, "codegen + compile": t3 - t2}}))
"""


def phases(n: int) -> dict[str, float]:
    code = _CHILD.format(root=str(ROOT), here=str(HERE), n=n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {n: phases(n) for n in sizes}
    names = list(results[sizes[0]])
    print("cold compile by phase, CPU seconds (fresh interpreter each; grammar tables built beforehand)")
    print(f"{'rules':>8} " + " ".join(f"{name:>18}" for name in names) + f" {'total':>8}")
    for n, r in results.items():
        total = sum(r.values())
        print(f"{n:>8,} " + " ".join(f"{r[name]:>8.2f} ({r[name] / total:4.0%})" + " " * 2 for name in names)
              + f" {total:>8.2f}")
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        scale = large / small
        print(f"growth per rule, {large:,} vs {small:,} (1.0× = linear): " + ", ".join(
            f"{name} {results[large][name] / results[small][name] / scale:.2f}×" for name in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
