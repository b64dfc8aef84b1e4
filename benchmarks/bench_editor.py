"""Régua benchmark: how soon `regua lsp` shows diagnostics after a change to a 5,000-line policy.

The real server runs in a subprocess and is spoken to over stdio as an editor speaks to it (a
minimal JSON-RPC client below). The policy is gen_policy.py's, grown to at least 5,000 lines
(about 1,200 rules: the densest policy a person could write, every line a rule or a table row).
Each round sends one edit as an editor does (an incremental change of one range) and times the
wait for the diagnostics of that version: the server's debounce, its parsing (only the items the
edit touched, lsp/incremental.py), the whole check, and the JSON over the pipe. Side by side, in
this process, the same text is checked from scratch as `regua check` does (parse + check), the
cost the item-by-item parsing saves.

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
    print(f"open (cold: imports, plugins, the first parse of every item): {cold * 1000:,.0f} ms, "
          f"{len(opened['diagnostics'])} diagnostics")

    env = default_environment()
    results: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    whole: list[float] = []
    current = text.split("\n")
    previous_text = text
    version = 1
    for what, index, new_line in edits(text, args.rounds):
        version += 1
        old_length = len(current[index])
        current[index:index + 1] = new_line.split("\n")
        change = {"range": {"start": {"line": index, "character": 0}, "end": {"line": index, "character": old_length}},
                  "text": new_line}
        assert "\n".join(current) != previous_text, "an edit must change the text"
        previous_text = "\n".join(current)
        started, cpu_before = time.perf_counter(), client.cpu_seconds()
        client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                               "contentChanges": [change]})
        published = client.diagnostics(uri, version)
        results.setdefault(what, []).append(time.perf_counter() - started)
        time.sleep(0.3)  # let the index made after publishing finish: its CPU belongs to this round
        cpu.setdefault(what, []).append(client.cpu_seconds() - cpu_before)
        errors = [d for d in published["diagnostics"] if d["severity"] == 1]
        assert not errors, f"the edit broke the policy: {errors[:1]}"
        started = time.perf_counter()
        try:
            check_source("\n".join(current), "bench.regua", env)
        except Exception:  # noqa: BLE001 - only the time of checking is wanted here
            pass
        whole.append(time.perf_counter() - started)
    client.close()

    baseline = statistics.median(whole)
    print(f"\n{'after the change':<34} {'median':>9} {'max':>9}   vs a from-scratch parse + check in process;"
          " server CPU per change")
    missed = False
    for what, times in results.items():
        median = statistics.median(times)
        verdict = "PASS" if median <= TARGET else "MISS"
        missed |= median > TARGET
        print(f"{what:<34} {median * 1000:>7,.0f} ms {max(times) * 1000:>6,.0f} ms   "
              f"{median / baseline:.2f}x   {verdict} (target {TARGET * 1000:.0f} ms);   "
              f"CPU {statistics.median(cpu[what]) * 1000:,.0f} ms (with the index)")
    print(f"{'from-scratch parse + check':<34} {baseline * 1000:>7,.0f} ms {max(whole) * 1000:>6,.0f} ms   1.00x")
    if missed:
        print("\nA MISS on a loaded machine may be the load: see the load average above and the ratio.")


if __name__ == "__main__":
    main()
