"""HTTP benchmark: Régua's POST /evaluate (decision log on) against a bare Litestar + msgspec app.

Run from the repository root:  .venv/bin/python benchmarks/bench_server.py   (part of `make bench`)
Options: --workers N (1), --duration S (10), --rounds N (3), --connections N (16), --threads N (1),
--warmup S (2), --paced-connections N (50). Needs wrk (apt-get install wrk).
Both servers run under uvicorn with the same options; wrk drives them in interleaved rounds.
See benchmarks/README.md for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import gen_policies  # noqa: E402

BIN = Path(sys.executable).parent
AUTH = "Bearer regua-sandbox"
B2C_INPUT = {"cpf": "529.982.247-25", "data_nascimento": "1990-05-20", "renda_mensal": "6000.00",
             "valor_compra": "1200.00", "parcelas": 6}
TARGET_RATIO = 0.80  # Régua peak throughput / bare peak throughput, at least
TARGET_P99_HALF_MS = 20.0  # Régua p99 at half its peak rate, below
TARGET_RSS_MB = 150.0  # Régua with 100 policies loaded, at most
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}  # wrk's latency units, to ms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, path: str, body: dict, timeout: float = 10.0) -> tuple[int, dict | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", "Authorization": AUTH})
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


def tree_rss_mb(pid: int) -> float:
    """VmRSS of a process and all its descendants (uvicorn's workers are children of its supervisor)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:  # the command name may hold spaces: the parent pid is the second field after ")"
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(parents.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total_kb += int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) if "VmRSS" in status else 0
    return total_kb / 1024


class Server:
    """A server subprocess in its own session: ready when `check()` passes, stopped with SIGTERM."""

    def __init__(self, name: str, argv: list[str], env: dict, port: int, check, log: Path, timeout: float = 120):
        self.name, self.argv, self.env, self.port, self.check, self.log = name, argv, env, port, check, log
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.responses = 0  # answered under wrk, warm-ups included

    def __enter__(self) -> "Server":
        with open(self.log, "wb") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
                                            start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:  # a failed check or Ctrl-C: `with` will not call __exit__ for us
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                self.fail(f"exited with code {self.process.returncode}")
            try:
                return self.check(self.port)
            except (OSError, http.client.HTTPException):  # not listening yet
                if time.monotonic() > deadline:
                    self.fail(f"not ready after {self.timeout:.0f} s")
                time.sleep(0.1)

    def fail(self, why: str):
        self.stop()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{self.name}: {why}\n--- last lines of its output ---\n{tail}")

    def rss_mb(self) -> float:
        return tree_rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # graceful: Régua flushes its decision log
        try:
            self.process.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the whole session: workers too
            self.process.wait()

    def __exit__(self, *exc) -> None:
        self.stop()


def check_regua(policy: str, data: dict, outcome: str | None = "approve"):
    def check(port: int) -> None:
        status, body = post(port, "/evaluate", {"policy": policy, "input": data})
        if status != 200 or (outcome and body.get("outcome") != outcome):
            raise SystemExit(f"Régua answered {status} {body} for {policy}; expected 200 and outcome {outcome}")
    return check


def check_bare(port: int) -> None:
    status, body = post(port, "/evaluate", {"policy": "credito_b2b", "input": {}})
    if status != 200:
        raise SystemExit(f"the bare app answered {status} {body}; expected 200")


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
    return Server("bare", argv, dict(os.environ), port, check_bare, workdir / "bare.log")


def wrk(server: Server, args, seconds: float, connections: int, script: str, *extra: str) -> dict:
    cmd = ["wrk", f"-t{min(args.threads, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
           "--timeout", "10s", "-s", str(HERE / "wrk" / script), f"http://127.0.0.1:{server.port}/evaluate",
           "--", str(args.body), AUTH, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = parse_wrk(out)
    server.responses += result["requests"]
    if result["non_2xx"]:
        raise SystemExit(f"{server.name}: {result['non_2xx']} non-2xx responses under load\n{out}")
    return result


def parse_wrk(out: str) -> dict:
    latency = {f"p{p}_ms": float(v) * _UNITS[u]
               for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)}
    requests, elapsed, unit = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out).groups()
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), **latency,
            "requests": int(requests), "seconds": float(elapsed) * _UNITS[unit] / 1000,
            "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}


def interleaved(servers: list[Server], args, run_one) -> dict[str, list[dict]]:
    """`rounds` rounds, the order of the servers alternating, so drift hits both alike."""
    results: dict[str, list[dict]] = {s.name: [] for s in servers}
    for index in range(args.rounds):
        for server in servers if index % 2 == 0 else servers[::-1]:
            result = run_one(server)
            results[server.name].append(result)
            print(f"  round {index + 1} {server.name:5} {result['rps']:9.1f} req/s  p50 {result['p50_ms']:7.2f} ms"
                  f"  p99 {result['p99_ms']:7.2f} ms", flush=True)
    return results


