"""Experiments and counterfactuals: the cost of a shadow challenger on POST /evaluate, and the time
to explain a decision by counterfactuals.

Run from the repository root:  .venv/bin/python benchmarks/bench_experiments.py [--help]   (or make bench)

Part 1 (needs wrk): two Régua servers side by side, identical but for one experiment on the second
(champion 100%, one shadow challenger evaluated on every request). First at peak, wrk in
interleaved rounds; then open loop (openloop.py: requests due on a fixed schedule, latency counted
from the due time, so a stall cannot hide) at a fixed rate below both peaks (half the lower one by
default), in short rounds that alternate the servers, so both meet the same minutes of a shared,
noisy machine. Each run also reads the server's CPU time (its whole process tree) per request. The
verdict reads the median of the per-round ratios (shadow / plain), so no single noisy round decides.
Targets: throughput with the shadow ≥ 0.85× without, p99 ≤ 1.3× (at peak and paced).

Part 2 (in process): counterfactuals for deny/review decisions of the bundled credit policies on
random orders and bureau answers (seeded), each search timed alone, the first version of the search
(engine.counterfactuals with exact=False, shared=False) and today's one by turns on the same
decisions, first on the machine as it is, then with `--load` busy processes beside it (a loaded
box). Target: p95 ≤ 50 ms per decision, loaded too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import openloop  # noqa: E402
from bench_server import checker, interleaved, regua_server  # noqa: E402
from serverkit import AUTH, cpu_seconds, request, wrk  # noqa: E402

TARGET_THROUGHPUT = 0.85  # with one shadow / without, at least
TARGET_P99 = 1.30  # with one shadow / without, at most
TARGET_COUNTERFACTUAL_P95_MS = 50.0
AS_OF = dt.date(2026, 11, 22)
B2B = (ROOT / "policies" / "credito_b2b.regua").read_text(encoding="utf-8")
SHADOW = B2B.replace('version "2026.11.1"', 'version "shadow"').replace(
    "when saldo + valor_pedido > limite_vigente", "when saldo + valor_pedido > limite_vigente * 120%")


# ---- part 1: the shadow's cost over HTTP ---------------------------------------------------------

def create_experiment(port: int, sample: float | None = None) -> None:
    shadow = {"name": "sombra", "source": SHADOW, "share": 0} | ({"sample": sample} if sample is not None else {})
    status, body = request(port, "POST", "/experiments", {"name": "bench", "policy": "credito_b2b",
                                                          "challengers": [shadow]})
    if status != 201:
        raise SystemExit(f"POST /experiments answered {status} {body}")


def _ratios(runs: dict[str, list[dict]], key: str, name: str = "shadow") -> list[float]:
    """Round by round, shadow / plain: the runs of a round ran in the same minute."""
    return [s[key] / p[key] for p, s in zip(runs["plain"], runs[name], strict=True) if p[key]]


def open_loop_phase(servers, args, rate: float) -> dict[str, list[dict]]:
    """Open-loop rounds at `rate` req/s per server (openloop.py: latency from each request's due
    time). `--together` (the default): all servers on one schedule at once, each due instant one
    request to each, so a burst of another process's load hits them all alike; otherwise one server
    after the other, their order alternating round by round. Each run with its server's CPU time."""
    body = args.body.read_bytes()
    headers = {"Authorization": AUTH}
    results: dict[str, list[dict]] = {s.name: [] for s in servers}

    def cpu(server):
        return cpu_seconds(server.process.pid), cpu_seconds(server.process.pid, children=False)

    def measured(server, before, result):
        after = cpu(server)
        # With the whole tree (a shadow process included) and of the serving process alone.
        result["cpu_us_per_request"] = round((after[0] - before[0]) * 1e6 / max(result["requests"], 1), 1)
        result["own_cpu_us_per_request"] = round((after[1] - before[1]) * 1e6 / max(result["requests"], 1), 1)
        if result["errors"]:
            raise SystemExit(f"{server.name}: {result['errors']} failed requests at {rate:.0f} req/s: {result}")
        results[server.name].append(result)

    for index in range(args.paced_rounds):
        if args.together:
            ports = [server.port for server in servers]
            openloop.run_together(ports, body, rate, args.warmup, headers=headers)
            before = [cpu(server) for server in servers]
            for server, start, result in zip(servers, before, openloop.run_together(
                    ports, body, rate, args.paced_duration, headers=headers)):
                measured(server, start, result)
        else:
            for server in servers if index % 2 == 0 else servers[::-1]:
                openloop.run(server.port, body, rate, args.warmup, headers=headers)
                before = cpu(server)
                measured(server, before, openloop.run(server.port, body, rate, args.paced_duration, headers=headers))
        for server in servers:
            result = results[server.name][-1]
            print(f"  round {index + 1} {server.name:6} {result['rps']:7.1f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                  f"p99 {result['p99_ms']:7.2f} ms  max {result['max_ms']:7.2f} ms  CPU µs/request: all "
                  f"{result['cpu_us_per_request']:4.0f}, server process {result['own_cpu_us_per_request']:4.0f}  "
                  f"(client lag p99 {result['client_lag_p99_ms']:.2f} ms)", flush=True)
    return results


