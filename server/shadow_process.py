"""Shadow challengers evaluated in a child process, so they never take the server's GIL or core.

The experiment worker thread (server.experiment_worker.ExperimentWorker) used to evaluate shadows itself.
A thread of the serving process shares its GIL: while it evaluates, an answer that is ready waits
(up to the interpreter's 5 ms switch interval), and on a 2-core machine its CPU is the server's.
Here the server hands over each decision as the plain strings it already has and writes anyway —
the answer's body (its outcome, reasons and outputs, as the client got them), the input as stored
in the decision log, the recorded connector answers, the date — to one child process started with
its own interpreter (`python -m`: no fork of a threaded server). The request path keeps no
Decision object alive for it: objects that outlive their request are what the serving process's
garbage collector would scan again and again (measured: a young collection every 30 requests
instead of every 3,000). The worker thread only groups them into batches. The child, at a lower
scheduling priority (nice), builds the deciding arm's row from the body, evaluates each shadow as
the policy lab replays a decision — the input decoded exactly, validated, the deciding arm's
recorded answers (engine.recorded), never a lookup of its own — and writes the batch (one
transaction) to the store, then acknowledges it with the shadows' evaluation times, grouped by arm,
which the server turns into its metrics. If the child dies, the batches it held count as failed
(the server records their deciding arms itself) and the next batch starts another.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import sys
import threading
import time
from decimal import Decimal

import msgspec

from regua.dsl.values import to_json

from .frames import ChildProcess, read_frame, write_frame

log = logging.getLogger("regua.experiments")
NICE = 10  # the child's niceness: the serving process comes first when both want a core


class Job(msgspec.Struct, array_like=True):
    """One decision of an experiment, as strings the server already had."""
    experiment: str
    arm: str  # the arm that decided
    revision: int | None  # its revision (None: the champion, the policy's active revision)
    decision_id: str
    body: str  # the answer as the client got it (server.schemas.EvaluateResponse)
    input: str  # the request's input as stored in the decision log (exact numbers)
    answers: str | None  # engine.recorded: what the deciding arm's lookups answered
    today: str  # ISO date the decision was made as of
    document_hash: str | None
    shadows: list[tuple[str, str, int]]  # (arm, policy, revision) of each shadow to evaluate (sampled)


class Batch(msgspec.Struct, array_like=True):
    seq: int
    now: str  # created_at of every row of the batch
    jobs: list[Job]


class Done(msgspec.Struct, array_like=True):
    seq: int
    evaluated: list[tuple[str, str, list[float]]]  # (experiment, arm, seconds of each evaluation)
    error: str | None = None  # the batch was not recorded (the exception's type)


class _Reason(msgspec.Struct):
    code: str | None = None
    rule: str | None = None


class _Answer(msgspec.Struct):
    """What an arm's row needs from the answer's body; the rest of it is skipped unread."""
    outcome: str
    outputs: msgspec.Raw = msgspec.Raw(b"{}")  # the exact text, never decoded and encoded again
    reasons: list[_Reason] = []


_encode = msgspec.msgpack.Encoder().encode
_decode_batch = msgspec.msgpack.Decoder(Batch).decode
_decode_done = msgspec.msgpack.Decoder(Done).decode
_decode_exact = msgspec.json.Decoder(float_hook=Decimal).decode
_decode_answer = msgspec.json.Decoder(_Answer).decode
_encode_json = msgspec.json.Encoder(enc_hook=str).encode


def decision_row(experiment: str, arm: str, revision: int | None, shadow: int, decision_id: str, decision,
                 document_hash, now) -> tuple:
    """One row of experiment_decisions (server/migrations.py m008). The outputs as an answer writes
    them (dsl.values.to_json: money with two decimals, "21 days"), like the rows built from a body."""
    types = decision.output_types
    outputs = {name: to_json(value, types.get(name)) for name, value in decision.outputs.items()}
    return (experiment, arm, shadow, decision_id, revision, decision.outcome,
            _encode_json(decision.reason_codes).decode(), _encode_json(outputs).decode(),
            _encode_json(fired_rules(decision)).decode(), document_hash, now)


def fired_rules(decision) -> list[str]:
    """Names of the rules behind the decision's reasons (Reason objects are light: their facts are
    only read when asked for)."""
    return sorted({r.rule for r in decision.reasons if r.rule})


def arm_row(job: Job, now: str) -> tuple:
    """The deciding arm's row, read from the answer's body: the same codes (reasons without a code
    are not counted, as in Decision.reason_codes), outputs and fired rules as decision_row."""
    answer = _decode_answer(job.body)
    codes = [r.code for r in answer.reasons if r.code]
    rules = sorted({r.rule for r in answer.reasons if r.rule})
    return (job.experiment, job.arm, 0, job.decision_id, job.revision, answer.outcome,
            _encode_json(codes).decode(), bytes(answer.outputs).decode(), _encode_json(rules).decode(),
            job.document_hash, now)


def record_jobs(jobs: list[Job], now: str, arm_policy) -> tuple[list[tuple], dict[tuple[str, str], list[float]]]:
    """The rows of a batch: each deciding arm's, then its shadows' evaluated on the recorded answers.
    `arm_policy(arm, policy, revision)` -> (PreparedPolicy, RecordedConnectors for it). Returns the
    rows and the evaluation times by (experiment, arm)."""
    rows, evaluated = [], {}
    for job in jobs:
        rows.append(arm_row(job, now))
        if not job.shadows:
            continue
        data = _decode_exact(job.input)
        today = dt.date.fromisoformat(job.today)
        for arm, policy, revision in job.shadows:
            prepared, connectors = arm_policy(arm, policy, revision)
            connectors.load(job.answers)
            started = time.perf_counter()
            decision = prepared.evaluate_validated(prepared.validate(data), connectors=connectors, as_of=today)
            evaluated.setdefault((job.experiment, arm), []).append(time.perf_counter() - started)
            rows.append(decision_row(job.experiment, arm, revision, 1, job.decision_id, decision, job.document_hash,
                                     now))
    return rows, evaluated


class ShadowProcess(ChildProcess):
    """The server's side: starts the child (`python -m regua.server.shadow_process`, frames over
    its stdin and stdout), sends batches, and a thread of its own reads the acknowledgements and
    hands them to `on_done(seq, evaluated, error)`; `on_lost(seqs)` when the child died with
    batches unacknowledged. `ready` once the child has loaded the plugins and opened the store:
    until then (and after it died) the worker evaluates shadows itself."""

    module = "regua.server.shadow_process"

    def __init__(self, location: str, plugin_settings, sandbox: bool, on_done, on_lost):
        allow = None if plugin_settings is None else plugin_settings.allow
        deny = [] if plugin_settings is None else list(plugin_settings.deny)
        config = {} if plugin_settings is None else plugin_settings.config
        super().__init__(_encode({"location": location, "allow": allow, "deny": deny, "config": config,
                                  "sandbox": sandbox}))
        self.on_done, self.on_lost = on_done, on_lost
        self._unacked: set[int] = set()
        self.ready = False

    def start(self) -> None:
        """Start the child unless it runs (or is starting); it says when it is ready."""
        with self._lock:
            if self._process is not None or self._closed:
                return
            self._process = process = self._spawn()
        threading.Thread(target=self._read, args=(process,), name="regua-shadow-acks", daemon=True).start()

    def send(self, batch: Batch) -> bool:
        """False when the child is not there to take it (the caller evaluates the batch itself)."""
        with self._lock:
            process = self._process
            if process is None or not self.ready:
                return False
            self._unacked.add(batch.seq)
        try:
            write_frame(process.stdin, _encode(batch))
        except (OSError, ValueError):  # the child died just now: its reader reports the batch lost
            pass
        return True

    def _read(self, process) -> None:
        while True:
            frame = read_frame(process.stdout)
            if frame is None:
                break
            done = _decode_done(frame)
            if done.seq == 0:  # the child's hello
                self.ready = True
                continue
            with self._lock:
                self._unacked.discard(done.seq)
            self.on_done(done.seq, done.evaluated, done.error)
        code = process.wait()
        with self._lock:
            lost, self._unacked = self._unacked, set()
            if self._process is process:
                self._process, self.ready = None, False
        if lost or code:
            log.error("experiments: the shadow process ended (exit code %s) with %d batch(es) unrecorded",
                      code, len(lost))
        if lost:
            self.on_lost(sorted(lost))

    def close(self, timeout: float = 10.0) -> None:
        self.ready = False
        super().close(timeout)


# ---- the child ------------------------------------------------------------------------------------

def child_main(stdin, stdout) -> None:
    """Evaluate and record batches until the server closes the pipe."""
    try:
        os.nice(NICE)
    except OSError:  # not allowed here: same priority, still off the server's GIL
        pass
    from regua.engine.compiler import compile_policy
    from regua.engine.recorded import RecordedConnectors
    from regua.plugins.manager import PluginSettings
    from regua.plugins.registry import Registry

    from .experiment_store import ExperimentStore
    from .store import open_store

    setup = msgspec.msgpack.decode(read_frame(stdin))
    plugins = PluginSettings(allow=setup["allow"], deny=setup["deny"], config=setup["config"])
    # The server's plugin functions and contracts: a shadow compiles here as it did there.
    env = Registry.for_policies(plugins, sandbox_aliases=setup["sandbox"]).environment()
    store = ExperimentStore(open_store(setup["location"]))
    compiled: dict[tuple[str, int], tuple] = {}

    def arm_policy(_arm: str, policy: str, revision: int):
        found = compiled.get((policy, revision))
        if found is None:
            version = store.store.policy_version(policy, revision)
            prepared = compile_policy(version["source"], f"<shadow {policy}:{revision}>", env)
            found = compiled[(policy, revision)] = (
                prepared, RecordedConnectors([spec.qualified_name for spec in prepared.meta.connectors]))
        return found

    # Everything loaded so far lives as long as the process: out of the collector's full passes.
    gc.collect()
    gc.freeze()
    write_frame(stdout, _encode(Done(0, [])))
    while True:
        frame = read_frame(stdin)
        if frame is None:
            return
        batch = _decode_batch(frame)
        error, evaluated = None, []
        try:
            rows, times = record_jobs(batch.jobs, batch.now, arm_policy)
            if rows:
                store.record(rows)
            evaluated = [(experiment, arm, seconds) for (experiment, arm), seconds in times.items()]
        except Exception as failure:  # noqa: BLE001 — reported to the server, which counts and logs it
            error = type(failure).__name__
        write_frame(stdout, _encode(Done(batch.seq, evaluated, error)))


if __name__ == "__main__":
    # The protocol owns the real stdout; anything printed goes to stderr (the server's log).
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    logging.basicConfig(level=logging.WARNING)
    child_main(sys.stdin.buffer, protocol_out)
