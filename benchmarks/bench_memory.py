"""Memory after many publishes, and of a 100,000-rule policy (issue 13, point 6).

1. Publishes: N versions of credito_b2b published one after the other through the server's
   PolicyService (a real SQLite store), in a fresh interpreter each, side by side:
   - `bounded`: as shipped (engine.compiler.MEMORY_CACHE_SIZE recent versions kept compiled);
   - `unbounded`: the cache made unbounded, as it was before (every version stays compiled).
   Printed: RSS before and after, and per publish.
2. Large policies (`--rules 10000,100000`): a cold compile of benchmarks/gen_policy.py's policy
   with that many rules, in a fresh interpreter: source size, time by stage and peak RSS.

Run from the repository root:  .venv/bin/python benchmarks/bench_memory.py [--publishes 600] [--rules 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PUBLISH = r"""
import gc, json, sys, tempfile
from pathlib import Path
from regua.engine import compiler
from regua.plugins.registry import Registry
from regua.plugins.manager import PluginSettings
from regua.server.policies import PolicyService
from regua.server.store import Store

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

n, bounded = int(sys.argv[1]), sys.argv[2] == "bounded"
if not bounded:
    compiler.MEMORY_CACHE_SIZE = 10 ** 9
source = Path("policies/credito_b2b.regua").read_text(encoding="utf-8")
with tempfile.TemporaryDirectory() as folder:
    store = Store(str(Path(folder) / "regua.db"))
    registry = Registry.load(PluginSettings(), sandbox_aliases=True)
    service = PolicyService(store, registry.environment(), registry.engine_connectors().is_inline)
    service.publish(source, by="bench")
    gc.collect()
    before = rss_mb()
    for k in range(n):
        service.publish(source.replace('version "2026.11.1"', f'version "2026.12.{k}"'), by="bench")
    gc.collect()
    after = rss_mb()
print(json.dumps({"before": before, "after": after}))
"""

LARGE = r"""
import gc, json, resource, subprocess, sys, time
from regua.dsl.checker import check
from regua.dsl.parser import parse
from regua.engine.builtins import default_environment
from regua.engine.compiler import build_artifact

source = subprocess.run([sys.executable, "benchmarks/gen_policy.py", sys.argv[1]], check=True,
                        capture_output=True, text=True).stdout
env = default_environment()
parse("policy warm kind credit\n\ndefault approve\n")
gc.disable()  # as engine.compiler.compile_policy does while compiling
t0 = time.perf_counter(); tree = parse(source)
t1 = time.perf_counter(); checked = check(tree, env)
t2 = time.perf_counter(); build_artifact(checked, "0" * 64)
t3 = time.perf_counter()
print(json.dumps({"bytes": len(source.encode()), "parse": t1 - t0, "check": t2 - t1, "build": t3 - t2,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--publishes", type=int, default=300)
    parser.add_argument("--rules", default="", help="comma-separated rule counts for the large-policy compile")
    args = parser.parse_args()
    if args.publishes:
        print(f"{args.publishes} publishes of credito_b2b through PolicyService:")
        for mode in ("bounded", "unbounded"):
            r = child(PUBLISH, str(args.publishes), mode)
            grown = r["after"] - r["before"]
            print(f"  {mode:>9}: RSS {r['before']:.0f} MB -> {r['after']:.0f} MB "
                  f"(+{grown:.0f} MB, {grown * 1024 / args.publishes:.0f} kB per publish)")
    for rules in [int(r) for r in args.rules.split(",") if r]:
        r = child(LARGE, str(rules))
        print(f"{rules} rules ({r['bytes'] / 1e6:.1f} MB of source): parse {r['parse']:.1f} s, check {r['check']:.1f} s, "
              f"build {r['build']:.1f} s, total {r['parse'] + r['check'] + r['build']:.1f} s, peak RSS {r['peak_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