def http_part(args) -> dict:
    order = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="regua-bench-exp-") as tmp:
        workdir = Path(tmp)
        args.body = workdir / "body.json"
        args.body.write_text(json.dumps({"policy": "credito_b2b", "input": order}), encoding="utf-8")
        servers = []
        for name in ("plain", "shadow") + (("thread",) if args.thread else ()) + (("twin",) if args.twin else ()):
            (workdir / name).mkdir()
            server = regua_server(workdir / name, ROOT / "policies", args.workers, checker("credito_b2b", order))
            server.name = name
            if name == "thread":  # the shadow evaluated on a thread of the serving process, as before
                server.env["REGUA_SERVER__SHADOW_PROCESS"] = "false"
            servers.append(server)
        with contextlib.ExitStack() as running:
            for server in servers:
                running.enter_context(server)
                if server.name not in ("plain", "twin"):
                    create_experiment(server.port, args.sample)
            time.sleep(1.0)  # every worker picks the experiment up (they poll the store)

            def peak_one(server):
                wrk(server, args, args.warmup, args.connections, "post.lua")
                return wrk(server, args, args.duration, args.connections, "post.lua")

            print(f"peak: wrk -c{args.connections}, {args.rounds} rounds × {args.duration:g} s", flush=True)
            peak = interleaved(servers, args, peak_one)
            lower_peak = min(statistics.median(r["rps"] for r in peak[name]) for name in ("plain", "shadow"))
            rate = args.rate or round(lower_peak * args.paced_fraction)
            print(f"open loop at {rate:,.0f} req/s per server ({rate / lower_peak:.0%} of the lower peak), "
                  f"{args.paced_rounds} rounds × {args.paced_duration:g} s, "
                  f"{'all servers at once' if args.together else 'one server at a time'}", flush=True)
            paced = open_loop_phase(servers, args, rate)
        with contextlib.closing(sqlite3.connect(workdir / "shadow" / "regua.db")) as db:
            decided, shadows = db.execute("select count(*) filter (where shadow = 0), count(*) filter (where shadow "
                                          "= 1) from experiment_decisions").fetchone()
            decisions = db.execute("select count(*) from decisions").fetchone()[0]

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    figures = {f"{phase}_{name}_{key}": round(med(runs[name], key), 2)
               for phase, runs in (("peak", peak), ("paced", paced)) for name in ("plain", "shadow")
               for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")}
    # The verdict reads the median of the per-round ratios: one noisy round (another process took
    # the CPU during it) moves one ratio, not the verdict.
    ratios = {f"{phase}_{key}": [round(r, 3) for r in _ratios(runs, key)]
              for phase, runs in (("peak", peak), ("paced", paced))
              for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")}
    for name in ("plain", "shadow"):
        figures[f"paced_{name}_own_cpu_us_per_request"] = round(med(paced[name], "own_cpu_us_per_request"), 2)
    ratios["paced_own_cpu_us_per_request"] = [round(r, 3) for r in _ratios(paced, "own_cpu_us_per_request")]
    # The extra servers against the same plain rounds: the shadow on a thread of the serving process
    # (as before the child process), and a second plain server (an A/A ratio: the method's noise).
    for extra in [name for name in ("thread", "twin") if name in peak]:
        for phase, runs in (("peak", peak), ("paced", paced)):
            for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request") + (
                    ("own_cpu_us_per_request",) if phase == "paced" else ()):
                figures[f"{phase}_{extra}_{key}"] = round(med(runs[extra], key), 2)
                ratios[f"{extra}_{phase}_{key}"] = [round(r, 3) for r in _ratios(runs, key, extra)]
                figures[f"{extra}_{phase}_{key}_ratio"] = round(statistics.median(ratios[f"{extra}_{phase}_{key}"]), 3)
    figures.update(
        paced_rate=rate,
        throughput_ratio=round(statistics.median(ratios["peak_rps"]), 3),
        p99_ratio_peak=round(statistics.median(ratios["peak_p99_ms"]), 3),
        p99_ratio_paced=round(statistics.median(ratios["paced_p99_ms"]), 3),
        p50_ratio_paced=round(statistics.median(ratios["paced_p50_ms"]), 3),
        cpu_ratio_peak=round(statistics.median(ratios["peak_cpu_us_per_request"]), 3),
        cpu_ratio_paced=round(statistics.median(ratios["paced_cpu_us_per_request"]), 3),
        own_cpu_ratio_paced=round(statistics.median(ratios["paced_own_cpu_us_per_request"]), 3),
        decisions=decisions, experiment_rows=decided, shadow_rows=shadows)
    verdict = {"throughput": figures["throughput_ratio"] >= TARGET_THROUGHPUT,
               "p99_peak": figures["p99_ratio_peak"] <= TARGET_P99,
               "p99_paced": figures["p99_ratio_paced"] <= TARGET_P99}
    return {"figures": figures, "ratios": ratios, "verdict": verdict, "runs": {"peak": peak, "paced": paced}}


# ---- part 2: counterfactual search time -----------------------------------------------------------

def _b2b_case(rng: random.Random) -> tuple[dict, dict]:
    order = {"cnpj": "11.222.333/0001-81", "faturamento_anual": str(rng.choice([300_000, 1_000_000, 2_000_000])),
             "data_fundacao": rng.choice(["2010-01-01", "2015-03-10", "2025-06-01"]),
             "ticket_medio": str(rng.choice([10_000, 20_000, 40_000])),
             "valor_pedido": f"{rng.uniform(1_000, 400_000):.2f}", "saldo_em_aberto": f"{rng.uniform(0, 200_000):.2f}",
             "dias_atraso_max": rng.choice([0, 0, 0, 45]), "ciclos_sem_atraso": rng.randint(0, 6)}
    restrictions = [{"kind": "pefin", "amount": f"{rng.uniform(100, 9_000):.2f}", "date": "2026-05-02"}] \
        if rng.random() < 0.2 else []
    answer = {"score": {"value": rng.randint(0, 1000)}, "restrictions": restrictions,
              "registration_status": "active"}
    return order, {"bureau.serasa": answer}


def _b2c_case(rng: random.Random) -> tuple[dict, dict]:
    order = {"cpf": "529.982.247-25", "data_nascimento": "1990-05-01",
             "renda_mensal": f"{rng.uniform(1_500, 15_000):.2f}", "valor_compra": f"{rng.uniform(300, 30_000):.2f}",
             "parcelas": rng.randint(1, 12), "parcelas_em_aberto": f"{rng.uniform(0, 2_000):.2f}",
             "cliente_desde": rng.choice(["2020-01-01", "2026-10-01"])}
    return order, {"bureau.boavista": {"score": {"value": rng.randint(0, 1000)}}}


VARIANTS = {  # name: options of find_counterfactuals
    "first": {"exact": False, "shared": False},  # the first version: thresholds ± unit, answers asked each time
    "now": {},  # exact points, answers shared across a search's evaluations
}


def _busy(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _cases(prepared, make, rng, count: int) -> list:
    from regua.engine import Connectors, Fixture
    from regua.engine.recorded import decode_answers, encode_answers

    out = []
    while len(out) < count:
        data, answers = make(rng)
        inputs = prepared.validate(data)
        decision = prepared.evaluate_validated(inputs, connectors=Connectors({k: Fixture(v) for k, v in answers.items()}),
                                               as_of=AS_OF)
        if decision.outcome != "approve":
            out.append((inputs, decode_answers(encode_answers(decision.connector_calls))))
    return out


def _timed(prepared, cases) -> dict:
    """Each case searched by each variant, one after the other (the same load for both), in turns
    (first/now, then now/first: neither always runs right after the other), each search timed
    alone, in wall time and in this thread's CPU time."""
    from regua.engine.counterfactuals import find_counterfactuals

    times = {name: [] for name in VARIANTS}
    cpu = {name: [] for name in VARIANTS}  # this thread's CPU time: the work, whatever the scheduler does
    evaluations = {name: [] for name in VARIANTS}
    statuses = {name: {} for name in VARIANTS}
    for number, (inputs, record) in enumerate(cases):
        order = list(VARIANTS.items())
        for name, options in (order if number % 2 == 0 else order[::-1]):
            started, started_cpu = time.perf_counter(), time.thread_time()
            found = find_counterfactuals(prepared, inputs, record, AS_OF, **options)
            times[name].append((time.perf_counter() - started) * 1000)
            cpu[name].append((time.thread_time() - started_cpu) * 1000)
            evaluations[name].append(found.evaluations)
            statuses[name][found.status] = statuses[name].get(found.status, 0) + 1
    out = {}
    for name in VARIANTS:
        ordered = sorted(times[name])
        work = sorted(cpu[name])
        out[name] = {"p50_ms": round(statistics.median(ordered), 2),
                     "cpu_p50_ms": round(statistics.median(work), 3),
                     "cpu_p95_ms": round(work[int(0.95 * (len(work) - 1))], 3),
                     "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2), "max_ms": round(ordered[-1], 2),
                     "evaluations_median": statistics.median(evaluations[name]),
                     "evaluations_p95": sorted(evaluations[name])[int(0.95 * (len(ordered) - 1))],
                     "evaluations_total": sum(evaluations[name]), "statuses": statuses[name]}
    return out


def counterfactual_part(args) -> dict:
    """Per policy and per load (the machine as it is, then with `--load` busy processes beside
    it), both variants on the same deny/review decisions."""
    import multiprocessing
    import os

    from regua.engine import compile_file

    rng = random.Random(17)
    out = {}
    for name, make in (("credito_b2b", _b2b_case), ("credito_b2c", _b2c_case)):
        prepared = compile_file(ROOT / "policies" / f"{name}.regua")
        cases = _cases(prepared, make, rng, args.decisions)
        out[name] = {}
        for phase, extra in (("as_is", 0), ("loaded", args.load)):
            stop = multiprocessing.Event()
            workers = [multiprocessing.Process(target=_busy, args=(stop,), daemon=True) for _ in range(extra)]
            for worker in workers:
                worker.start()
            try:
                load = os.getloadavg()[0]
                figures = _timed(prepared, cases)
            finally:
                stop.set()
                for worker in workers:
                    worker.join()
            figures["busy_processes"] = extra
            figures["load_average_1m_at_start"] = round(load, 1)
            figures["pass"] = figures["now"]["p95_ms"] <= TARGET_COUNTERFACTUAL_P95_MS
            out[name][phase] = figures
            first, now = figures["first"], figures["now"]
            print(f"  {name}, {phase} (+{extra} busy, load {load:.1f}): {len(cases)} deny/review decisions; "
                  f"p95 first {first['p95_ms']} ms -> now {now['p95_ms']} ms "
                  f"({first['p95_ms'] / max(now['p95_ms'], 1e-9):.1f}x); CPU p95 {first['cpu_p95_ms']} -> "
                  f"{now['cpu_p95_ms']} ms ({first['cpu_p95_ms'] / max(now['cpu_p95_ms'], 1e-9):.1f}x); "
                  f"evaluations median {first['evaluations_median']} -> {now['evaluations_median']}, "
                  f"p95 {first['evaluations_p95']} -> {now['evaluations_p95']}; "
                  f"{now['statuses']}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per timed wrk run (8)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--paced-rounds", type=int, default=8, help="open-loop rounds per server (8)")
    parser.add_argument("--paced-duration", type=float, default=5.0, help="seconds per open-loop run (5)")
    parser.add_argument("--paced-fraction", type=float, default=0.4, help="open-loop rate per server, of the lower peak (0.4)")
    parser.add_argument("--rate", type=float, help="open-loop rate in req/s (instead of --paced-fraction)")
    parser.add_argument("--decisions", type=int, default=300, help="deny/review decisions per policy (300)")
    parser.add_argument("--load", type=int, default=8, help="busy processes beside the loaded counterfactual run (8)")
    parser.add_argument("--no-http", action="store_true", help="only the counterfactual part")
    parser.add_argument("--thread", action="store_true",
                        help="a third server with the shadow on a thread of the serving process (server.shadow_process "
                             "= false), measured in the same rounds")
    parser.add_argument("--alternate", dest="together", action="store_false",
                        help="open loop one server at a time, in alternating order (default: all at once on one "
                             "schedule)")
    parser.add_argument("--twin", action="store_true",
                        help="a second server without the experiment, measured in the same rounds: the A/A ratios "
                             "show how far noise alone moves a ratio")
    parser.add_argument("--no-counterfactuals", action="store_true", help="only the HTTP part")
    parser.add_argument("--sample", type=float, help="the shadow's sample, a fraction in (0, 1] (default: every request)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "experiments.json")
    args = parser.parse_args()
    mark = {True: "PASS", False: "MISS"}
    counterfactuals = {}
    if not args.no_counterfactuals:
        print("counterfactuals, each search timed alone:", flush=True)
        counterfactuals = counterfactual_part(args)
    http = None
    if not args.no_http:
        if shutil.which("wrk") is None:
            print("the HTTP part needs wrk (apt-get install wrk); skipped", file=sys.stderr)
        else:
            http = http_part(args)
    print("\n| figure | without the experiment | with one shadow challenger | target | result |\n|---|---:|---:|---|---|")
    if http:
        f, v = http["figures"], http["verdict"]
        print(f"| peak throughput (req/s) | {f['peak_plain_rps']:,.0f} | {f['peak_shadow_rps']:,.0f} | "
              f"≥ {TARGET_THROUGHPUT}×: **{f['throughput_ratio']:.2f}×** | {mark[v['throughput']]} |")
        print(f"| p99 at peak (ms) | {f['peak_plain_p99_ms']:.2f} | {f['peak_shadow_p99_ms']:.2f} | "
              f"≤ {TARGET_P99}×: **{f['p99_ratio_peak']:.2f}×** | {mark[v['p99_peak']]} |")
        print(f"| p99 open loop at {f['paced_rate']:,.0f} req/s (ms) | {f['paced_plain_p99_ms']:.2f} | "
              f"{f['paced_shadow_p99_ms']:.2f} | ≤ {TARGET_P99}×: **{f['p99_ratio_paced']:.2f}×** | "
              f"{mark[v['p99_paced']]} |")
        print(f"| p50 open loop (ms) | {f['paced_plain_p50_ms']:.2f} | {f['paced_shadow_p50_ms']:.2f} | "
              f"{f['p50_ratio_paced']:.2f}× | |")
        print(f"| server CPU per request at peak (µs) | {f['peak_plain_cpu_us_per_request']:,.0f} | "
              f"{f['peak_shadow_cpu_us_per_request']:,.0f} | {f['cpu_ratio_peak']:.2f}× | |")
        print(f"| CPU per request, open loop, all processes (µs) | {f['paced_plain_cpu_us_per_request']:,.0f} | "
              f"{f['paced_shadow_cpu_us_per_request']:,.0f} | {f['cpu_ratio_paced']:.2f}× | |")
        print(f"| CPU per request, open loop, serving process (µs) | "
              f"{f['paced_plain_own_cpu_us_per_request']:,.0f} | {f['paced_shadow_own_cpu_us_per_request']:,.0f} | "
              f"{f['own_cpu_ratio_paced']:.2f}× | |")
        for extra, label in (("thread", "shadow on a thread of the server instead"),
                             ("twin", "A/A: a second server without the experiment")):
            if f"{extra}_paced_p99_ms_ratio" in f:
                print(f"| {label}: peak throughput, p99 at peak, p99 / p50 open loop, serving-process CPU "
                      f"open loop | | {f[f'{extra}_peak_rps_ratio']:.2f}×, {f[f'{extra}_peak_p99_ms_ratio']:.2f}×, "
                      f"{f[f'{extra}_paced_p99_ms_ratio']:.2f}× / {f[f'{extra}_paced_p50_ms_ratio']:.2f}×, "
                      f"{f[f'{extra}_paced_own_cpu_us_per_request_ratio']:.2f}× | | |")
        print("\nRatios are medians of the per-round ratios (shadow / plain); per round: "
              + "; ".join(f"{k} {v}" for k, v in http["ratios"].items() if k.endswith(("p99_ms", "_rps", "p50_ms"))))
        print(f"\nThe shadowed server recorded {f['experiment_rows']:,} experiment decisions and {f['shadow_rows']:,} "
              f"shadow decisions for {f['decisions']:,} decisions.")
    for name, phases in counterfactuals.items():
        for phase, figures in phases.items():
            where = "as the machine is" if phase == "as_is" else f"+{figures['busy_processes']} busy processes"
            print(f"| counterfactuals, {name}, {where}: p95 per decision (ms), first version → now | "
                  f"{figures['first']['p95_ms']:.1f} | {figures['now']['p95_ms']:.1f} | "
                  f"≤ {TARGET_COUNTERFACTUAL_P95_MS:.0f} ms | {mark[figures['pass']]} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "body"}
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "settings": settings,
                                    "http": http, "counterfactuals": counterfactuals}, indent=2), encoding="utf-8")
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
