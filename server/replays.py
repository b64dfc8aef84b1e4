"""Replay jobs over HTTP (`POST /replays`, `GET /replays/{id}`; scope `lab`).

A job replays the decision log with a candidate policy (regua.lab.replay) in a thread of the
worker process that accepted it, and keeps its state as a row of `replays` in the store: any
worker (and a restarted server) answers `GET /replays/{id}` from that row. The running job
writes its progress and a heartbeat after each chunk; a job whose heartbeat stopped (its process
died) reads as `interrupted`. The finished report is stored with every CPF/CNPJ-shaped value
masked: a report names decision ids and the values of the `by` fields, never a document in clear.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass

from regua.engine.connectors import mask_documents_deep, mask_documents_in
from regua.lab.replay import Replayer

from . import replay_source
from .ids import new_decision_id
from .policies import PolicyService
from .store import Store, utc_now

log = logging.getLogger("regua.server")

#: A running job writes its heartbeat at least this often; silent for STALE_AFTER_S: interrupted.
HEARTBEAT_S = 1.0
STALE_AFTER_S = 60.0
#: Jobs running at once in one worker process (each holds a thread and a core while it runs).
MAX_RUNNING = 2
CHUNK = 500


def _masked(data: dict) -> dict:
    """The report with every CPF/CNPJ-shaped value that comes from the decisions' input masked:
    the values cut by, the changed decisions' `by` fields, error details. Ids, amounts and counts
    are left as they are (a decision id may hold eleven digits in a row)."""
    for groups in data["cuts"].values():
        for group in groups:
            group["value"] = mask_documents_in(group["value"])
    for change in data["top_changes"]:
        change["by"] = mask_documents_deep(change["by"])
    for error in data["error_list"]:
        error["detail"] = mask_documents_in(error["detail"])
    return data


class ReplayRefused(Exception):
    """The request cannot start a job: (status, code, message, errors) for the API's error body."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors or []


@dataclass(frozen=True)
class ReplayOrder:
    candidate: str  # the candidate policy's source
    policy: str | None = None  # whose decisions (default: the candidate's name)
    start: dt.date | None = None
    end: dt.date | None = None
    sample: int | None = None
    by: tuple[str, ...] = ()
    top: int = 10


