"""Régua benchmark: how soon `regua lsp` shows diagnostics after a change to a 5,000-line policy.

The real server runs in a subprocess and is spoken to over stdio as an editor speaks to it (a
minimal JSON-RPC client below). The policy is gen_policy.py's, grown to at least 5,000 lines
(about 1,200 rules: the densest policy a person could write, every line a rule or a table row).
Each round sends one edit as an editor does (an incremental change of one range) after a pause,
and times the wait for the diagnostics of that version (wall), beside the CPU the server spent on
it (from /proc: on a shared machine the wall time is mostly waiting for a core). That covers
parsing only the items the edit touched (lsp/incremental.py), checking only the rules it affects
(lsp/checking.py) and the JSON over the pipe. A burst of keys typed 30 ms apart is timed from the
last key: the debounce, and the analyses the next key made stale being stopped.

Side by side, in this process, the same texts are checked incrementally as the server does, with
only the items parsed again but every rule checked (what the server did before lsp/checking.py),
and from scratch as `regua check` does (parse + check): wall and CPU (thread time) of each.

Run from the repository root:  make bench   (or  .venv/bin/python benchmarks/bench_editor.py)
Options: --rounds N (default 7), --lines N (default 5000).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import gen_policy  # noqa: E402

from regua.engine.builtins import default_environment  # noqa: E402
from regua.engine.compiler import check_source  # noqa: E402
from regua.lsp.analysis import analyse  # noqa: E402
from regua.lsp.checking import CheckMemo  # noqa: E402
from regua.lsp.incremental import ItemCache  # noqa: E402

NUMBER = re.compile(r"\d[\d_]*")  # the first number of a condition: its threshold
TARGET = 0.300  # seconds from the change to its diagnostics
REGUA = Path(sys.executable).with_name("regua")


class Client:
    """Just enough of an LSP client: requests, notifications, and a queue of what the server sends."""

    def __init__(self):
        self.process = subprocess.Popen([str(REGUA), "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, cwd=ROOT)
        self.messages: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.messages.put(json.loads(stream.read(length)))

    def send(self, method: str, params, request: bool = False):
        message = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            message["id"] = self.next_id
        body = json.dumps(message).encode("utf-8")
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()
        return message.get("id")

    def wait(self, match, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(deadline - time.monotonic(), 0.001))
            if match(message):
                return message

    def diagnostics(self, uri: str, version: int):
        return self.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                         and m["params"]["uri"] == uri and m["params"].get("version") == version)["params"]

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far (user + system): what a change costs it, whatever
        else the machine is doing (Linux; NaN elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        request = self.send("shutdown", None, request=True)
        self.wait(lambda m: m.get("id") == request, timeout=30)
        self.send("exit", None)
        self.process.wait(timeout=30)


def policy_of(lines: int) -> str:
    rules = 1000
    while (text := gen_policy.generate(rules)).count("\n") < lines:
        rules += 50
    return text


def edits(text: str, rounds: int):
    """(description, line index, new line) edits an author makes: change a rule's threshold, and
    add a line inside a rule near the top (every later item moves down one line)."""
    lines = text.split("\n")
    conditions = [i for i, line in enumerate(lines) if line.startswith("  when ") and any(c.isdigit() for c in line)]
    for k in range(rounds):
        index = conditions[(k * 97) % len(conditions)]
        number = NUMBER.search(lines[index])
        bumped = str(int(number.group().replace("_", "")) + k + 1)
        yield "change a rule's threshold", index, lines[index][:number.start()] + bumped + lines[index][number.end():]
    for k in range(rounds):
        index = conditions[k] + k  # each earlier round added one line above this one
        yield "add a comment line near the top", index, lines[conditions[k]] + "\n  # nota " + str(k)


def ranged(values: list[float]) -> str:
    """min-max (median), in ms."""
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{low * 1000:,.0f}-{high * 1000:,.0f} ({middle * 1000:,.0f})"


def timed(work) -> tuple[float, float]:
    """(wall, CPU of this thread) of work(), in seconds."""
    wall, cpu = time.perf_counter(), time.thread_time()
    work()
    return time.perf_counter() - wall, time.thread_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lines", type=int, default=5000)
    args = parser.parse_args()

    text = policy_of(args.lines)
    uri = (ROOT / "var" / "bench_editor.regua").resolve().as_uri()
    print(f"policy: {text.count(chr(10)):,} lines, {text.count('rule regra_'):,} rules; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; python {sys.version.split()[0]}")

    client = Client()
    client.send("initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": {}}, request=True)
    client.wait(lambda m: m.get("id") == 1)
    client.send("initialized", {})
    started = time.perf_counter()
    client.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "regua", "version": 1,
                                                          "text": text}})
    opened = client.diagnostics(uri, 1)
    cold = time.perf_counter() - started
    print(f"open (cold: imports, plugins, the first parse and check of every item): {cold * 1000:,.0f} ms, "
          f"{len(opened['diagnostics'])} diagnostics")

    env = default_environment()
    cache, memo = ItemCache(), CheckMemo()
    analyse(text, "bench.regua", env, cache, memo)  # this process's own editor copy, warmed as the server's
    items_only = ItemCache()  # what the server did before checking rule by rule: items parsed, all checked
    analyse(text, "bench.regua", env, items_only)
    rows: dict[str, dict[str, list[float]]] = {}
    current = text.split("\n")
    previous_text = text
    version = 1
    for what, index, new_line in edits(text, args.rounds):
        version += 1
        old_length = len(current[index])
        current[index:index + 1] = new_line.split("\n")
        change = {"range": {"start": {"line": index, "character": 0}, "end": {"line": index, "character": old_length}},
                  "text": new_line}
        edited = "\n".join(current)
        assert edited != previous_text, "an edit must change the text"
        previous_text = edited
        time.sleep(0.3)  # a pause before the edit: the server analyses it at once (no debounce)
        started, cpu_before = time.perf_counter(), client.cpu_seconds()
        client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                               "contentChanges": [change]})
        published = client.diagnostics(uri, version)
        row = rows.setdefault(what, {})
        row.setdefault("server wall", []).append(time.perf_counter() - started)
        row.setdefault("server CPU", []).append(client.cpu_seconds() - cpu_before)
        time.sleep(0.3)  # the index made after publishing (for hover): its CPU too
        row.setdefault("server CPU with index", []).append(client.cpu_seconds() - cpu_before)
        errors = [d for d in published["diagnostics"] if d["severity"] == 1]
        assert not errors, f"the edit broke the policy: {errors[:1]}"
        wall, cpu = timed(lambda text=edited: analyse(text, "bench.regua", env, cache, memo))
        row.setdefault("incremental wall", []).append(wall)
        row.setdefault("incremental CPU", []).append(cpu)
        wall, cpu = timed(lambda text=edited: analyse(text, "bench.regua", env, items_only))
        row.setdefault("items parsed, all checked wall", []).append(wall)
        row.setdefault("items parsed, all checked CPU", []).append(cpu)

        def from_scratch(text=edited):
            try:
                check_source(text, "bench.regua", env)
            except Exception:  # noqa: BLE001 - only the time of checking is wanted here
                pass
        wall, cpu = timed(from_scratch)
        row.setdefault("from scratch wall", []).append(wall)
        row.setdefault("from scratch CPU", []).append(cpu)

    # Typing: keys 30 ms apart on one rule's threshold; timed from the last key to its diagnostics.
    burst = rows.setdefault("typing 5 keys, 30 ms apart", {})
    conditions = [i for i, line in enumerate(current) if line.startswith("  when ") and NUMBER.search(line)]
    for k in range(args.rounds):
        index = conditions[(k * 53 + 11) % len(conditions)]
        number = NUMBER.search(current[index])
        time.sleep(0.3)
        cpu_before = client.cpu_seconds()
        for key in range(5):
            version += 1
            column = number.end() + key
            client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [
                {"range": {"start": {"line": index, "character": column}, "end": {"line": index, "character": column}},
                 "text": str((k + key) % 10)}]})
            current[index] = current[index][:column] + str((k + key) % 10) + current[index][column:]
            last = time.perf_counter()
            if key < 4:
                time.sleep(0.03)
        client.diagnostics(uri, version)
        burst.setdefault("server wall", []).append(time.perf_counter() - last)
        burst.setdefault("server CPU", []).append(client.cpu_seconds() - cpu_before)
    client.close()

    print(f"\nms, min-max (median) of {args.rounds} rounds; target {TARGET * 1000:.0f} ms wall from the change "
          "to its diagnostics (median)")
    columns = ["server wall", "server CPU", "server CPU with index", "incremental wall", "incremental CPU",
               "items parsed, all checked wall", "items parsed, all checked CPU", "from scratch wall",
               "from scratch CPU"]
    missed = False
    for what, row in rows.items():
        median = statistics.median(row["server wall"])
        missed |= median > TARGET
        print(f"\n{what}: {'PASS' if median <= TARGET else 'MISS'}")
        for column in columns:
            if column in row:
                print(f"  {column:<30} {ranged(row[column]):>14}")
        if "from scratch CPU" in row:
            incremental = statistics.median(row["incremental CPU"])
            print(f"  {'CPU saved':<30} {statistics.median(row['from scratch CPU']) / incremental:>13.1f}x"
                  "   from scratch / incremental (in process)")
            print(f"  {'':<30} {statistics.median(row['items parsed, all checked CPU']) / incremental:>13.1f}x"
                  "   items parsed, all checked / incremental")
    if "typing 5 keys, 30 ms apart" in rows:
        print("  (server CPU of a burst: all five keys; the analyses a newer key made stale stop early)")
    if missed:
        print("\nA MISS on a loaded machine may be the load: see the load average above and the CPU columns.")


if __name__ == "__main__":
    main()
