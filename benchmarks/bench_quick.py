"""Quick performance regression gate for issue 14's targets: one PASS/MISS line per target, in
under a minute on a 2-core machine.

Run from the repository root:  make bench-quick   (or  .venv/bin/python benchmarks/bench_quick.py)
Options: --only inprocess,compile,cli,http (default: all), --margin-scale X (multiply every noise
margin), --no-http.

Every figure is a ratio measured side by side in the same run (or an absolute time where the
target is absolute), so a slower machine moves both sides alike:

- in process: credito_b2b, trace off, in-memory fixture bureau (benchmarks/workload.py) vs the
  hand-written decide() (benchmarks/handwritten.py), ≤ 2×; the same with the sandbox bureau
  plugin answering for both sides, ≤ 2.5×; a 20-row `first` table vs an if/elif chain, ≤ 3×
  (trace off) and ≤ 3.5× (trace=rules). Paired, interleaved rounds: each round times both
  contenders back to back, the ratio is the median of the per-round ratios.
- compile: cold compile of generated 1,000- and 10,000-rule policies (benchmarks/gen_policy.py):
  10k ≤ 3 s, and linear: t(10k) / t(1k) ≤ 12 (10 is exactly linear).
- CLI start-up: `regua --version` ≤ 0.15 s and `regua eval` of one policy ≤ 0.3 s with a warm
  disk cache and bytecode (medians of interleaved runs; `python -c pass` is shown beside them as
  the floor).
- HTTP: `regua serve --sandbox` vs benchmarks/bare_app.py under wrk, peak req/s: a policy without
  connectors ≥ 0.8 × bare, credito_b2b ≥ 0.6 × bare (2 alternating rounds of 2 s). Skipped
  (SKIP, not MISS) when wrk is not installed.

Noise margins. The machine is shared (2 cores, other people's test runs), so a figure a little
past its target is not a regression. A MISS fails the gate (exit status 1) only when the figure
misses the target by more than its margin; a smaller miss prints `MISS (within noise)`:

- in-process ratios: 15 %. Paired interleaved rounds cancel most drift; on this machine, with
  other test suites running, repeated runs of the same code gave per-target ratios within about
  ±10 % of each other, so 15 % keeps false alarms rare while still catching a real 2× regression.
- compile: 25 % on the 10k time and on the linearity ratio: each is one cold compile of a few
  seconds, where a neighbour's burst of work hits one side only.
- CLI: 30 %: process start-up of ~0.1 s is dominated by the page cache and by scheduling, whose
  jitter is tens of ms when the other core is busy.
- HTTP: 20 %: short wrk runs, both servers and wrk on 2 cores; the rounds alternate the order.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]
os.chdir(ROOT)

BIN = Path(sys.executable).parent
ns = time.perf_counter_ns

MARGINS = {"inprocess": 0.15, "compile": 0.25, "cli": 0.30, "http": 0.20}
RESULTS: list[tuple[str, str, str, float, float, bool]] = []  # (group, label, shown, value, target, lower_is_better)


def record(group: str, label: str, value: float, target: float, shown: str, lower_is_better: bool = True) -> None:
    RESULTS.append((group, label, shown, value, target, lower_is_better))
    print(f"    {label}: {shown}", flush=True)


# ---- in process -------------------------------------------------------------------------------

TABLE_ROWS = 20
TABLE_POLICY = "policy faixas kind credit\n\ninput\n  score: int\n\ntable faixa (first) by score\n" + "".join(
    f"  >= {1000 - 50 * (k + 1)} -> {TABLE_ROWS - k}\n" for k in range(TABLE_ROWS - 1)) + """  else -> 0

rule baixa
  when faixa <= 3
  deny "FAIXA_BAIXA" "faixa baixa"

default approve