def peak_phase(servers: list[Server], args) -> dict[str, list[dict]]:
    def run_one(server):
        wrk(server, args, args.warmup, args.connections, "post.lua")
        return wrk(server, args, args.duration, args.connections, "post.lua")
    return interleaved(servers, args, run_one)


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
        with regua_server(run, folder, args.workers, check_regua(policies[0], b2b)) as server:
            for _ in range(3):
                for policy in policies:
                    check_regua(policy, b2b)(server.port)
                check_regua("credito_b2c", B2C_INPUT, outcome=None)(server.port)
            time.sleep(0.5)  # let the decision log flush
            figures[label] = {"policies": len(policies) + 1, "rss_mb": round(server.rss_mb(), 1)}
        print(f"  {label}: {figures[label]['policies']} policies, RSS {figures[label]['rss_mb']} MB", flush=True)
    return figures


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(args, peak, paced, rate, rss, after_load, recorded) -> dict:
    b_rps, r_rps = median(peak["bare"], "rps"), median(peak["regua"], "rps")
    ratio = r_rps / b_rps
    p99_half = median(paced["regua"], "p99_ms")
    verdict = {"throughput_ratio": ratio >= TARGET_RATIO, "p99_half_peak": p99_half < TARGET_P99_HALF_MS,
               "rss_100_policies": rss["many"]["rss_mb"] <= TARGET_RSS_MB}
    mark = {True: "PASS", False: "MISS"}
    rows = [
        ("peak throughput (req/s)", f"{b_rps:,.0f}", f"{r_rps:,.0f}", f"Régua/bare ≥ {TARGET_RATIO:.2f}: {ratio:.2f}",
         mark[verdict["throughput_ratio"]]),
        ("p50 at peak (ms)", f"{median(peak['bare'], 'p50_ms'):.2f}", f"{median(peak['regua'], 'p50_ms'):.2f}", "", ""),
        ("p99 at peak (ms)", f"{median(peak['bare'], 'p99_ms'):.2f}", f"{median(peak['regua'], 'p99_ms'):.2f}", "", ""),
        (f"paced rate, asked {rate:,.0f} req/s (½ Régua peak)", f"{median(paced['bare'], 'rps'):,.0f}",
         f"{median(paced['regua'], 'rps'):,.0f}", "", ""),
        ("p50 at ½ peak (ms)", f"{median(paced['bare'], 'p50_ms'):.2f}", f"{median(paced['regua'], 'p50_ms'):.2f}", "", ""),
        ("p99 at ½ peak (ms)", f"{median(paced['bare'], 'p99_ms'):.2f}", f"{p99_half:.2f}",
         f"< {TARGET_P99_HALF_MS:.0f} ms", mark[verdict["p99_half_peak"]]),
        ("RSS after the load (MB)", f"{after_load['bare']:.1f}", f"{after_load['regua']:.1f}", "", ""),
        (f"RSS, {rss['bundled']['policies']} bundled policies (MB)", "", f"{rss['bundled']['rss_mb']:.1f}", "", ""),
        (f"RSS, {rss['many']['policies']} policies (MB)", "", f"{rss['many']['rss_mb']:.1f}",
         f"≤ {TARGET_RSS_MB:.0f} MB", mark[verdict["rss_100_policies"]]),
    ]
    print(f"\n{args.workers} worker(s) each; wrk -t{args.threads} -c{args.connections} (peak), "
          f"-c{args.paced_connections} (paced); {args.rounds} rounds × {args.duration:g} s, medians; "
          f"decisions recorded by Régua: {recorded['decisions']:,} for {recorded['responses']:,} responses\n")
    print("| figure | bare Litestar + msgspec | Régua | target | result |\n|---|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return {"summary": {"bare_peak_rps": b_rps, "regua_peak_rps": r_rps, "ratio": ratio,
                        "regua_p99_half_peak_ms": p99_half, "paced_rate_asked": rate},
            "targets": {"throughput_ratio_min": TARGET_RATIO, "p99_half_peak_ms_max": TARGET_P99_HALF_MS,
                        "rss_100_policies_mb_max": TARGET_RSS_MB},
            "verdict": verdict, "table": [dict(zip(("figure", "bare", "regua", "target", "result"), r)) for r in rows]}


def versions() -> dict:
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    found = {name: metadata.version(name) for name in ("litestar", "msgspec", "uvicorn", "uvloop", "httptools")}
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.platform(),
            "wrk": wrk_version.strip(), **found}


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
        print("bench_server.py needs the wrk load generator: sudo apt-get install wrk "
              "(Debian/Ubuntu), or brew install wrk (macOS)", file=sys.stderr)
        return 2
    order = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="regua-bench-") as tmp:
        workdir = Path(tmp)
        args.body = workdir / "body.json"
        args.body.write_text(json.dumps({"policy": "credito_b2b", "input": order}), encoding="utf-8")
        (workdir / "main").mkdir()
        regua = regua_server(workdir / "main", ROOT / "policies", args.workers, check_regua("credito_b2b", order))
        with bare_server(workdir, args.workers) as bare, regua:
            servers = [bare, regua]  # both passed their correctness check on the way up
            print(f"peak throughput: wrk -c{args.connections}, {args.rounds} rounds × {args.duration:g} s", flush=True)
            peak = peak_phase(servers, args)
            rate = median(peak["regua"], "rps") / 2
            print(f"paced at {rate:,.0f} req/s (half Régua's peak), wrk -c{args.paced_connections}", flush=True)
            paced = paced_phase(servers, args, rate)
            after_load = {s.name: round(s.rss_mb(), 1) for s in servers}
        # Every response Régua sent under load, and the checks, should be a row in the decision log.
        # (requests still in flight when wrk stops are answered and recorded but not counted by wrk).
        with sqlite3.connect(workdir / "main" / "regua.db") as db:
            recorded = {"decisions": db.execute("select count(*) from decisions").fetchone()[0],
                        "responses": regua.responses}
        print("RSS of fresh Régua servers, each policy evaluated 3 times:", flush=True)
        rss = rss_phase(workdir, args)
    results = report(args, peak, paced, rate, rss, after_load, recorded)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "body"}
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "settings": settings,
                                    "versions": versions(), **results, "peak": peak, "paced": paced,
                                    "rss": rss, "rss_after_load_mb": after_load, "decision_log": recorded},
                                   indent=2), encoding="utf-8")
    print(f"\nresults written to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
