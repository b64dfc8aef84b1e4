"""Policy lab benchmark (issue 16): replay and backtest at scale, measured side by side in one run.

Run from the repository root:  .venv/bin/python benchmarks/bench_lab.py [--rows N] [--help]   (make bench)
Needs the lab extra (pyarrow, dask[distributed]); `make bench` installs it.

1. replay of N stored credito_b2b decisions (a store written like the server writes it: the
   champion's decisions on synthetic orders with their recorded connector answers), single
   process (target: 1,000,000 in ≤ 60 s) and on a local Dask cluster of 2 workers (target:
   ≥ 1.6× the single-process throughput; the cluster is started before the clock starts; each
   worker reads its id ranges from the store), next to a plain process pool of as many workers:
   the ceiling the machine allows any parallel run (on a shared box, well below the cores);
2. backtest of N rows from Parquet (target ≤ 60 s for 1M) and from CSV (≤ 90 s), single process;
3. the driver's peak memory (max RSS of a `regua replay` / `regua backtest` process, the backtest
   on Parquet and on CSV) at N/10 and N rows: flat in the rows (target: within 10 %);
4. the per-decision cost of keeping connector answers in the decision log (engine.recorded's
   encoding, what the server adds to each row) against the server's own CPU cost per /evaluate
   request measured with wrk on the same machine (target ≤ 10 %); without wrk, against the
   in-process cost of the evaluation alone (a lower bound, so the percentage is an upper bound).

The targets are stated for 1,000,000 rows; with --rows N the time targets scale linearly.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "examples"))
import gerar_historico_b2b as generator  # noqa: E402

from regua.engine import compile_file  # noqa: E402
from regua.engine.brazil import BRASILIA  # noqa: E402
from regua.engine.connectors import ConnectorError, Connectors, Fixture  # noqa: E402
from regua.engine.recorded import encode_answers  # noqa: E402

BIN = Path(sys.executable).parent
CHAMPION = ROOT / "policies" / "credito_b2b.regua"
CANDIDATE = ROOT / "examples" / "credito_b2b_candidato.regua"
TARGET_REPLAY_S = 60.0  # per 1M decisions, single process
TARGET_DASK_SPEEDUP = 1.6
TARGET_PARQUET_S = 60.0  # per 1M rows
TARGET_CSV_S = 90.0
TARGET_ANSWERS_OVERHEAD = 0.10
TARGET_RSS_GROWTH = 1.1  # the driver's peak RSS at N rows over that at N/10


def _encode_id(millis: int, counter: int) -> str:
    from regua.server.ids import _encode

    return _encode(millis << 80 | counter)


def distinct_decisions(n: int, seed: int = 16) -> list[tuple]:
    """(as_of, input JSON, body JSON, outcome, answers JSON) of the champion on n synthetic orders."""
    champion = compile_file(CHAMPION)
    known = {f.name for f in champion.meta.input_type.fields}
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        row = generator.linha(rng)
        order = {k: v for k, v in row.items() if k in known}
        connectors = Connectors({"bureau.serasa": Fixture(json.loads(row["bureau.serasa"])),
                                 "portfolio.customer": Fixture(failure=ConnectorError("TIMEOUT"))})
        as_of = dt.date.fromisoformat(row["as_of"])
        decision = champion.evaluate(order, connectors=connectors, as_of=as_of)
        out.append((as_of, json.dumps(order), json.dumps(decision.to_dict()), decision.outcome,
                    encode_answers(decision.connector_calls)))
    return out


def write_store(path: Path, rows: int, distinct: list[tuple]) -> None:
    """A server store (migrations applied) holding `rows` decisions cycling over `distinct`, each
    with its own id dated on its order's day (Brasília), inserted oldest first as a server inserts
    them (its ids grow with time), so that reading them in id order reads the table in order."""
    from regua.server.store import Store

    Store(str(path)).close()
    db = sqlite3.connect(path)
    db.execute("pragma journal_mode = wal")
    db.execute("pragma synchronous = off")
    midnight = {}
    for as_of, *_ in distinct:
        if as_of not in midnight:
            midnight[as_of] = int(dt.datetime.combine(as_of, dt.time(9), BRASILIA).timestamp() * 1000)
    stamps = sorted((midnight[distinct[i % len(distinct)][0]] + i // 1000, i) for i in range(rows))
    batch = []
    for millis, i in stamps:
        as_of, data, body, outcome, answers = distinct[i % len(distinct)]
        batch.append((_encode_id(millis, i), "credito_b2b", "2026.11.1", 1, outcome, body, data, answers))
        if len(batch) == 50_000:
            db.executemany("insert into decisions (id, policy, version, revision, outcome, body, input, "
                           "connector_answers) values (?, ?, ?, ?, ?, ?, ?, ?)", batch)
            db.commit()
            batch.clear()
    if batch:
        db.executemany("insert into decisions (id, policy, version, revision, outcome, body, input, "
                       "connector_answers) values (?, ?, ?, ?, ?, ?, ?, ?)", batch)
    db.commit()
    db.close()


def write_datasets(folder: Path, rows: int, seed: int = 2025) -> tuple[Path, Path]:
    """The synthetic history (examples/gerar_historico_b2b.py) as CSV and as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    csv_path, parquet_path = folder / "historico.csv", folder / "historico.parquet"
    writer = None
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        out = None
        done = 0
        while done < rows:
            part = [generator.linha(rng) for _ in range(min(50_000, rows - done))]
            done += len(part)
            if out is None:
                out = csv.DictWriter(handle, fieldnames=list(part[0]))
                out.writeheader()
            out.writerows(part)
            table = pa.Table.from_pylist(part)
            if writer is None:
                writer = pq.ParquetWriter(parquet_path, table.schema)
            writer.write_table(table, row_group_size=50_000)
    writer.close()
    return csv_path, parquet_path