output nivel = faixa
"""


def table_by_hand(inputs: dict):
    """The 20-row table as the if/elif chain a careful engineer writes, with the same rule."""
    score = inputs["score"]
    if score >= 950:
        faixa = 20
    elif score >= 900:
        faixa = 19
    elif score >= 850:
        faixa = 18
    elif score >= 800:
        faixa = 17
    elif score >= 750:
        faixa = 16
    elif score >= 700:
        faixa = 15
    elif score >= 650:
        faixa = 14
    elif score >= 600:
        faixa = 13
    elif score >= 550:
        faixa = 12
    elif score >= 500:
        faixa = 11
    elif score >= 450:
        faixa = 10
    elif score >= 400:
        faixa = 9
    elif score >= 350:
        faixa = 8
    elif score >= 300:
        faixa = 7
    elif score >= 250:
        faixa = 6
    elif score >= 200:
        faixa = 5
    elif score >= 150:
        faixa = 4
    elif score >= 100:
        faixa = 3
    elif score >= 50:
        faixa = 2
    else:
        faixa = 0
    if faixa <= 3:
        return "deny", ["FAIXA_BAIXA"], {"faixa": faixa}
    return "approve", [], {"faixa": faixa}


def paired(a, b, rounds: int, round_time: float) -> float:
    """Median over interleaved rounds of time(a) / time(b); each callable runs `reps` cycles."""
    def calibrate(run):
        reps = 1
        while True:
            t0 = ns()
            run(reps)
            elapsed = (ns() - t0) / 1e9
            if elapsed >= 0.02:
                return max(1, round(reps * round_time / elapsed))
            reps *= 4
    a(2), b(2)
    ra, rb = calibrate(a), calibrate(b)
    ratios = []
    for index in range(rounds):
        times = {}
        for name, run, reps in (("a", a, ra), ("b", b, rb)) if index % 2 == 0 else (("b", b, rb), ("a", a, ra)):
            gc.collect()
            t0 = ns()
            run(reps)
            times[name] = (ns() - t0) / reps
        ratios.append(times["a"] / times["b"])
    return statistics.median(ratios)


def bench_inprocess(args) -> None:
    import handwritten
    import msgspec
    from workload import AS_OF, CONNECTORS, POLICY_PATH, PROFILES, serasa

    from regua.engine import compiler
    from regua.plugins.manager import PluginSettings
    from regua.plugins.registry import Registry

    print("  in process (paired interleaved rounds; ratio = Régua / hand-written)", flush=True)
    prepared = compiler.compile_file(POLICY_PATH)
    typed = [prepared.validate(raw) for _, raw, _, _ in PROFILES]
    ev, decide = prepared.evaluate_validated, handwritten.decide
    for v in typed:  # the two sides agree before anything is timed
        d = ev(v, connectors=CONNECTORS, trace="off", as_of=AS_OF)
        outcome, codes, _ = decide(v, serasa, AS_OF)
        assert (d.outcome, d.reason_codes) == (outcome, codes), (d.outcome, d.reason_codes, outcome, codes)

    def regua(connectors):
        def run(reps):
            for _ in range(reps):
                for v in typed:
                    d = ev(v, connectors=connectors, trace="off", as_of=AS_OF)
                    d.outcome, d.reason_codes, d.outputs
        return run

    def hand(bureau):
        def run(reps):
            for _ in range(reps):
                for v in typed:
                    decide(v, bureau, AS_OF)
        return run

    ratio = paired(regua(CONNECTORS), hand(serasa), args.rounds, args.round_time)
    record("inprocess", "credito_b2b, fixture bureau, trace off ≤ 2×", ratio, 2.0, f"{ratio:.2f}×")

    # The sandbox bureau plugin answers both sides: Régua through the registry (deadline layer,
    # contract validation), the hand-written code calling the plugin's fetch directly.
    registry = Registry.load(PluginSettings(allow=["sandbox_bureau"]), sandbox_aliases=True)
    sandbox = registry.engine_connectors()
    plugin = registry.bureaus["sandbox"]

    def sandbox_fetch(document):
        return msgspec.to_builtins(plugin.fetch(document))
    for v in typed:
        d = ev(v, connectors=sandbox, trace="off", as_of=AS_OF)
        outcome, codes, _ = decide(v, sandbox_fetch, AS_OF)
        assert (d.outcome, d.reason_codes) == (outcome, codes), (d.outcome, d.reason_codes, outcome, codes)
    ratio = paired(regua(sandbox), hand(sandbox_fetch), args.rounds, args.round_time)
    record("inprocess", "credito_b2b, sandbox bureau, trace off ≤ 2.5×", ratio, 2.5, f"{ratio:.2f}×")

    table = compiler.compile_policy(TABLE_POLICY)
    scores = [table.validate({"score": s}) for s in range(0, 1000, 37)]
    for v in scores:
        d = table.evaluate_validated(v, trace="off", as_of=AS_OF)
        assert (d.outcome, d.reason_codes, d.outputs["nivel"]) == table_by_hand(v)[0:2] + (table_by_hand(v)[2]["faixa"],)
    tev = table.evaluate_validated

    def table_regua(trace):
        def run(reps):
            for _ in range(reps):
                for v in scores:
                    d = tev(v, trace=trace, as_of=AS_OF)
                    d.outcome, d.reason_codes, d.outputs
                    if trace != "off":
                        d.trace
        return run

    def table_hand(reps):
        for _ in range(reps):
            for v in scores:
                table_by_hand(v)

    ratio = paired(table_regua("off"), table_hand, args.rounds, args.round_time)
    record("inprocess", f"{TABLE_ROWS}-row first table, trace off ≤ 3×", ratio, 3.0, f"{ratio:.2f}×")
    ratio = paired(table_regua("rules"), table_hand, args.rounds, args.round_time)
    record("inprocess", f"{TABLE_ROWS}-row first table, trace=rules ≤ 3.5×", ratio, 3.5, f"{ratio:.2f}×")


# ---- compile ----------------------------------------------------------------------------------

_COMPILE_CHILD = """
import sys, time
sys.path[:0] = [{root!r}, {here!r}]
import gen_policy
from regua.engine import compiler
text = gen_policy.generate({n})
t0 = time.perf_counter()
compiler.compile_policy(text)
print(time.perf_counter() - t0)
"""


def cold_compile(n: int) -> float:
    """One cold compile in a fresh interpreter (no in-memory cache, no warm dsl caches)."""
    code = _COMPILE_CHILD.format(root=str(ROOT), here=str(HERE), n=n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_compile(args) -> None:
    print("  compile (cold, fresh interpreter each)", flush=True)
    # The best of two each: another process's burst only ever adds time to a cold compile, and one
    # 10k sample swung 2.8-3.9 s on this machine within minutes while the 1k pair held steady.
    small = min(cold_compile(1000), cold_compile(1000))
    big = min(cold_compile(10_000), cold_compile(10_000))
    record("compile", "10,000-rule policy cold compile ≤ 3 s", big, 3.0, f"{big:.2f} s (1,000 rules: {small:.2f} s)")
    record("compile", "compile linear: t(10k) / t(1k) ≤ 12", big / small, 12.0, f"{big / small:.1f}")


# ---- CLI start-up -----------------------------------------------------------------------------


def bench_cli(args) -> None:
    print("  CLI start-up (median of interleaved runs)", flush=True)
    regua = str(BIN / "regua")
    with tempfile.TemporaryDirectory(prefix="regua-quick-") as tmp:
        # Bytecode as an installed copy has it (pip compiles it at install time): the machine's
        # environment may set PYTHONDONTWRITEBYTECODE, which would time recompiling every module of
        # the command at each start (~0.25 s here) instead of Régua's start-up. The bytecode goes to
        # the temporary folder, not the checkout.
        env = {**os.environ, "XDG_CACHE_HOME": tmp, "PYTHONPYCACHEPREFIX": os.path.join(tmp, "pycache")}
        env.pop("REGUA_CACHE_DIR", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        commands = {
            "pass": [sys.executable, "-c", "pass"],
            "version": [regua, "--version"],
            "eval": [regua, "eval", "policies/credito_b2b.regua", "--input", "examples/pedido_b2b.json",
                     "--as-of", "2026-11-22"],
        }
        subprocess.run(commands["eval"], env=env, capture_output=True, check=True)  # fills the disk cache
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.cli_runs):
            for key, argv in commands.items():
                t0 = time.perf_counter()
                subprocess.run(argv, env=env, capture_output=True, check=True)
                times[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = f"python -c pass {med['pass'] * 1e3:.0f} ms"
    record("cli", "`regua --version` ≤ 0.15 s", med["version"], 0.15,
           f"{med['version'] * 1e3:.0f} ms ({med['version'] / med['pass']:.1f}× {floor})")
    record("cli", "`regua eval` one policy, warm disk cache ≤ 0.3 s", med["eval"], 0.30,
           f"{med['eval'] * 1e3:.0f} ms ({med['eval'] / med['pass']:.1f}× {floor})")


# ---- HTTP -------------------------------------------------------------------------------------


def bench_http(args) -> None:
    import bench_server
    from serverkit import PING_POLICY, Server, free_port, wrk

    if shutil.which("wrk") is None:
        for label in ("HTTP /evaluate, no-connector policy ≥ 0.8× bare", "HTTP /evaluate, credito_b2b ≥ 0.6× bare"):
            RESULTS.append(("http", label, "SKIP (wrk is not installed: apt-get install wrk)", 0, 0, False))
        print("  HTTP: SKIP, wrk is not installed", flush=True)
        return
    print("  HTTP (wrk, peak req/s, alternating rounds)", flush=True)
    b2b = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="regua-quick-http-") as tmp:
        work = Path(tmp)
        folder = work / "policies"
        shutil.copytree(ROOT / "policies", folder)
        (folder / "ping.regua").write_text(PING_POLICY, encoding="utf-8")
        bodies = {}
        for name, data in (("ping", {"valor": 10}), ("credito_b2b", b2b)):
            bodies[name] = work / f"{name}.json"
            bodies[name].write_text(json.dumps({"policy": name, "input": data}), encoding="utf-8")
        regua = bench_server.regua_server(work, folder, 1, bench_server.checker("ping", {"valor": 10}))
        port = free_port()
        bare = Server("bare", [sys.executable, str(HERE / "bare_app.py"), "--port", str(port), "--workers", "1"],
                      dict(os.environ), port, bench_server.checker("credito_b2b", {}, None), work / "bare.log")
        wrk_args = argparse.Namespace(threads=1, body=None)
        rps: dict[str, list[float]] = {"bare": [], "ping": [], "credito_b2b": []}
        cpu: dict[str, list[float]] = {"bare": [], "ping": [], "credito_b2b": []}
        with regua, bare:
            bench_server.checker("credito_b2b", b2b)(regua.port)
            runs = [("bare", bare, bodies["ping"]), ("ping", regua, bodies["ping"]),
                    ("credito_b2b", regua, bodies["credito_b2b"])]
            for index in range(args.http_rounds):
                for key, server, body in runs if index % 2 == 0 else runs[::-1]:
                    wrk_args.body = body
                    wrk(server, wrk_args, 1, 16, "post.lua")
                    result = wrk(server, wrk_args, args.http_seconds, 16, "post.lua")
                    rps[key].append(result["rps"])
                    cpu[key].append(result["cpu_us_per_request"])
    med = {k: statistics.median(v) for k, v in rps.items()}
    # The servers' CPU per request: a second view that moves less than req/s when other processes
    # take the CPUs (a server that is not given a whole core answers fewer req/s, not costlier ones).
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    for key, label, target in (("ping", "HTTP /evaluate, no-connector policy ≥ 0.8× bare", 0.8),
                               ("credito_b2b", "HTTP /evaluate, credito_b2b ≥ 0.6× bare", 0.6)):
        ratio = med[key] / med["bare"]
        record("http", label, ratio, target, f"{ratio:.2f}× ({med[key]:,.0f} vs {med['bare']:,.0f} req/s; CPU per "
               f"request {cpu_med[key]:,.0f} vs {cpu_med['bare']:,.0f} µs: {cpu_med['bare'] / cpu_med[key]:.2f}×)",
               lower_is_better=False)


# ---- main -------------------------------------------------------------------------------------


def verdicts(scale: float) -> int:
    print("\n== bench-quick targets ==")
    failed = 0
    for group, label, shown, value, target, lower in RESULTS:
        if shown.startswith("SKIP"):
            print(f"SKIP  {label:<52} {shown}")
            continue
        margin = MARGINS[group] * scale
        ok = value <= target if lower else value >= target
        within = value <= target * (1 + margin) if lower else value >= target * (1 - margin)
        status = "PASS" if ok else "MISS (within noise)" if within else "MISS"
        failed += not within
        note = f"   [within the {margin:.0%} noise margin: not a failure]" if not ok and within else ""
        print(f"{status.split()[0]}  {label:<52} {shown}{note}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="inprocess,compile,cli,http")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--margin-scale", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--round-time", type=float, default=0.12)
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--http-rounds", type=int, default=2)
    parser.add_argument("--http-seconds", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    groups = [g for g in args.only.split(",") if g and not (g == "http" and args.no_http)]
    print(f"bench-quick: {', '.join(groups)} (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")
    for group in groups:
        {"inprocess": bench_inprocess, "compile": bench_compile, "cli": bench_cli, "http": bench_http}[group](args)
    status = verdicts(args.margin_scale)
    print(f"bench-quick took {time.perf_counter() - started:.0f} s; exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
