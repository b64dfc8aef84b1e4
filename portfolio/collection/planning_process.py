"""A large run's plan, worked out in a helper process while the run's own process writes it.

A first run over a large portfolio spends its time in two halves of about the same size: reading
the facts and evaluating the régua for every receivable (Python), and writing millions of outbox
and history rows (the database: SQLite in this process, PostgreSQL in its server). One after the
other they use one core; here a forked helper reads and plans batch after batch and sends each
batch's PlanResult through a pipe, while the run writes the previous one, exactly as it would
have written it itself (runner.Runner._flush, in the same order).

What stays as it was:
- only the run's own process writes, under the run's lock, batch by batch: a crash of either
  process leaves what a crash of a run always left (whole batches), and the next run plans the
  rest (planning is idempotent: a key already in the outbox is left alone);
- the helper reads on a connection of its own, after settling has committed; the only rows being
  written meanwhile are the steps of receivables it has already planned (receivables are planned
  in id order), so every fact it reads is the one the run would have read itself;
- the helper never writes, and ends when its plan is sent, when it fails (the run then fails with
  its error) or when the run is gone (its next send finds the pipe closed).

Forking is only safe in a process with one thread (a forked child gets a copy of every lock as
it stood, held or not): `usable()` says when to use it; otherwise the run plans in-process.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import os
import threading
import traceback
from typing import Iterator

from regua import dialect

from .facts import iter_facts
from .plan import Planner, PlanResult


class PlanningFailed(RuntimeError):
    """The helper process could not finish the plan (its error, or that it ended early)."""


def usable() -> bool:
    """Forking is available and safe here: a POSIX system and a single-threaded process (the
    `regua collect` command, a benchmark) — not a server, whose other threads hold locks."""
    return hasattr(os, "fork") and threading.active_count() == 1


def plans(location: str, planner: Planner, as_of: dt.date, chunk: int) -> Iterator[PlanResult]:
    """The plan as of `as_of`, one PlanResult per `chunk` receivables, worked out by a helper
    process reading the store at `location`. Raises PlanningFailed if the helper fails."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    helper = context.Process(target=_plan, args=(location, planner, as_of, chunk, sender, receiver), daemon=True,
                             name="regua-collection-plan")
    helper.start()
    sender.close()  # the helper's end: when it is gone, recv() sees the end of the pipe
    try:
        while True:
            try:
                kind, payload = receiver.recv()
            except EOFError:
                raise PlanningFailed(f"the planning process ended before its plan was complete "
                                     f"(exit code {helper.exitcode})") from None
            if kind == "done":
                return
            if kind == "error":
                raise PlanningFailed(f"the planning process failed: {payload}")
            yield payload
    finally:
        receiver.close()
        if helper.is_alive():  # the run stopped early (an error while writing): the plan is not needed
            helper.kill()
        helper.join()


def _plan(location: str, planner: Planner, as_of: dt.date, chunk: int, sender, receiver) -> None:
    """The helper: read, plan and send; never write."""
    # The run's end of the pipe, copied by the fork: closed, so that when the run is gone the
    # pipe has no reader left and the next send fails instead of waiting for ever.
    receiver.close()
    # Objects inherited from the run's process are never collected here (nor finalised: a
    # connection of the run closed from this process would end the run's database session).
    gc.freeze()
    try:
        db = dialect.connect(location)
        try:
            result, counted = PlanResult(), 0
            for fact in iter_facts(db, as_of, chunk):
                planner.plan_one(fact, as_of, result)
                counted += 1
                if counted % chunk == 0:
                    sender.send(("plan", result))
                    result = PlanResult()
            sender.send(("plan", result))
        finally:
            db.conn.close()
        sender.send(("done", None))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the run is gone: nobody needs the rest of the plan
    except BaseException as error:  # noqa: BLE001 - the run reports it; the helper ends either way
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        try:
            sender.send(("error", detail[:500]))
        except OSError:
            pass