class ReplayJobs:
    def __init__(self, store: Store, policies: PolicyService):
        self.store = store
        self.policies = policies
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # ---- starting ----
    def start(self, order: ReplayOrder, api_key: str | None) -> dict:
        from .policies import PolicyRejected

        try:
            prepared = self.policies.compile(order.candidate, "candidate.regua")
        except PolicyRejected as error:
            raise ReplayRefused(422, "POLICY_REJECTED", "the candidate policy failed its checks",
                                [{**e, "location": f"candidate{e['location'].removeprefix('candidate.regua')}"}
                                 for e in error.to_list()]) from None
        name = order.policy or prepared.name
        window = replay_source.Window(name, order.start, order.end)
        total, purged = replay_source.count(self.store.location, window)
        if total - purged <= 0:
            raise ReplayRefused(422, "NO_DECISIONS", f"no decision of policy '{name}' to replay in that window",
                                [{"code": "NO_DECISIONS", "message": f"{total} decision(s), {purged} purged",
                                  "location": "policy"}])
        with self._lock:
            self._running = {k: t for k, t in self._running.items() if t.is_alive()}
            if len(self._running) >= MAX_RUNNING:
                raise ReplayRefused(429, "TOO_MANY_REPLAYS",
                                    f"{MAX_RUNNING} replays are running in this worker; try again when one ends")
            job_id = new_decision_id()
            count = min(total - purged, order.sample or total)
            now = utc_now()
            request = {"policy": name, "from": order.start and order.start.isoformat(),
                       "to": order.end and order.end.isoformat(), "sample": order.sample, "by": list(order.by),
                       "top": order.top}
            self.store.insert_row("replays", {
                "id": job_id, "status": "running", "policy": name, "request": json.dumps(request),
                "candidate_name": prepared.name, "candidate_version": prepared.version,
                "candidate_hash": hashlib.sha256(order.candidate.encode()).hexdigest(),
                "api_key": api_key, "total": count, "processed": 0, "purged_skipped": purged,
                "created_at": now, "heartbeat_at": time.time(), "finished_at": None, "report": None,
                "error": None})
            thread = threading.Thread(target=self._run, args=(job_id, prepared, window, order, request),
                                      name=f"regua-replay-{job_id}", daemon=True)
            self._running[job_id] = thread
            thread.start()
        return self.get(job_id)

    # ---- reading ----
    def get(self, job_id: str) -> dict | None:
        rows = self.store.query("select * from replays where id = ?", [job_id])
        if not rows:
            return None
        row = rows[0]
        status = row["status"]
        if status == "running" and time.time() - row["heartbeat_at"] > STALE_AFTER_S:
            status = "interrupted"  # its process stopped writing: it died or was killed
        total, processed = row["total"], row["processed"]
        return {
            "id": row["id"], "status": status, "policy": row["policy"],
            "candidate": {"name": row["candidate_name"], "version": row["candidate_version"],
                          "source_hash": row["candidate_hash"]},
            "request": json.loads(row["request"]), "created_at": row["created_at"],
            "finished_at": row["finished_at"],
            "progress": {"total": total, "processed": processed,
                         "fraction": round(processed / total, 4) if total else 1.0},
            "report": json.loads(row["report"]) if row["report"] else None, "error": row["error"],
        }

    def recent(self, limit: int = 50, before: str | None = None) -> list[dict]:
        """Jobs newest first, without their reports (at most `limit`, ids below `before`)."""
        rows = self.store.query(
            "select id, status, policy, candidate_name, candidate_version, total, processed, created_at, "
            "finished_at, heartbeat_at, error from replays" + (" where id < ?" if before else "")
            + " order by id desc limit ?", [*([before] if before else []), limit])
        for row in rows:
            if row["status"] == "running" and time.time() - row["heartbeat_at"] > STALE_AFTER_S:
                row["status"] = "interrupted"
        return rows

    def delete(self, job_id: str) -> str:
        """Delete a job and its report: "deleted", "running" (a job still running is kept) or "unknown"."""
        if self.store.delete_rows("replays", "id = ? and (status <> 'running' or heartbeat_at < ?)",
                                  [job_id, time.time() - STALE_AFTER_S]):
            return "deleted"
        return "running" if self.store.query("select 1 from replays where id = ?", [job_id]) else "unknown"

    # ---- running ----
    def _run(self, job_id: str, prepared, window, order: ReplayOrder, request: dict) -> None:
        started = time.perf_counter()  # the store's calls from this thread use this thread's connection
        try:
            replayer = Replayer(prepared, order.by, keep=order.top)
            report = replayer.empty()
            beat = 0.0
            records = replay_source.records(self.store.location, window, order.sample)
            while True:
                chunk = [record for _, record in zip(range(CHUNK), records)]
                if not chunk:
                    break
                report.merge(replayer.run(chunk))
                if self._stop.is_set():
                    self._finish(job_id, "interrupted", report.total, error="the server stopped")
                    return
                if time.monotonic() - beat >= HEARTBEAT_S:
                    beat = time.monotonic()
                    self.store.update_row("replays", "id", job_id, {"processed": report.total, "heartbeat_at": time.time()})
            data = report.to_dict(order.top)
            data["window"] = {**request, "purged_skipped": self.store.query(
                "select purged_skipped from replays where id = ?", [job_id])[0]["purged_skipped"]}
            data["seconds"] = round(time.perf_counter() - started, 3)
            self._finish(job_id, "done", report.total, report=json.dumps(_masked(data), ensure_ascii=False))
        except Exception as error:  # noqa: BLE001 — the job fails alone; its row says so, the server goes on
            log.error("replay %s failed: %s", job_id, type(error).__name__)
            self._finish(job_id, "failed", None, error=f"the replay failed ({type(error).__name__})")
        finally:
            self.store.close()  # this thread's connections

    def _finish(self, job_id: str, status: str, processed: int | None, report: str | None = None,
                error: str | None = None) -> None:
        changes = {"status": status, "report": report, "error": error, "finished_at": utc_now(),
                   "heartbeat_at": time.time(), **({"processed": processed} if processed is not None else {})}
        self.store.update_row("replays", "id", job_id, changes)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask running jobs to stop after their current chunk (they are marked interrupted)."""
        self._stop.set()
        for thread in list(self._running.values()):
            thread.join(timeout)
