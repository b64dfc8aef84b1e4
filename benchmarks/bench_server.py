"""HTTP benchmark: Régua's POST /evaluate (decision log on) against a bare Litestar + msgspec app.

Run from the repository root:  .venv/bin/python benchmarks/bench_server.py [--help]   (or make bench)
Needs wrk (apt-get install wrk). Both servers run under uvicorn with the same options; wrk drives
them in interleaved rounds. See benchmarks/README.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import gen_policies  # noqa: E402
from serverkit import PING_POLICY, Server, decision_backlog, free_port, request, rss_mb, wrk  # noqa: E402

BIN = Path(sys.executable).parent
B2C_INPUT = {"cpf": "529.982.247-25", "data_nascimento": "1990-05-20", "renda_mensal": "6000.00",
             "valor_compra": "1200.00", "parcelas": 6}
# Issue 14's targets: peak throughput of Régua / bare, at least, for credito_b2b (two lookups, the
# decision log on) and for a policy without connectors (serverkit.PING_POLICY); p99 at half the
# credito_b2b peak, open loop, below this in every round.
TARGET_RATIO = 0.60
TARGET_RATIO_NO_CONNECTOR = 0.80
TARGET_P99_HALF_MS = 10.0
TARGET_RSS_MB = 150.0  # Régua with 100 policies loaded, at most


def checker(policy: str, data: dict, outcome: str | None = "approve"):
    """A correctness check: 200, and the expected outcome (None for the bare app and for B2C)."""
    def check(port: int) -> None:
        status, body = request(port, "POST", "/evaluate", {"policy": policy, "input": data})
        if status != 200 or (outcome and body.get("outcome") != outcome):
            raise SystemExit(f"POST /evaluate ({policy}) answered {status} {body}; expected 200, outcome {outcome}")
    return check


def regua_server(workdir: Path, policies: Path, workers: int, check) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGUA_", "PROMETHEUS_"))}
    env["REGUA_LOG_LEVEL"] = "warning"  # access log is off by default
    port = free_port()
    argv = [str(BIN / "regua"), "serve", "--sandbox", "--db", str(workdir / "regua.db"), "--policies", str(policies),
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return Server("regua", argv, env, port, check, workdir / "regua.log")


def bare_server(workdir: Path, workers: int) -> Server:
    port = free_port()
    argv = [sys.executable, str(HERE / "bare_app.py"), "--port", str(port), "--workers", str(workers)]
    return Server("bare", argv, dict(os.environ), port, checker("credito_b2b", {}, None), workdir / "bare.log")


class Load:
    """One server under one request body, measured under its own name (the same Régua server is
    measured with credito_b2b and with the policy without connectors)."""

    def __init__(self, name: str, server: Server, body: Path):
        self.name, self.server, self.port, self.body = name, server, server.port, body


def interleaved(servers: list, args, run_one) -> dict[str, list[dict]]:
    """`rounds` rounds, the order of the servers alternating, so drift hits both alike."""
    results: dict[str, list[dict]] = {s.name: [] for s in servers}
    for index in range(args.rounds):
        for server in servers if index % 2 == 0 else servers[::-1]:
            result = run_one(server)
            # Read at once: rows still queued were not paid for within the run (see the README).
            result["backlog_after"] = decision_backlog(server.port)
            results[server.name].append(result)
            print(f"  round {index + 1} {server.name:5} {result['rps']:9.1f} req/s  p50 {result['p50_ms']:7.2f} ms"
                  f"  p99 {result['p99_ms']:7.2f} ms  server CPU {result['cpu_us_per_request']:6.0f} µs/request,"
                  f" {result['cpu_cores']:.2f} cores", flush=True)
    return results


def peak_phase(loads: list[Load], args) -> dict[str, list[dict]]:
    def run_one(load: Load):
        wrk(load.server, args, args.warmup, args.connections, "post.lua", body=load.body)
        return wrk(load.server, args, args.duration, args.connections, "post.lua", body=load.body)
    return interleaved(loads, args, run_one)


def paced_phase(servers: list[Server], args, rate: float) -> dict[str, list[dict]]:
    """Every run at `rate` req/s; each warm-up also calibrates the delay for that server."""
    conns = args.paced_connections
    delays = {s.name: conns * 1000 / rate for s in servers}  # ms; refined below

    def run_one(server):
        # rate = conns * 1000 / (delay + overhead): measure the overhead, then aim again.
        warm = wrk(server, args, args.warmup, conns, "paced.lua", f"{delays[server.name]:.3f}")
        overhead = conns * 1000 / max(warm["rps"], 1) - delays[server.name]
        delays[server.name] = max(conns * 1000 / rate - overhead, 0.5)
        result = wrk(server, args, args.duration, conns, "paced.lua", f"{delays[server.name]:.3f}")
        result["delay_ms"] = round(delays[server.name], 3)
        return result
    return interleaved(servers, args, run_one)


def rss_phase(workdir: Path, args) -> dict:
    """RSS of fresh servers after each policy has been evaluated a few times."""
    b2b = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
    many = workdir / "many"
    names = gen_policies.generate(many, 100)
    figures = {}
    for label, folder, policies in (("bundled", ROOT / "policies", ["credito_b2b"]), ("many", many, names)):
        run = workdir / f"rss-{label}"
        run.mkdir()
        with regua_server(run, folder, args.workers, checker(policies[0], b2b)) as server:
            for _ in range(3):
                for policy in policies:
                    checker(policy, b2b)(server.port)
                checker("credito_b2c", B2C_INPUT, outcome=None)(server.port)
            time.sleep(0.5)  # let the decision log flush
            figures[label] = {"policies": len(policies) + 1, "rss_mb": round(rss_mb(server.process.pid), 1)}
        print(f"  {label}: {figures[label]['policies']} policies, RSS {figures[label]['rss_mb']} MB", flush=True)
    return figures


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summarize(peak, paced, rate, rss, after_load) -> tuple[dict, dict]:
    """The medians over the rounds, and PASS/MISS per target."""
    figures = {f"{phase}_{name}_{key}": round(median(runs[name], key), 2)
               for phase, runs in (("peak", peak), ("paced", paced)) for name in ("bare", "regua")
               for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "cpu_cores")}
    figures.update(ratio=round(figures["peak_regua_rps"] / figures["peak_bare_rps"], 3), paced_rate_asked=round(rate),
                   cpu_ratio=round(figures["peak_bare_cpu_us_per_request"]
                                   / figures["peak_regua_cpu_us_per_request"], 3),
                   rss_bundled_mb=rss["bundled"]["rss_mb"], rss_many_mb=rss["many"]["rss_mb"],
                   **{f"{phase}_regua_backlog": round(median(runs["regua"], "backlog_after"))
                      for phase, runs in (("peak", peak), ("paced", paced))},
                   **{f"rss_after_load_{name}_mb": mb for name, mb in after_load.items()})
    no_connector = median(peak["regua_ping"], "rps")
    figures.update(peak_regua_ping_rps=round(no_connector, 2),
                   peak_regua_ping_cpu_us_per_request=round(median(peak["regua_ping"], "cpu_us_per_request"), 2),
                   ratio_no_connector=round(no_connector / figures["peak_bare_rps"], 3),
                   paced_regua_p99_ms_worst=round(max(r["p99_ms"] for r in paced["regua"]), 2))
    verdict = {"ratio": figures["ratio"] >= TARGET_RATIO,
               "ratio_no_connector": figures["ratio_no_connector"] >= TARGET_RATIO_NO_CONNECTOR,
               "p99_half_peak": figures["paced_regua_p99_ms_worst"] < TARGET_P99_HALF_MS,
               "rss_100_policies": figures["rss_many_mb"] <= TARGET_RSS_MB}
    return figures, verdict


def print_table(args, f: dict, verdict: dict, rss: dict, recorded: dict, peak_runs: list[dict]) -> None:
    mark = {True: "PASS", False: "MISS", None: ""}

    def both(label: str, phase: str, key: str, spec: str, target: str = "", ok: bool | None = None) -> tuple:
        return label, format(f[f"{phase}_bare_{key}"], spec), format(f[f"{phase}_regua_{key}"], spec), target, mark[ok]

    rows = [both("peak throughput, credito_b2b (req/s)", "peak", "rps", ",.0f",
                 f"Régua/bare ≥ {TARGET_RATIO:.2f}: **{f['ratio']:.2f}**", verdict["ratio"]),
            ("peak throughput, policy without connectors (req/s)", format(f["peak_bare_rps"], ",.0f"),
             format(f["peak_regua_ping_rps"], ",.0f"),
             f"Régua/bare ≥ {TARGET_RATIO_NO_CONNECTOR:.2f}: **{f['ratio_no_connector']:.2f}**",
             mark[verdict["ratio_no_connector"]]),
            both("p50 at peak (ms)", "peak", "p50_ms", ".2f"),
            both("p99 at peak (ms)", "peak", "p99_ms", ".2f"),
            both("server CPU per request at peak (µs)", "peak", "cpu_us_per_request", ",.0f",
                 f"bare/Régua: {f['cpu_ratio']:.2f}"),
            both("server CPU use at peak (cores)", "peak", "cpu_cores", ".2f"),
            ("decisions not yet written when a peak run ends", "", f"{f['peak_regua_backlog']:,}", "", ""),
            both(f"paced: asked {f['paced_rate_asked']:,} req/s (½ Régua peak), got", "paced", "rps", ",.0f"),
            both("p50 at ½ peak (ms)", "paced", "p50_ms", ".2f"),
            both("p99 at ½ peak (ms), median of the rounds", "paced", "p99_ms", ".2f"),
            ("p99 at ½ peak (ms), worst round", "", format(f["paced_regua_p99_ms_worst"], ".2f"),
             f"< {TARGET_P99_HALF_MS:.0f} ms in every round", mark[verdict["p99_half_peak"]]),
            ("decisions not yet written when a ½-peak run ends", "", f"{f['paced_regua_backlog']:,}", "", ""),
            both("RSS after the load (MB)", "rss_after_load", "mb", ".1f"),
            (f"RSS, {rss['bundled']['policies']} bundled policies (MB)", "", f"{f['rss_bundled_mb']:.1f}", "", ""),
            (f"RSS, {rss['many']['policies']} policies (MB)", "", f"{f['rss_many_mb']:.1f}",
             f"≤ {TARGET_RSS_MB:.0f} MB", mark[verdict["rss_100_policies"]])]
    print(f"\n{args.workers} uvicorn worker(s) per server; wrk -t{args.threads} -c{args.connections} at peak, "
          f"-c{args.paced_connections} paced; medians of {args.rounds} rounds × {args.duration:g} s. "
          f"Régua's decision log holds {recorded['decisions']:,} decisions for {recorded['responses']:,} "
          "responses counted by wrk.\n")
    print("| figure | bare Litestar + msgspec | Régua | target | result |\n|---|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    behind = [format(r["backlog_after"], ",") for r in peak_runs if (r["backlog_after"] or 0) > r["requests"] / 10]
    if behind:
        print(f"\nNote: in {len(behind)} of {len(peak_runs)} peak runs Régua's decision log fell behind (backlog "
              f"{', '.join(behind)} decisions): those req/s leave out the cost of writing them.")


def run_text(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT).stdout.strip()


def environment() -> dict:
    found = {name: metadata.version(name) for name in ("litestar", "msgspec", "uvicorn", "uvloop", "httptools")}
    # Which code was measured: the commit, and the engine or server files changed since.
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.platform(),
            "wrk": run_text("wrk", "-v").split("\n")[0], **found,
            "commit": run_text("git", "rev-parse", "--short", "HEAD"),
            "uncommitted": run_text("git", "status", "--porcelain", "--", "server", "engine", "dsl", "plugins",
                                    "policies").splitlines()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes per server (1)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed wrk run (10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per phase (3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections at peak (16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load before each run (2)")
    parser.add_argument("--paced-connections", type=int, default=50, help="wrk connections when paced (50)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "server.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_server.py needs the wrk load generator: sudo apt-get install wrk (Debian/Ubuntu), "
              "brew install wrk (macOS)", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    if load > 0.5:  # the servers and wrk share the CPUs with whatever else runs
        print(f"warning: load average {load:.2f} before starting; other processes will skew the figures")
    order = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="regua-bench-") as tmp:
        workdir = Path(tmp)
        args.body = workdir / "body.json"
        args.body.write_text(json.dumps({"policy": "credito_b2b", "input": order}), encoding="utf-8")
        ping_body = workdir / "ping.json"
        ping_body.write_text(json.dumps({"policy": "ping", "input": {"valor": 10}}), encoding="utf-8")
        policies = workdir / "policies"  # the bundled policies, and the one without connectors
        shutil.copytree(ROOT / "policies", policies)
        (policies / "ping.regua").write_text(PING_POLICY, encoding="utf-8")
        (workdir / "main").mkdir()
        regua = regua_server(workdir / "main", policies, args.workers, checker("credito_b2b", order))
        with bare_server(workdir, args.workers) as bare, regua:  # each passes its correctness check first
            checker("ping", {"valor": 10})(regua.port)
            servers = [bare, regua]
            loads = [Load("bare", bare, args.body), Load("regua", regua, args.body),
                     Load("regua_ping", regua, ping_body)]
            print(f"peak throughput: wrk -c{args.connections}, {args.rounds} rounds × {args.duration:g} s "
                  "(regua: credito_b2b; regua_ping: the policy without connectors)", flush=True)
            peak = peak_phase(loads, args)
            rate = median(peak["regua"], "rps") / 2
            print(f"paced at {rate:,.0f} req/s (half Régua's peak), wrk -c{args.paced_connections}", flush=True)
            paced = paced_phase(servers, args, rate)
            after_load = {s.name: round(rss_mb(s.process.pid), 1) for s in servers}
        # The decision log was on: every response should be a row once the server has stopped (and
        # flushed). Requests in flight when wrk stops are answered and recorded but not counted by wrk.
        with closing(sqlite3.connect(workdir / "main" / "regua.db")) as db:
            recorded = {"decisions": db.execute("select count(*) from decisions").fetchone()[0],
                        "responses": regua.responses}
        print("RSS of fresh Régua servers, each policy evaluated 3 times:", flush=True)
        rss = rss_phase(workdir, args)
    figures, verdict = summarize(peak, paced, rate, rss, after_load)
    print_table(args, figures, verdict, rss, recorded, peak["regua"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "body"}
    targets = {"ratio_min": TARGET_RATIO, "ratio_no_connector_min": TARGET_RATIO_NO_CONNECTOR,
               "p99_half_peak_ms_max_every_round": TARGET_P99_HALF_MS,
               "rss_100_policies_mb_max": TARGET_RSS_MB}
    args.out.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "settings": settings,
        "environment": {**environment(), "load_average_at_start": round(load, 2)},
        "figures": figures, "targets": targets, "verdict": verdict, "decision_log": recorded,
        "rss": rss, "runs": {"peak": peak, "paced": paced}}, indent=2), encoding="utf-8")
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
