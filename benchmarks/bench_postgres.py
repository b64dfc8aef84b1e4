"""PostgreSQL store benchmark, side by side with the embedded SQLite store in one run.

Run from the repository root:  .venv/bin/python benchmarks/bench_postgres.py [--help]   (or make bench)
Starts a real PostgreSQL (pgserver: its binaries ship in the wheel; default durability settings,
fsync and synchronous_commit on) in a temporary folder, and measures:

1. decisions written per second by the batched writer (server/decision_log.py: COPY on
   PostgreSQL, multi-row INSERTs on SQLite), target ≥ 20,000/s on PostgreSQL;
2. POST /evaluate peak throughput of `regua serve` on each store (wrk, interleaved rounds, same
   settings), target PostgreSQL ≥ 0.9 × SQLite;
3. how long a policy published on one replica takes to serve on another (two `regua serve`
   processes on one PostgreSQL; LISTEN/NOTIFY, polling every 30 s as the fallback), target < 1 s.

4. the first real collection run (settle, plan, outbox written in bulk, collectors' queue; no
   dispatch: no channel is configured) over 1,000,000 open receivables on each store, each in a
   fresh process (`--receivables`, `--skip-collection`), target ≤ 120 s. The portfolio is made by
   gen_portfolio.py in SQLite and copied to PostgreSQL with COPY, both timed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from serverkit import Server, free_port, request, wrk  # noqa: E402

BIN = Path(sys.executable).parent
TARGET_WRITES = 20_000  # decisions/s on PostgreSQL, at least
TARGET_RATIO = 0.90  # /evaluate on PostgreSQL / on SQLite, at least
TARGET_PROPAGATION_S = 1.0  # publish on A -> served by B, at most
TARGET_COLLECTION_S = 120.0  # first collection run over 1,000,000 receivables, at most
COLLECTION_TABLES = ("customers", "receivables", "payments", "agreements")


def load_portfolio(sqlite_path: str, url: str) -> float:
    """Copy the generated portfolio into PostgreSQL (the same tables, made by the same migrations) with COPY."""
    import sqlite3

    from regua.portfolio import Portfolio
    from regua.portfolio.collection.store import CollectionStore

    started = time.perf_counter()
    Portfolio(url).close()
    CollectionStore(url).close()
    source = sqlite3.connect(sqlite_path)
    from regua import postgres

    with postgres.connect(url) as conn:
        for table in COLLECTION_TABLES:
            columns = [row[1] for row in source.execute(f"pragma table_info({table})")]
            names = ", ".join(columns)
            with conn.cursor() as cursor, cursor.copy(f"copy {table} ({names}) from stdin") as copy:
                for row in source.execute(f"select {names} from {table}"):
                    copy.write_row(row)
            conn.execute(f"analyze {table}")
    source.close()
    return time.perf_counter() - started


def collection_child(location: str, as_of: str) -> int:
    """One first collection run in this fresh process; prints its figures as JSON."""
    import datetime as dt

    from regua.engine import compiler
    from regua.portfolio.collection.runner import Runner
    from regua.portfolio.collection.settings import CollectionSettings

    day = dt.date.fromisoformat(as_of)
    policies = {name: compiler.compile_file(ROOT / "policies" / f"{name}.regua")
                for name in ("cobranca_b2c", "cobranca_b2b")}
    runner = Runner(location, policies, None, CollectionSettings())  # no registry: plans, dispatches nothing
    import resource

    def children_cpu() -> float:  # the planning helper's CPU (a large run plans in one: planning_process.py)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    started, cpu, helper = time.perf_counter(), time.process_time(), children_cpu()
    summary = runner.run(day, now=dt.datetime.combine(day, dt.time(12), dt.timezone.utc))
    seconds = time.perf_counter() - started
    cpu, helper = time.process_time() - cpu, children_cpu() - helper
    outbox = runner.store.db.execute("select count(*) from outbox").fetchone()[0]
    runner.close()
    with open("/proc/self/status") as handle:
        peak = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "helper_cpu_seconds": round(helper, 2),
                      "receivables": summary.receivables, "outbox": outbox,
                      "planned": sum(summary.planned.values()), "peak_rss_mb": round(peak / 1024)}))
    return 0


def collection_runs(tmp: Path, url: str, receivables: int) -> dict:
    import subprocess

    from gen_portfolio import AS_OF, generate

    path = str(tmp / "portfolio.db")
    started = time.perf_counter()
    generate(path, receivables, AS_OF)
    generated = time.perf_counter() - started
    copied = load_portfolio(path, url)
    print(f"  portfolio of {receivables:,} open receivables: generated in {generated:.1f} s (SQLite), "
          f"copied to PostgreSQL in {copied:.1f} s (COPY)", flush=True)
    out = {"receivables": receivables, "generate_s": round(generated, 1), "copy_s": round(copied, 1)}
    for name, location in (("sqlite", path), ("postgresql", url)):
        done = subprocess.run([sys.executable, __file__, "--collection-child", location, "--as-of", AS_OF.isoformat()],
                              capture_output=True, text=True, check=True)
        out[name] = json.loads(done.stdout.splitlines()[-1])
        result = out[name]
        print(f"  {name:10} {result['seconds']:>8.1f} s  (CPU {result['cpu_seconds']:.1f} s + planning helper "
              f"{result['helper_cpu_seconds']:.1f} s)  {result['outbox']:,} outbox rows, "
              f"peak RSS {result['peak_rss_mb']:,} MB", flush=True)
    return out


def decision_rows(count: int) -> list[tuple]:
    from regua.server.ids import new_decision_id
    from regua.server.store import DECISION_COLUMNS

    order = (ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8")
    body = json.dumps({"outcome": "approve", "outputs": {"limite": "120000.00"}, "reasons": [{"code": "OK"}]})
    rows = []
    for i in range(count):
        values = {"id": new_decision_id(), "policy": "credito_b2b", "version": "2026.11.1", "revision": 1,
                  "outcome": "approve", "body": body, "input": order, "input_hash": f"{i:064x}",
                  "document_hash": f"{i:064x}", "document_masked": "12.***.***/0001-**", "request_id": None,
                  "api_key": "bench", "duration_ms": 0.4, "connector_answers": None}
        rows.append(tuple(values[c] for c in DECISION_COLUMNS))
    return rows


def writer_throughput(location: str, rows: list[tuple]) -> dict:
    """Submit every row to a DecisionLog at once (as a burst of requests would) and time until all are committed."""
    from regua.server.decision_log import DecisionLog
    from regua.server.store import open_store

    store = open_store(location)
    log = DecisionLog(store, flush_interval_ms=50, flush_max=512)
    try:
        started = time.perf_counter()
        for row in rows:
            log.submit(row)
        if not log.wait_flushed(600):
            raise SystemExit(f"{location}: the decision log did not drain")
        elapsed = time.perf_counter() - started
    finally:
        log.close()
    written = store.count_decisions()
    if written != len(rows):
        raise SystemExit(f"{location}: {written} decisions stored, {len(rows)} submitted")
    return {"decisions": len(rows), "seconds": round(elapsed, 3), "per_second": round(len(rows) / elapsed)}


def regua(name: str, workdir: Path, db: str, extra_env: dict | None = None) -> Server:
    order = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))

    def check(port: int) -> None:
        status, body = request(port, "POST", "/evaluate", {"policy": "credito_b2b", "input": order})
        if status != 200 or body.get("outcome") != "approve":
            raise SystemExit(f"{name}: POST /evaluate answered {status} {body}")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGUA_", "PROMETHEUS_"))}
    env.update({"REGUA_LOG_LEVEL": "warning", **(extra_env or {})})
    port = free_port()
    policies = workdir / "policies"
    if not policies.exists():
        shutil.copytree(ROOT / "policies", policies)
    argv = [str(BIN / "regua"), "serve", "--sandbox", "--db", db, "--policies", str(policies), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]
    workdir.mkdir(parents=True, exist_ok=True)
    return Server(name, argv, env, port, check, workdir / f"{name}.log")


def evaluate_throughput(tmp: Path, url: str, args) -> dict:
    order = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
    args.body = tmp / "body.json"
    args.body.write_text(json.dumps({"policy": "credito_b2b", "input": order}), encoding="utf-8")
    runs: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    with regua("sqlite", tmp / "sqlite", str(tmp / "sqlite" / "regua.db")) as lite, \
            regua("postgresql", tmp / "pg", url) as pg:
        servers = [lite, pg]
        for index in range(args.rounds):
            for server in servers if index % 2 == 0 else servers[::-1]:
                wrk(server, args, args.warmup, args.connections, "post.lua")
                result = wrk(server, args, args.duration, args.connections, "post.lua")
                runs[server.name].append(result["rps"])
                print(f"  round {index + 1} {server.name:10} {result['rps']:9.1f} req/s  p99 {result['p99_ms']:7.2f} ms",
                      flush=True)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    return {"runs": runs, "median_rps": medians, "ratio": round(medians["postgresql"] / medians["sqlite"], 3)}


def propagation(tmp: Path, url: str, times: int) -> dict:
    """Publish a changed credito_b2b on A, poll B every 5 ms until it answers with the new version."""
    import httpx

    source = (ROOT / "policies" / "credito_b2b.regua").read_text(encoding="utf-8")
    slow_poll = {"REGUA_POLICIES__SYNC_INTERVAL": "30"}
    headers = {"Authorization": "Bearer regua-sandbox"}
    order = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
    delays = []
    with regua("a", tmp / "a", url, slow_poll) as a, regua("b", tmp / "b", url, slow_poll) as b, \
            httpx.Client(headers=headers, timeout=30) as client:
        for i in range(times):
            version = f"2027.{i + 1}.1"
            changed = source.replace('version "2026.11.1"', f'version "{version}"')
            started = time.perf_counter()
            response = client.post(f"http://127.0.0.1:{a.port}/policies", json={"source": changed})
            if response.status_code != 201:
                raise SystemExit(f"publish on A answered {response.status_code}: {response.text}")
            while True:
                answer = client.post(f"http://127.0.0.1:{b.port}/evaluate/credito_b2b", json={"input": order}).json()
                if answer["policy"]["version"] == version:
                    break
                if time.perf_counter() - started > 60:
                    raise SystemExit("B never served the version published on A")
                time.sleep(0.005)
            delays.append(time.perf_counter() - started)
    return {"seconds": [round(d, 4) for d in delays], "median_s": round(statistics.median(delays), 4),
            "max_s": round(max(delays), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=200_000, help="decisions written by the writer test (200000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed wrk run (10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds (3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load before each run (2)")
    parser.add_argument("--publishes", type=int, default=5, help="publish-to-replica measurements (5)")
    parser.add_argument("--receivables", type=int, default=1_000_000,
                        help="open receivables of the first collection run (1000000)")
    parser.add_argument("--skip-collection", action="store_true", help="leave out the collection run")
    parser.add_argument("--collection-only", action="store_true", help="measure only the collection run")
    parser.add_argument("--collection-child", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "postgres.json")
    args = parser.parse_args()
    if args.collection_child:
        return collection_child(args.collection_child, args.as_of)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    from psycopg.conninfo import make_conninfo

    from regua import postgres

    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="regua-bench-pg-") as folder:
        tmp = Path(folder)
        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
        try:
            admin = server.get_uri()
            for name in ("writer", "evaluate", "replicas", "collection"):
                with postgres.connect(admin) as conn:
                    conn.execute(f"create database {name}")

            def url(name: str) -> str:
                return make_conninfo(admin, dbname=name) if "://" not in admin else admin.replace("/postgres?", f"/{name}?")

            if not args.skip_collection:
                print(f"first collection run, {args.receivables:,} open receivables (settle, plan, outbox in bulk):",
                      flush=True)
                figures["collection"] = collection_runs(tmp, url("collection"), args.receivables)
            if args.collection_only:
                return _report(args, figures)
            rows = decision_rows(args.decisions)
            print(f"decision log writer, {args.decisions:,} decisions submitted at once:", flush=True)
            figures["writer"] = {"sqlite": writer_throughput(str(tmp / "writer.db"), rows),
                                 "postgresql": writer_throughput(url("writer"), rows)}
            for name, result in figures["writer"].items():
                print(f"  {name:10} {result['per_second']:>9,} decisions/s ({result['seconds']} s)", flush=True)
            postgres.close_pools()
            if shutil.which("wrk") is None:
                print("POST /evaluate: skipped, needs the wrk load generator (apt-get install wrk)")
            else:
                print(f"POST /evaluate peak, wrk -c{args.connections}, {args.rounds} rounds × {args.duration:g} s:",
                      flush=True)
                figures["evaluate"] = evaluate_throughput(tmp, url("evaluate"), args)
            print(f"publish on replica A -> served by replica B ({args.publishes} times):", flush=True)
            figures["propagation"] = propagation(tmp, url("replicas"), args.publishes)
        finally:
            server.cleanup()
    return _report(args, figures)


def _report(args, figures: dict) -> int:
    verdict = {}
    if "writer" in figures:
        verdict["writer"] = figures["writer"]["postgresql"]["per_second"] >= TARGET_WRITES
        verdict["propagation"] = figures["propagation"]["max_s"] <= TARGET_PROPAGATION_S
    if "collection" in figures:
        verdict["collection"] = all(figures["collection"][name]["seconds"] <= TARGET_COLLECTION_S
                                    for name in ("sqlite", "postgresql"))
    if "evaluate" in figures:
        verdict["evaluate_ratio"] = figures["evaluate"]["ratio"] >= TARGET_RATIO
    print()
    print(f"{'measure':48} {'value':>12}  target   verdict")
    if "collection" in figures:
        runs = figures["collection"]
        for name in ("postgresql", "sqlite"):
            print(f"{'first collection run, ' + name + ' (s)':48} {runs[name]['seconds']:>12.1f}  ≤{TARGET_COLLECTION_S:g}"
                  f"   {'PASS' if runs[name]['seconds'] <= TARGET_COLLECTION_S else 'MISS'}"
                  f"   ({runs['receivables']:,} receivables, {runs[name]['outbox']:,} outbox rows)")
        print(f"{'  PostgreSQL / SQLite':48} {runs['postgresql']['seconds'] / runs['sqlite']['seconds']:>12.2f}")
    if "writer" not in figures:
        return _write(args, figures, verdict)
    writer = figures["writer"]
    ratio_w = writer["postgresql"]["per_second"] / writer["sqlite"]["per_second"]
    print(f"{'decisions/s written to PostgreSQL (COPY)':48} {writer['postgresql']['per_second']:>12,}  ≥{TARGET_WRITES:,}"
          f"  {'PASS' if verdict['writer'] else 'MISS'}   (SQLite {writer['sqlite']['per_second']:,}/s, ratio {ratio_w:.2f})")
    if "evaluate" in figures:
        evaluate = figures["evaluate"]
        print(f"{'/evaluate req/s, PostgreSQL / SQLite':48} {evaluate['ratio']:>12.3f}  ≥{TARGET_RATIO}"
              f"   {'PASS' if verdict['evaluate_ratio'] else 'MISS'}   (PostgreSQL {evaluate['median_rps']['postgresql']:,.0f},"
              f" SQLite {evaluate['median_rps']['sqlite']:,.0f} req/s)")
    prop = figures["propagation"]
    print(f"{'publish on A -> served by B, worst of runs (s)':48} {prop['max_s']:>12.3f}  ≤{TARGET_PROPAGATION_S}"
          f"   {'PASS' if verdict['propagation'] else 'MISS'}   (median {prop['median_s']} s)")
    return _write(args, figures, verdict)


def _write(args, figures: dict, verdict: dict) -> int:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "body"}
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "settings": settings,
                                    "figures": figures, "verdict": verdict}, indent=2), encoding="utf-8")
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
