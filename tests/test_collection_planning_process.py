"""A run planning in a helper process (planning_process.py), killed with SIGKILL while it writes
its plan: the helper ends by itself, and the next run leaves exactly the outbox and history a run
that was never killed writes — nothing lost, nothing planned twice."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from collection_harness import AS_OF, cpf_number, portfolio, receivable, store_at

from regua.portfolio.collection.store import CollectionStore
from regua.portfolio.model import Customer

RECEIVABLES = 3000

# One run in a process of its own: the helper planning 100 receivables at a time (so there are
# many batches to be killed among), the bundled réguas, no channels (it plans, sends nothing).
RUN = """
import datetime as dt, sys
from pathlib import Path
from regua.engine.compiler import compile_file
from regua.portfolio.collection import runner as R
from regua.portfolio.collection.settings import CollectionSettings
R.CHUNK = 100
R.Runner.plan_helper_min = 0
folder = Path(sys.argv[2])
policies = {n: compile_file(folder / f"{n}.regua") for n in ("cobranca_b2c", "cobranca_b2b")}
day = dt.date.fromisoformat(sys.argv[3])
runner = R.Runner(sys.argv[1], policies, None, CollectionSettings())
print("planning", flush=True)
runner.run(day, now=dt.datetime.combine(day, dt.time(12), dt.timezone.utc))
print("done", flush=True)
"""
POLICIES = Path(__file__).resolve().parent.parent / "policies"


def make_portfolio(location: str) -> None:
    customers = [Customer(f"c{n}", cpf_number(n), f"Cliente {n}", "SP", "varejo", email=f"c{n}@example.com",
                          channels=["email"]) for n in range(RECEIVABLES // 4)]
    receivables = [receivable(f"t{n:05d}", f"c{n % len(customers)}", f"{50 + n % 900}.00",
                              AS_OF - dt.timedelta(days=n % 120 - 5)) for n in range(RECEIVABLES)]
    portfolio(location, customers, receivables)


def start(location: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN, location, str(POLICIES), AS_OF.isoformat()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie has ended
    except OSError:
        return True


def contents(location: str) -> tuple[dict, list]:
    store = CollectionStore(location)
    outbox = {row[0]: row for row in store.db.execute(
        "select key, receivable_id, customer_id, step, action, day, template, settings, policy, policy_version, "
        "planned_on, priority, status, block_code, attempts from outbox").fetchall()}
    events = [tuple(row) for row in store.db.execute(
        "select at, receivable_id, customer_id, key, kind, code, detail from collection_events order by id")]
    store.close()
    return outbox, events


def test_a_run_killed_while_writing_a_plan_made_by_its_helper_loses_nothing_and_repeats_nothing(
        tmp_path, collection_backend):
    killed_at, clean_at = store_at(tmp_path), store_at(tmp_path / "clean")
    for location in (killed_at, clean_at):
        make_portfolio(location)

    run = start(killed_at)
    assert run.stdout.readline().strip() == "planning"
    deadline = time.monotonic() + 60
    store = CollectionStore(killed_at)
    while store.db.execute("select count(*) from outbox").fetchone()[0] == 0:  # some batches are written
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()
        time.sleep(0.02)
    store.close()
    helpers = children(run.pid)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert helpers, "the run planned in no helper process"
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in helpers):  # the helper notices and ends by itself
        assert time.monotonic() < deadline, "the planning helper outlived the run it planned for"
        time.sleep(0.05)
    partial, _ = contents(killed_at)
    assert 0 < len(partial)

    for location in (killed_at, clean_at):
        again = start(location)
        stdout, stderr = again.communicate(timeout=300)
        assert again.returncode == 0 and stdout.split() == ["planning", "done"], stderr
    killed_outbox, killed_events = contents(killed_at)
    clean_outbox, clean_events = contents(clean_at)
    assert len(partial) < len(clean_outbox), "the run was killed after it had written its whole plan"
    assert killed_outbox == clean_outbox
    assert killed_events == clean_events
