"""Console benchmark: how long the web console's pages take with 1,000,000 decisions in the log.

Run from the repository root:  .venv/bin/python benchmarks/bench_console.py [--decisions N]   (or make bench)

Builds a store with N decisions over 90 days (three policies, the three outcomes, a rare reason
code, one customer's document on every 1,000th decision and reviews waiting), kept in
var/bench/ and reused by the next run, then starts `regua serve` on it, signs in and times each
page over loopback, interleaved in rounds. The time is measured at the client, so it includes
HTTP on loopback: the server's own time is at most that. Target: every page's median <= 200 ms;
`GET /health` is timed in the same rounds as the floor of one request.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from serverkit import free_port  # noqa: E402

from regua.server.ids import _encode  # noqa: E402
from regua.server.store import DECISION_COLUMNS, Store  # noqa: E402

TARGET_MS = 200.0
CPF = "52998224725"
POLICIES = [("credito_b2c", "2026.11.1"), ("credito_b2b", "2026.11.1"), ("monitoramento_credito", "2026.11.1")]
REASONS = {"approve": ["APROVADO"], "review": ["SCORE_REGULAR", "ACIMA_DO_LIMITE"], "deny": ["SCORE_BAIXO", "NEGATIVADO"]}


def build(path: Path, count: int) -> None:
    """`count` decisions with ids spread over the 90 days before now, in one file."""
    Store(str(path))  # schema (migrations) first
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - 90 * 86_400_000
    step = (now_ms - start_ms) / count
    document_hash = hashlib.sha256(CPF.encode()).hexdigest()
    placeholders = ", ".join("?" for _ in DECISION_COLUMNS)
    with sqlite3.connect(path) as db:
        db.execute("pragma journal_mode = wal")
        db.execute("pragma synchronous = off")
        for chunk in range(0, count, 50_000):
            rows = []
            for i in range(chunk, min(count, chunk + 50_000)):
                policy, version = POLICIES[i % 3]
                outcome = ("approve", "approve", "review", "deny")[rng.randrange(4)]
                code = "RARO" if i % 100_000 == 50_000 else rng.choice(REASONS[outcome])
                body = json.dumps({"outputs": {"limite_parcela": "1800.00"}, "reasons": [
                    {"code": code, "message": "Motivo de teste", "rule": "r", "outcome": outcome, "line": 40}],
                    "trace": None, "connector_calls": []}, separators=(",", ":"))
                mine = i % 1000 == 0
                rows.append((_encode(int(start_ms + i * step) << 80 | rng.getrandbits(80)), policy, version, 1, outcome,
                             body, json.dumps({"cpf": CPF if mine else "00000000000"}), None,
                             document_hash if mine else None, "*********25" if mine else None, None, "bench", 1.5,
                             None))
            db.executemany(f"insert into decisions ({', '.join(DECISION_COLUMNS)}) values ({placeholders})", rows)
            db.commit()
            print(f"  {min(count, chunk + 50_000):,} decisions written", file=sys.stderr, end="\r")
    print(file=sys.stderr)


def store_for(count: int) -> Path:
    path = ROOT / "var" / "bench" / f"console-{count}.db"
    if path.exists():
        with sqlite3.connect(path) as db:
            try:
                if db.execute("select count(*) from decisions").fetchone()[0] == count:
                    return path
            except sqlite3.Error:
                pass
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"building a store with {count:,} decisions in {path} (reused by later runs)", file=sys.stderr)
    started = time.perf_counter()
    build(path, count)
    print(f"  built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def pages(client: httpx.Client) -> list[tuple[str, str]]:
    listing = client.get("/console/decisions").text
    newest = re.search(r'href="/console/decisions/(\w{26})"', listing).group(1)
    following = re.search(r'href="/console/decisions\?([^"]+)">Mais antigas', listing).group(1).replace("&amp;", "&")
    return [
        ("GET /health (floor)", "/health"),
        ("policies", "/console/policies"),
        ("policy source + diagnostics", "/console/policies/credito_b2c"),
        ("decisions, newest", "/console/decisions"),
        ("decisions, second page", "/console/decisions?" + following),
        ("decisions by policy+outcome", "/console/decisions?policy=credito_b2b&outcome=deny"),
        ("decisions by period", "/console/decisions?from=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 40 * 86400))
         + "&to=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 39 * 86400))),
        ("decisions by document", f"/console/decisions?document={CPF}"),
        ("decisions by rare reason", "/console/decisions?reason=RARO"),
        ("decisions by version", "/console/decisions?version=2026.11.1&policy=credito_b2c"),
        ("find by id", f"/console/decisions?id={newest}"),
        ("decision page", f"/console/decisions/{newest}"),
        ("reviews task list", "/console/reviews"),
        ("kpis", "/console/kpis"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    db = store_for(args.decisions)
    port = free_port()
    regua = Path(sys.executable).parent / "regua"
    server = subprocess.Popen([str(regua), "serve", "--sandbox", "--port", str(port), "--db", str(db), "--policies",
                               str(ROOT / "policies")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=30) as client:
            client.post("/console/login", data={"key": "regua-sandbox"})
            measured = pages(client)
            times: dict[str, list[float]] = {label: [] for label, _ in measured}
            for _label, path in measured:  # warm up: the first read of each index from disk
                assert client.get(path).status_code in (200, 303), path
            for _ in range(args.rounds):
                for label, path in measured:
                    started = time.perf_counter()
                    response = client.get(path)
                    times[label].append((time.perf_counter() - started) * 1000)
                    assert response.status_code in (200, 303), (path, response.status_code)
    finally:
        server.terminate()
        server.wait(30)
    floor = statistics.median(times["GET /health (floor)"])
    print(f"Console pages with {args.decisions:,} decisions in the log ({args.rounds} interleaved rounds, "
          f"time at the client over loopback)")
    print(f"{'page':34} {'median ms':>10} {'max ms':>8} {'÷ /health':>10} {'÷ target':>9}  verdict")
    missed = 0
    for label, values in times.items():
        median = statistics.median(values)
        verdict = "" if label.startswith("GET /health") else ("PASS" if median <= TARGET_MS else "MISS")
        missed += verdict == "MISS"
        print(f"{label:34} {median:10.1f} {max(values):8.1f} {median / floor:10.1f} {median / TARGET_MS:9.2f}  {verdict}")
    print(f"target: median <= {TARGET_MS:.0f} ms per page; {missed} miss(es)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
