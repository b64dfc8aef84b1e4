"""An open-loop load generator: requests leave on a fixed schedule, whatever the server does.

wrk is closed-loop: a connection sends its next request only after the previous answer, so a
server that stalls also stops the clock that would have measured the stall (coordinated
omission), and its paced mode (wrk/paced.lua) inherits that. Here request i is due at
start + i / rate; it goes out on an idle keep-alive connection (a new one when all are busy), and
its latency is counted from when it was *due*, not from when it could be sent — so a stall of the
server, or of this client, shows up in the latency of every request that should have left during
it. The same generator drives both servers of a comparison, so its own noise hits both alike.

Used by bench_experiments.py; stdlib only (asyncio), one HTTP/1.1 POST body for every request.
"""

from __future__ import annotations

import asyncio
import time


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def post(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


def _request_bytes(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


async def _run(ports: list[int], path: str, body: bytes, headers: dict, rate: float, seconds: float,
               max_connections: int) -> list[dict]:
    request = _request_bytes(path, body, headers)
    idle: dict[int, list[_Connection]] = {port: [] for port in ports}
    opened = dict.fromkeys(ports, 0)
    latencies: dict[int, list[float]] = {port: [] for port in ports}
    late_start: dict[int, list[float]] = {port: [] for port in ports}  # this client's own lag
    errors = dict.fromkeys(ports, 0)
    tasks = set()

    async def one(port: int, due: float) -> None:
        connection = idle[port].pop() if idle[port] else None
        if connection is None:
            if opened[port] >= max_connections:
                errors[port] += 1  # more requests in flight than allowed: a failure, not a wait
                return
            opened[port] += 1
            connection = _Connection(*await asyncio.open_connection("127.0.0.1", port))
        late_start[port].append(time.perf_counter() - due)
        try:
            status = await connection.post(request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors[port] += 1
            opened[port] -= 1
            connection.writer.close()
            return
        latencies[port].append(time.perf_counter() - due)
        if status != 200:
            errors[port] += 1
        idle[port].append(connection)

    count = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # Every server gets a request due at this instant, in turns: neither is always sent first.
        for port in ports if i % 2 == 0 else ports[::-1]:
            task = asyncio.ensure_future(one(port, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    elapsed = time.perf_counter() - start
    for connections in idle.values():
        for connection in connections:
            connection.writer.close()

    def pct(values, p):
        return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000 if values else float("nan")

    out = []
    for port in ports:
        mine, lag = sorted(latencies[port]), sorted(late_start[port])
        out.append({"requests": len(mine), "errors": errors[port], "seconds": elapsed, "rps": len(mine) / elapsed,
                    "target_rps": rate, "connections": opened[port],
                    **{f"p{p}_ms": round(pct(mine, p), 3) for p in (50, 90, 99)},
                    "max_ms": round(mine[-1] * 1000, 3) if mine else float("nan"),
                    "client_lag_p99_ms": round(pct(lag, 99), 3)})
    return out


def run(port: int, body: bytes, rate: float, seconds: float, *, path: str = "/evaluate",
        headers: dict | None = None, max_connections: int = 256) -> dict:
    """`rate` requests per second for `seconds`, open loop; latency percentiles from the due time."""
    return asyncio.run(_run([port], path, body, headers or {}, rate, seconds, max_connections))[0]


def run_together(ports: list[int], body: bytes, rate: float, seconds: float, *, path: str = "/evaluate",
                 headers: dict | None = None, max_connections: int = 256) -> list[dict]:
    """The same schedule for every server at once: at each due instant, one request to each. A
    burst of another process's load then hits all of them in the same milliseconds, not in
    different rounds; one result per port."""
    return asyncio.run(_run(ports, path, body, headers or {}, rate, seconds, max_connections))