# Runs the command and prints its exit status and peak RSS (kB). A child's ru_maxrss counts the
# memory of the process it was forked from (Linux keeps the larger of the old and the new image's
# peak across exec): forked straight from this benchmark, which has run backtests in-process, the
# command would be charged this process's peak. Forked from this small interpreter, it is not.
_MEASURE = ("import os, subprocess, sys\n"
            "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
            "_, status, usage = os.wait4(child.pid, 0)\n"
            "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")


def _max_rss_mb(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a command run to completion."""
    started = time.perf_counter()
    measured = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    status, kilobytes = map(int, measured.stdout.split())
    if status != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {measured.stderr[-2000:]}")
    return seconds, kilobytes / 1024


def bench_replay(work: Path, rows: int, distinct: list[tuple], workers: int, results: dict, rounds: int = 2) -> None:
    from regua.lab import distributed, parallel
    from regua.lab.replay import Replayer
    from regua.server import replay_source

    store, small = work / "regua.db", work / "small.db"
    started = time.perf_counter()
    write_store(store, rows, distinct)
    write_store(small, max(1, rows // 10), distinct)
    print(f"  stores written: {rows:,} and {rows // 10:,} decisions in {time.perf_counter() - started:.0f} s "
          f"({store.stat().st_size / 1e6:.0f} MB)")
    source = CANDIDATE.read_text(encoding="utf-8")
    window = replay_source.Window("credito_b2b")

    sources, options = [(source, str(CANDIDATE))], {"keep": 10}
    probe = (functools.partial(replay_source.probe, str(store), window), replay_source.count(str(store), window))
    client, cluster = distributed.connect("local", workers)
    singles, pools, clusters, generals = [], [], [], []
    try:
        # warm: every worker has compiled the policy before the clock starts
        distributed.run(Replayer, sources, replay_source.records(str(small), window), options, client=client)
        # Rounds alternate single process, process pool and cluster, so that the load other people
        # put on this shared machine falls on all three alike; the best round of each is compared.
        for _ in range(rounds):
            started, cpu = time.perf_counter(), time.process_time()
            serial = parallel.run(Replayer, sources, replay_source.records(str(store), window), options, workers=1)
            singles.append((time.perf_counter() - started, time.process_time() - cpu))
            assert serial.total == rows, serial.total
            # Side by side: every record through the general path (regua.lab.replay_fast off), as
            # all records went before the fast path; the same report.
            started, cpu = time.perf_counter(), time.process_time()
            general = parallel.run(Replayer, sources, replay_source.records(str(store), window),
                                   {**options, "fast": False}, workers=1)
            generals.append((time.perf_counter() - started, time.process_time() - cpu))
            assert general.to_dict() == serial.to_dict(), "the fast path's report differs from the general path's"
            # The ceiling this machine allows any two processes: a plain process pool (no Dask) on
            # the same rows, read by the driver. With the kernel's autogroup scheduling all of a
            # session's processes share one CPU share, so this says what parallelism can get here.
            started = time.perf_counter()
            pooled = parallel.run(Replayer, sources, replay_source.records(str(store), window), options,
                                  workers=workers, chunk_size=2000)
            pools.append(time.perf_counter() - started)
            assert pooled.to_dict() == serial.to_dict(), "the process pool's report differs from the single one"
            worker_cpu = client.run(time.process_time)
            started, cpu = time.perf_counter(), time.process_time()
            # the workers read their partitions (id ranges) from the store themselves, as `regua
            # replay --scheduler local` does
            on_cluster = distributed.run(Replayer, sources, None, options, client=client, probe=probe,
                                         partitions=replay_source.partitions(str(store), window, 2000))
            dask_s, driver_cpu = time.perf_counter() - started, time.process_time() - cpu
            worker_cpu = {k: v - worker_cpu[k] for k, v in client.run(time.process_time).items()}
            clusters.append((dask_s, driver_cpu, worker_cpu))
            assert on_cluster.to_dict() == serial.to_dict(), "the cluster's report differs from the single one"
    finally:
        client.close()
        cluster.close()
    for i, ((single_s, single_cpu), pool_s, (dask_s, driver_cpu, worker_cpu)) in enumerate(zip(singles, pools,
                                                                                                 clusters)):
        print(f"  round {i + 1}: single {single_s:.1f} s (CPU {single_cpu:.1f} s; general path "
              f"{generals[i][0]:.1f} s, CPU {generals[i][1]:.1f} s), process pool of {workers} "
              f"{pool_s:.1f} s, Dask {workers} workers {dask_s:.1f} s (CPU: workers "
              f"{', '.join(f'{v:.1f}' for v in worker_cpu.values())} s, driver {driver_cpu:.1f} s)")
    single_s, single_cpu = min(singles)
    general_s, general_cpu = min(generals)
    results["replay_general_cpu_us"] = round(min(c for _, c in generals) / rows * 1e6, 1)
    print(f"  replay, general path only (best of {rounds}): {general_s:.1f} s, CPU {general_cpu:.1f} s = "
          f"{general_cpu / rows * 1e6:.0f} µs a decision; the fast path takes {single_cpu / general_cpu:.2f}× its CPU")
    pool_s = min(pools)
    dask_s, driver_cpu, worker_cpu = min(clusters, key=lambda c: c[0])
    results["replay_single_s"] = round(single_s, 1)
    results["replay_single_per_s"] = round(rows / single_s)
    results["replay_single_cpu_s"] = round(single_cpu, 1)
    results["replay_single_cpu_us"] = round(min(c for _, c in singles) / rows * 1e6, 1)
    print(f"  replay, single process (best of {rounds}): {rows:,} in {single_s:.1f} s ({rows / single_s:,.0f}/s; "
          f"CPU {single_cpu:.1f} s = {single_cpu / rows * 1e6:.0f} µs a decision); {serial.changed:,} changed")
    results["replay_pool_speedup"] = round(single_s / pool_s, 2)
    print(f"  replay, process pool of {workers} (no Dask): {pool_s:.1f} s, {single_s / pool_s:.2f}× single by the clock")
    results["replay_dask_s"] = round(dask_s, 1)
    results["replay_dask_speedup"] = round(single_s / dask_s, 2)
    # What the cluster would do if each process had its core: the single process's CPU time over
    # the busiest worker's, bounded by all the CPU used (workers and driver) spread over the cores.
    busiest = max(worker_cpu.values())
    bound = max(busiest, (sum(worker_cpu.values()) + driver_cpu) / (os.cpu_count() or 1))
    results["replay_dask_cpu_speedup"] = round(single_cpu / bound, 2)
    print(f"  replay, Dask local cluster of {workers} workers: {dask_s:.1f} s ({rows / dask_s:,.0f}/s), "
          f"{single_s / dask_s:.2f}× single by the clock; CPU: workers "
          f"{', '.join(f'{v:.1f}' for v in worker_cpu.values())} s, driver {driver_cpu:.1f} s -> "
          f"{single_cpu / bound:.2f}× with a core each; same report")

    for label, db in (("small", small), ("full", store)):
        seconds, rss = _max_rss_mb([str(BIN / "regua"), "replay", str(CANDIDATE), "--db", str(db), "--workers", "1",
                                    "--json", str(work / "replay.json"), "--csv", str(work / "changes.csv")])
        results[f"replay_rss_mb_{label}"] = round(rss)
        print(f"  regua replay --workers 1 --csv on {'full' if label == 'full' else 'a tenth'}: "
              f"{seconds:.1f} s, peak RSS {rss:.0f} MB")


def bench_backtest(work: Path, rows: int, results: dict) -> None:
    from regua.lab import parallel
    from regua.lab.backtest import Backtester
    from regua.lab.dataset import read_rows

    started = time.perf_counter()
    csv_path, parquet_path = write_datasets(work, rows)
    small_csv, small_parquet = write_datasets(work / "small", rows // 10) if (work / "small").mkdir() is None else ()
    print(f"  datasets written: {rows:,} rows in {time.perf_counter() - started:.0f} s "
          f"(CSV {csv_path.stat().st_size / 1e6:.0f} MB, Parquet {parquet_path.stat().st_size / 1e6:.0f} MB)")
    sources = [(CHAMPION.read_text(encoding="utf-8"), str(CHAMPION))]
    options = {"label": "inadimplente", "amount": "valor_pedido", "by": ("setor",), "as_of": None}
    reports = {}
    for label, path in (("parquet", parquet_path), ("csv", csv_path)):
        started = time.perf_counter()
        report = parallel.run(Backtester, sources, read_rows(path), options, workers=1, chunk_size=2000)
        seconds = time.perf_counter() - started
        assert report.evaluated == rows, (report.evaluated, report.error_list[:3])
        reports[label] = report.to_dict()
        results[f"backtest_{label}_s"] = round(seconds, 1)
        print(f"  backtest from {label}, single process: {rows:,} rows in {seconds:.1f} s ({rows / seconds:,.0f}/s)")
    assert reports["parquet"]["result"] == reports["csv"]["result"], "Parquet and CSV disagree"
    for kind, small, full in (("backtest", small_parquet, parquet_path), ("backtest_csv", small_csv, csv_path)):
        for label, path in (("small", small), ("full", full)):
            seconds, rss = _max_rss_mb([str(BIN / "regua"), "backtest", str(CHAMPION), "--data", str(path),
                                        "--workers", "1", "--label", "inadimplente", "--json", str(work / "bt.json")])
            results[f"{kind}_rss_mb_{label}"] = round(rss)
            print(f"  regua backtest --workers 1 on {path.suffix[1:]}, {'full' if label == 'full' else 'a tenth'}: "
                  f"{seconds:.1f} s, peak RSS {rss:.0f} MB")


def bench_answers_overhead(distinct: list[tuple], results: dict) -> None:
    """Per decision: encoding the connector answers (what the server adds to each logged row)
    against the cost of the decision itself."""
    champion = compile_file(CHAMPION)
    known = {f.name for f in champion.meta.input_type.fields}
    rng = random.Random(7)
    cases = []
    for _ in range(500):
        row = generator.linha(rng)
        cases.append(({k: v for k, v in row.items() if k in known}, json.loads(row["bureau.serasa"]),
                      dt.date.fromisoformat(row["as_of"])))
    decisions = []
    started = time.perf_counter()
    for _ in range(4):
        for order, answer, as_of in cases:
            connectors = Connectors({"bureau.serasa": Fixture(answer),
                                     "portfolio.customer": Fixture(failure=ConnectorError("TIMEOUT"))})
            decision = champion.evaluate(order, connectors=connectors, as_of=as_of)
            decisions.append(json.dumps(decision.to_dict()))
    evaluate_us = (time.perf_counter() - started) / (4 * len(cases)) * 1e6
    calls = [champion.evaluate(order, connectors=Connectors({
        "bureau.serasa": Fixture(answer), "portfolio.customer": Fixture(failure=ConnectorError("TIMEOUT"))}),
        as_of=as_of).connector_calls for order, answer, as_of in cases]
    started = time.perf_counter()
    for _ in range(4):
        for call in calls:
            encode_answers(call)
    encode_us = (time.perf_counter() - started) / (4 * len(calls)) * 1e6
    results["answers_encode_us"] = round(encode_us, 1)
    results["evaluate_in_process_us"] = round(evaluate_us, 1)
    server_us = _server_cpu_us_per_request()
    basis, label = (server_us, "the server's CPU per /evaluate request (wrk)") if server_us else \
        (evaluate_us, "an in-process evaluation + body encoding (no wrk: an upper bound)")
    results["answers_overhead"] = round(encode_us / basis, 3)
    print(f"  keeping connector answers: {encode_us:.1f} µs per decision = {encode_us / basis:.1%} of {label} "
          f"({basis:.0f} µs)")


def _server_cpu_us_per_request() -> float | None:
    """The server's CPU µs per POST /evaluate (credito_b2b, sandbox bureau), one worker, wrk."""
    if not shutil.which("wrk"):
        return None
    sys.path.insert(0, str(HERE))
    from serverkit import Server, cpu_seconds, free_port, request

    body = json.dumps({"policy": "credito_b2b", "input": json.loads((ROOT / "examples" / "pedido_b2b.json")
                                                                    .read_text(encoding="utf-8"))})
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "body.json").write_text(body, encoding="utf-8")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGUA_")}
        env["REGUA_LOG_LEVEL"] = "warning"
        argv = [str(BIN / "regua"), "serve", "--sandbox", "--db", str(work / "regua.db"), "--policies",
                str(ROOT / "policies"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]

        def check(port: int) -> None:
            status, _ = request(port, "POST", "/evaluate", json.loads(body))
            if status != 200:
                raise SystemExit(f"POST /evaluate answered {status}")

        with Server("regua", argv, env, port, check, work / "regua.log") as server:
            cmd = ["wrk", "-t2", "-c16", "-d8s", "-s", str(HERE / "wrk" / "post.lua"),
                   f"http://127.0.0.1:{port}/evaluate", "--", str(work / "body.json"), "Bearer regua-sandbox"]
            subprocess.run([*cmd[:3], "-d2s", *cmd[4:]], capture_output=True, check=True)  # warm-up
            cpu = cpu_seconds(server.process.pid)
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            cpu = cpu_seconds(server.process.pid) - cpu
    import re

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return cpu * 1e6 / max(requests, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="decisions replayed and rows backtested (1M)")
    parser.add_argument("--distinct", type=int, default=20_000, help="distinct decisions the log cycles over")
    parser.add_argument("--workers", type=int, default=2, help="Dask local cluster workers (2)")
    parser.add_argument("--rounds", type=int, default=2, help="replay rounds (single, pool, cluster alternating; 2)")
    parser.add_argument("--only", default="replay,backtest,answers", help="which parts (replay,backtest,answers)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"bench_lab: {args.rows:,} rows, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    results: dict = {"rows": args.rows}
    work = Path(tempfile.mkdtemp(prefix="regua-bench-lab-"))
    try:
        distinct = distinct_decisions(min(args.distinct, args.rows)) if parts & {"replay", "answers"} else []
        if "replay" in parts:
            bench_replay(work, args.rows, distinct, args.workers, results, args.rounds)
        if "backtest" in parts:
            bench_backtest(work, args.rows, results)
        if "answers" in parts:
            bench_answers_overhead(distinct, results)
    finally:
        if args.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    scale = args.rows / 1_000_000
    verdicts = []
    if "replay_single_s" in results:
        verdicts.append(("replay single process", results["replay_single_s"], TARGET_REPLAY_S * scale, "s", "<="))
        verdicts.append(("replay Dask speed-up (clock)", results["replay_dask_speedup"], TARGET_DASK_SPEEDUP, "×", ">="))
        verdicts.append(("replay Dask speed-up (CPU, a core each)", results["replay_dask_cpu_speedup"],
                         TARGET_DASK_SPEEDUP, "×", ">="))
    if "backtest_parquet_s" in results:
        verdicts.append(("backtest Parquet", results["backtest_parquet_s"], TARGET_PARQUET_S * scale, "s", "<="))
        verdicts.append(("backtest CSV", results["backtest_csv_s"], TARGET_CSV_S * scale, "s", "<="))
    if "answers_overhead" in results:
        verdicts.append(("connector answers overhead", results["answers_overhead"], TARGET_ANSWERS_OVERHEAD, "", "<="))
    for kind in ("replay", "backtest", "backtest_csv"):
        if f"{kind}_rss_mb_full" in results:  # flat: within 10 % of the tenth's
            verdicts.append((f"driver peak RSS of {kind.replace('_', ' ')} at N over N/10",
                             round(results[f"{kind}_rss_mb_full"] / results[f"{kind}_rss_mb_small"], 2),
                             TARGET_RSS_GROWTH, "×", "<="))
    for name, value, target, unit, op in verdicts:
        ok = value <= target if op == "<=" else value >= target
        print(f"  {'PASS' if ok else 'MISS'} {name}: {value}{unit} (target {op} {target:g}{unit})")
    for kind in ("replay", "backtest", "backtest_csv"):
        if f"{kind}_rss_mb_full" in results:
            print(f"  driver peak RSS, {kind.replace('_', ' ')}: {results[f'{kind}_rss_mb_small']} MB at "
                  f"{args.rows // 10:,} rows, {results[f'{kind}_rss_mb_full']} MB at {args.rows:,}")
    print(json.dumps(results))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    main()
