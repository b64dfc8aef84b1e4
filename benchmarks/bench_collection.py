"""Régua benchmark: planning (dry run) of the collection cadence on 100,000 and 1,000,000 open receivables.

Target (issue): a dry-run plan of 1,000,000 open receivables in at most 60 s and 2 GB on a 2-core
machine, with a cost that grows linearly (µs per receivable at 1M ≈ at 100k).

Run from the repository root:  make bench   (or  .venv/bin/python benchmarks/bench_collection.py)
Options: --sizes 100000,1000000 (default), --rounds N (default 2), --as-of 2026-11-23, --keep,
--no-profile, --profile-size 50000, --history, --out PATH.
See benchmarks/README.md for what is measured and how to read the table.

Every portfolio is generated first (gen_portfolio.py, timed apart), in a temporary folder. Then
each plan runs in a fresh subprocess, so its memory is its own: the child reports its peak RSS
(VmHWM, the figure used). The parent also reads the child's rusage (os.wait4), recorded in the JSON:
Linux counts in it the forked copy of the parent before exec, so it is never below the parent's RSS.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import io
import json
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

AS_OF = dt.date(2026, 11, 23)
POLICIES = ("cobranca_b2c", "cobranca_b2b")
TARGET_SIZE = 1_000_000
TARGET_SECONDS = 60.0  # at 1M
TARGET_MB = 2048.0  # peak RSS at 1M
TARGET_FIRST_RUN = 60.0  # seconds: the first real run at 1M, outbox written (issue 14)
TARGET_LINEAR = 1.25  # µs per receivable, largest size ÷ smallest size (1.0 = perfectly linear)


# ---- the child: one dry-run plan, measured from inside -----------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the planning helper, once joined)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_real(db: str, as_of: dt.date) -> int:
    """A real run (not dry): settle, plan and write the outbox, the history and the work queue.
    --history runs it as of the day before (so the outbox holds yesterday's plan); the first-run
    measure runs it as of the day itself, after the dry rounds."""
    from regua.engine import compiler
    from regua.portfolio.collection.runner import Runner
    from regua.portfolio.collection.settings import CollectionSettings

    policies = {name: compiler.compile_file(ROOT / "policies" / f"{name}.regua") for name in POLICIES}
    runner = Runner(db, policies, None, CollectionSettings())  # no registry: plans, dispatches nothing
    t0, cpu0, helper0 = time.perf_counter(), time.process_time(), _children_cpu()
    summary = runner.run(as_of, now=dt.datetime.combine(as_of, dt.time(12), dt.timezone.utc), dry_run=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    helper_cpu = _children_cpu() - helper0  # a large run plans in a helper process (planning_process.py)
    counts = {table: runner.store.db.execute(f"select count(*) from {table}").fetchone()[0]
              for table in ("outbox", "collection_events", "collection_queue")}
    runner.close()
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu + helper_cpu, "helper_cpu_seconds": helper_cpu,
                      "outbox": counts["outbox"],
                      "events": counts["collection_events"], "queue": counts["collection_queue"],
                      "receivables": summary.receivables, "summary": summary.to_dict(),
                      "peak_rss_kb": _status_kb("VmHWM"), "db_bytes": os.path.getsize(db)}))
    return 0


def child(db: str, as_of: dt.date, profile: bool, top: int) -> int:
    started = time.perf_counter()
    from regua.engine import compiler
    from regua.portfolio.collection.runner import Runner
    from regua.portfolio.collection.settings import CollectionSettings

    imported = time.perf_counter()
    policies = {name: compiler.compile_file(ROOT / "policies" / f"{name}.regua") for name in POLICIES}
    compiled = time.perf_counter()
    runner = Runner(db, policies, None, CollectionSettings())
    rss_before = _status_kb("VmRSS")
    profiler = cProfile.Profile() if profile else None
    t0, cpu0 = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    summary = runner.run(as_of, now=dt.datetime.combine(as_of, dt.time(12), dt.timezone.utc), dry_run=True)
    if profiler:
        profiler.disable()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    runner.close()
    if profiler:
        for order, count in (("cumulative", top), ("tottime", top)):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(count)
            lines = [line for line in out.getvalue().splitlines() if line.strip()]
            start = next(i for i, line in enumerate(lines) if "ncalls" in line)
            print(f"\ncProfile of the dry run, {summary.receivables:,} receivables, "
                  f"{seconds:.1f} s under the profiler (top {count} by {order}):", file=sys.stderr)
            print("\n".join("  " + line for line in lines[start:start + count + 1]), file=sys.stderr)
    print(json.dumps({
        "seconds": seconds, "cpu_seconds": cpu, "seconds_import": imported - started,
        "seconds_compile": compiled - imported,
        "receivables": summary.receivables, "planned": sum(summary.planned.values()),
        "superseded": summary.superseded, "policy_errors": summary.policy_errors, "unrouted": summary.unrouted,
        "summary": summary.to_dict(), "rss_before_kb": rss_before, "peak_rss_kb": _status_kb("VmHWM"),
    }))
    return 0


def run_child(db: str, as_of: dt.date, profile: bool = False, top: int = 30, real: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", db, "--as-of", as_of.isoformat()]
    if real:
        cmd.append("--real")
    if profile:
        cmd += ["--profile", "--top", str(top)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    output = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the max over all children
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the plan of {db} failed (exit status {proc.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    result["process_seconds"] = wall
    result["rusage_maxrss_kb"] = usage.ru_maxrss  # KiB on Linux
    result["process_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


# ---- the parent --------------------------------------------------------------------------------

CODE = ["portfolio/collection/facts.py", "portfolio/collection/plan.py", "portfolio/collection/runner.py",
        "portfolio/collection/planning_process.py", "portfolio/collection/plan_writes.py",
        "portfolio/collection/store.py", "engine/prepared.py", "engine/codegen.py", "dsl/collection.py",
        *(f"policies/{name}.regua" for name in POLICIES)]


def code_digests() -> dict[str, str]:
    """A short digest of each file the figures depend on: the results name the code they measured."""
    return {path: hashlib.sha256((ROOT / path).read_bytes()).hexdigest()[:12]
            for path in CODE if (ROOT / path).exists()}



def _sizes(text: str) -> list[int]:
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError("expected sizes like 100000,1000000")
    return sorted(set(sizes))


def _mb(kb: float) -> float:
    return kb / 1024


def report(sizes, generated, runs) -> dict:
    rows = {}
    for n in sizes:
        samples = runs[n]
        best = min(samples, key=lambda r: r["seconds"])
        seconds = best["seconds"]
        count = best["receivables"]
        rows[n] = {
            "size": n, "receivables": count, "generate_seconds": generated[n]["seconds"],
            "db_mib": round(generated[n]["bytes"] / 2 ** 20, 1), "seconds": seconds,
            "seconds_median": statistics.median(r["seconds"] for r in samples),
            "seconds_all": [r["seconds"] for r in samples],
            "per_second": count / seconds, "us_per_receivable": seconds / count * 1e6,
            "peak_rss_mb": max(r["peak_rss_kb"] for r in samples) / 1024,
            "rusage_maxrss_mb": max(r["rusage_maxrss_kb"] for r in samples) / 1024,
            "rss_before_mb": statistics.median(_mb(r["rss_before_kb"]) for r in samples),
            "process_seconds": statistics.median(r["process_seconds"] for r in samples),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in samples),
            "cpu_us_per_receivable": min(r["cpu_seconds"] for r in samples) / count * 1e6,
            "planned": best["planned"], "superseded": best["superseded"], "policy_errors": best["policy_errors"],
            "unrouted": best["unrouted"], "by_action": best["summary"]["planned"],
        }
    print(f"\n{'open receivables':>16} {'gen s':>6} {'plan s':>7} {'median':>7} {'rcv/s':>8} {'µs/rcv':>7} "
          f"{'CPU µs':>7} {'peak RSS':>9} {'(before)':>9} {'steps planned':>14} {'superseded':>11}")
    print("-" * 112)
    for n in sizes:
        r = rows[n]
        print(f"{r['receivables']:>16,} {r['generate_seconds']:6.1f} {r['seconds']:7.2f} {r['seconds_median']:7.2f} "
              f"{r['per_second']:8,.0f} "
              f"{r['us_per_receivable']:7.1f} {r['cpu_us_per_receivable']:7.1f} {r['peak_rss_mb']:6.0f} MB "
              f"{r['rss_before_mb']:6.0f} MB "
              f"{r['planned']:>14,} {r['superseded']:>11,}")
    print("open receivables: those the run planned (open and issued by the as-of date). gen s: generating the "
          "portfolio\n(not part of the figure). plan s: Runner.run(dry_run=True), wall time of the best round (the "
          "least disturbed);\nmedian: over the rounds. rcv/s and µs/rcv: from plan s. CPU µs: the run's CPU time "
          "(process_time) per receivable,\nbest round. peak RSS: the child's VmHWM (max over the rounds); (before): "
          "its RSS after imports, policy compile\nand Runner(), before the run. steps planned: pending steps "
          "(superseded: older contact steps replaced by the latest).")
    return rows


def verdicts(sizes, rows) -> list[tuple[str, bool | None, str]]:
    small, large = rows[sizes[0]], rows[sizes[-1]]
    results = []
    if len(sizes) > 1:
        ratio = large["cpu_us_per_receivable"] / small["cpu_us_per_receivable"]
        wall = large["us_per_receivable"] / small["us_per_receivable"]
        results.append((f"linear: CPU µs/rcv at {sizes[-1]:,} ÷ at {sizes[0]:,} ≤ {TARGET_LINEAR:g}",
                        ratio <= TARGET_LINEAR,
                        f"{ratio:.2f}× ({large['cpu_us_per_receivable']:.1f} / "
                        f"{small['cpu_us_per_receivable']:.1f} µs; wall {wall:.2f}×)"))
    if TARGET_SIZE in rows:
        r = rows[TARGET_SIZE]
        results.append((f"1,000,000 receivables in ≤ {TARGET_SECONDS:g} s", r["seconds"] <= TARGET_SECONDS,
                        f"{r['seconds']:.1f} s"))
        results.append((f"1,000,000 receivables in ≤ {TARGET_MB:g} MB", r["peak_rss_mb"] <= TARGET_MB,
                        f"{r['peak_rss_mb']:.0f} MB"))
    else:
        guess = large["us_per_receivable"] * TARGET_SIZE / 1e6
        results.append((f"1,000,000 receivables in ≤ {TARGET_SECONDS:g} s (not run)", None,
                        f"~{guess:.0f} s if linear from {sizes[-1]:,}"))
    return results


def first_run_verdicts(rows, first_runs) -> list[tuple[str, bool | None, str]]:
    """The first real run (outbox written) of each size, beside the dry-run plan of the same
    portfolio (best round) measured in the same session."""
    if not first_runs:
        return []
    print(f"\n{'first real run':>16} {'seconds':>8} {'CPU s':>7} {'÷ dry plan':>10} {'outbox rows':>12} "
          f"{'events':>10} {'peak RSS':>9} {'file':>8}")
    for n, r in first_runs.items():
        print(f"{r['receivables']:>16,} {r['seconds']:8.2f} {r['cpu_seconds']:7.1f} "
              f"{r['seconds'] / rows[n]['seconds']:9.1f}× {r['outbox']:>12,} {r['events']:>10,} "
              f"{_mb(r['peak_rss_kb']):6.0f} MB {r['db_bytes'] / 2 ** 30:5.2f} GiB")
    print("first real run: Runner.run(dry_run=False) without connectors (plans and writes, dispatches nothing) "
          "on the same\nportfolio after the dry rounds, its own process; CPU s: the run's and its planning "
          "helper's (from 50,000\nreceivables); ÷ dry plan: its wall time over the dry plan's (best round).")
    if TARGET_SIZE not in first_runs:
        return []
    r = first_runs[TARGET_SIZE]
    return [(f"first real run of 1,000,000 (outbox written) ≤ {TARGET_FIRST_RUN:g} s", r["seconds"] <= TARGET_FIRST_RUN,
             f"{r['seconds']:.1f} s ({r['seconds'] / rows[TARGET_SIZE]['seconds']:.1f}× the dry plan)")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=[100_000, 1_000_000], help="default 100000,1000000")
    parser.add_argument("--rounds", type=int, default=2, help="plans per size, interleaved (default 2)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=AS_OF)
    parser.add_argument("--keep", action="store_true", help="keep the generated portfolios (printed paths)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile when a target is missed")
    parser.add_argument("--profile-size", type=int, default=50_000, help="receivables of the profiled run")
    parser.add_argument("--history", action="store_true",
                        help="before timing, a real run as of the day before fills the outbox (steady state)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "collection.json")
    parser.add_argument("--child", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-first-run", action="store_true",
                        help="skip the first real run (outbox written) after the dry rounds")
    parser.add_argument("--real", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--top", type=int, default=30, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.real:
            return child_real(args.child, args.as_of)
        return child(args.child, args.as_of, args.profile, args.top)

    import gen_portfolio

    started = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"Régua collection benchmark — Python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs, SQLite {sqlite3.sqlite_version}; load average {load:.2f}")
    print(f"Dry-run plan as of {args.as_of} with the bundled réguas ({', '.join(POLICIES)}), default settings; "
          f"sizes {', '.join(f'{n:,}' for n in args.sizes)}, {args.rounds} round(s).")
    print("Outbox: " + ("yesterday's plan (--history: a real run as of the day before, not timed)." if args.history
                        else "empty (the portfolio's first plan; --history for the steady state)."))
    if load > 0.5:
        print(f"warning: load average {load:.2f} at the start: the machine is busy, trust the ratio more than "
              f"the seconds.")
    code = code_digests()
    folder = Path(tempfile.mkdtemp(prefix="regua-bench-collection-"))
    generated, runs = {}, {n: [] for n in args.sizes}
    try:
        for n in args.sizes:
            generated[n] = g = gen_portfolio.generate(folder / f"portfolio_{n}.db", n, args.as_of)
            print(f"  generated {n:>9,} open receivables (+{g['paid_receivables']:,} paid, "
                  f"{g['customers']:,} customers, "
                  f"{g['payments']:,} payments, {g['disputed']:,} disputed): {g['bytes'] / 2 ** 20:.0f} MiB "
                  f"in {g['seconds']:.1f} s", flush=True)
            if args.history:
                t0 = time.perf_counter()
                history = run_child(g["path"], args.as_of - dt.timedelta(days=1), real=True)
                g["history"] = {"seconds": history["seconds"], "outbox": history["outbox"]}
                print(f"  history {n:>11,}: a real run as of {args.as_of - dt.timedelta(days=1)} wrote "
                      f"{history['outbox']:,} outbox rows in {time.perf_counter() - t0:.1f} s", flush=True)
        for round_ in range(args.rounds):
            order = args.sizes if round_ % 2 == 0 else args.sizes[::-1]
            for n in order:
                result = run_child(generated[n]["path"], args.as_of)
                result["load_average_after"] = os.getloadavg()[0]
                runs[n].append(result)
                print(f"  round {round_ + 1}: {n:>9,} → {result['seconds']:6.2f} s plan, "
                      f"{result['seconds'] / result['receivables'] * 1e6:6.1f} µs/rcv "
                      f"({result['cpu_seconds'] / result['receivables'] * 1e6:.1f} CPU), "
                      f"peak RSS {_mb(result['peak_rss_kb']):.0f} MB, process {result['process_seconds']:.1f} s, "
                      f"load average {result['load_average_after']:.2f}",
                      flush=True)

        first_runs = {}
        if not args.no_first_run and not args.history:
            # The portfolio's first real run, after the dry rounds (which wrote nothing): every step
            # already due is written to the outbox (~4.7 rows per receivable), its history and the queue.
            for n in args.sizes:
                first_runs[n] = result = run_child(generated[n]["path"], args.as_of, real=True)
                print(f"  first real run: {n:>9,} → {result['seconds']:6.2f} s ({result['cpu_seconds']:.1f} s CPU), "
                      f"{result['outbox']:,} outbox rows, {result['events']:,} events, "
                      f"peak RSS {_mb(result['peak_rss_kb']):.0f} MB, load average {os.getloadavg()[0]:.2f}",
                      flush=True)

        changed = sorted(path for path, digest in code_digests().items() if code.get(path) != digest)
        if changed:
            print(f"\nwarning: {', '.join(changed)} changed during the run: the rounds measured different code.")
        rows = report(args.sizes, generated, runs)
        targets = verdicts(args.sizes, rows) + first_run_verdicts(rows, first_runs)
        print("\n== Targets ==")
        for label, ok, value in targets:
            print(f"  {'----' if ok is None else 'PASS' if ok else 'MISS'}  {label:<52} {value}")

        profiled = None
        if not args.no_profile and any(ok is False for _, ok, _ in targets):
            db = str(folder / f"profile_{args.profile_size}.db")
            gen_portfolio.generate(db, args.profile_size, args.as_of)
            if args.history:
                run_child(db, args.as_of - dt.timedelta(days=1), real=True)
            print(f"\nA target was missed: profiling a dry run of {args.profile_size:,} receivables "
                  f"(its own process; times under cProfile are inflated, read the shares).", flush=True)
            profiled = run_child(db, args.as_of, profile=True)
    finally:
        if args.keep:
            print(f"\nportfolios kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "collection dry-run plan", "as_of": args.as_of.isoformat(), "policies": list(POLICIES),
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count(),
        "machine": platform.machine(), "load_average_start": load, "rounds": args.rounds, "history": args.history,
        "code": code, "code_changed_during_run": changed,
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "generated": {str(n): {k: v for k, v in g.items() if k != "path"} for n, g in generated.items()},
        "rows": {str(n): r for n, r in rows.items()}, "runs": {str(n): r for n, r in runs.items()},
        "targets": [{"target": label, "pass": ok, "value": value} for label, ok, value in targets],
        "profiled_run": profiled,
        "first_runs": {str(n): r for n, r in first_runs.items()},
    }, indent=2, default=str))
    print(f"\nresults written to {args.out}\nTotal benchmark time {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
