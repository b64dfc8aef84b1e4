"""Processes, /proc readings and wrk for the HTTP benchmark (bench_server.py)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from contextlib import closing
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
AUTH = "Bearer regua-sandbox"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}  # wrk's latency units, to ms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
    with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=10)) as conn:
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"Content-Type": "application/json", "Authorization": AUTH})
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None


def decision_backlog(port: int) -> int | None:
    """Decisions Régua has not written yet (GET /ready answers 503 when too many); None for bare."""
    status, body = request(port, "GET", "/ready")
    return body.get("decision_backlog") if status in (200, 503) else None


def tree(pid: int) -> list[int]:
    """A process and all its descendants (with workers, uvicorn's supervisor is their parent)."""
    try:
        children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                    for child in (task / "children").read_text().split()]
    except OSError:  # exited meanwhile
        return []
    return [pid] + [p for child in children for p in tree(child)]


def _proc(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return ""


def rss_mb(pid: int) -> float:
    found = (re.search(r"^VmRSS:\s+(\d+) kB", _proc(p, "status"), re.M) for p in tree(pid))
    return sum(int(m.group(1)) for m in found if m) / 1024


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU time of the process tree (or of the process alone). The fields after the
    command name ")" start at field 3 (state), so utime and stime (fields 14 and 15) are items 11
    and 12."""
    stats = (_proc(p, "stat").rsplit(")", 1)[-1].split() for p in (tree(pid) if children else [pid]))
    return sum(int(f[11]) + int(f[12]) for f in stats if len(f) > 12) / os.sysconf("SC_CLK_TCK")


class Server:
    """A server subprocess in its own session: ready when `check()` passes, stopped with SIGTERM."""

    def __init__(self, name: str, argv: list[str], env: dict, port: int, check, log: Path, timeout: float = 120):
        self.name, self.argv, self.env, self.port, self.check, self.log = name, argv, env, port, check, log
        self.timeout, self.process = timeout, None
        self.responses = 0  # answered under wrk, warm-ups included

    def __enter__(self) -> "Server":
        with open(self.log, "wb") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
                                            start_new_session=True)
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{self.name} did not start (exit code {self.process.poll()}); its output:\n"
                                     + self.log.read_text(errors="replace")[-3000:])
                try:
                    self.check(self.port)
                    return self
                except (OSError, http.client.HTTPException):  # not listening yet
                    time.sleep(0.1)
        except BaseException:  # a failed check or Ctrl-C: `with` does not call __exit__ for us
            self.stop()
            raise

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


def wrk(server: Server, args, seconds: float, connections: int, script: str, *extra: str, body: Path | None = None
        ) -> dict:
    """wrk against `server`'s POST /evaluate, the request body read from `body` (else args.body)."""
    cmd = ["wrk", f"-t{min(args.threads, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
           "--timeout", "10s", "-s", str(HERE / "wrk" / script), f"http://127.0.0.1:{server.port}/evaluate",
           "--", str(body or args.body), AUTH, *extra]
    cpu = cpu_seconds(server.process.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(server.process.pid) - cpu
    result = parse_wrk(out)
    server.responses += result["requests"]
    # The server's own CPU cost per request depends less than req/s on what else runs on the
    # machine; and cores < 1 at peak (one worker) means the server did not get a whole core.
    result.update(cpu_us_per_request=round(cpu * 1e6 / max(result["requests"], 1), 1),
                  cpu_cores=round(cpu / result["seconds"], 2))
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


# A policy without connectors: one rule, one output (issue 14's "small table policy" for HTTP).
PING_POLICY = """policy ping kind credit

input
  valor: money

rule alto
  when valor > 1_000_000 BRL
  review "ALTO" "valor alto"

default approve

output teto = 1_000_000 BRL
"""
