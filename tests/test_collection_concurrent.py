"""Two `regua collect` runs against one PostgreSQL at the same time (two hosts, or two replicas'
schedulers): each carries out the outbox rows it claims, so together they send every step once;
and when one is killed with SIGKILL mid-run, the other takes over its claims before it finishes:
nothing lost, nothing sent twice (the one message in flight at the kill goes again with the same
Message-ID, which the receiving side recognises, as in test_collection_crash.py).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import time

from collection_harness import AS_OF, SMTPServer, collect_config, cpf_number, portfolio, receivable, start_collect

from regua.dialect import connect
from regua.portfolio.collection.store import CollectionStore
from regua.portfolio.model import Customer

CUSTOMERS = 240


def _load(url: str) -> None:
    customers = [Customer(f"c{n}", cpf_number(n), f"Cliente {n}", "SP", "varejo", email=f"c{n}@example.com",
                          channels=["email"]) for n in range(CUSTOMERS)]
    receivables = [receivable(f"t{n:04d}", f"c{n}", "150.00", AS_OF - dt.timedelta(days=1)) for n in range(CUSTOMERS)]
    portfolio(url, customers, receivables)
    CollectionStore(url).close()  # the outbox exists before the runs start (the test polls it)


def _outbox(url: str) -> list[dict]:
    db = connect(url)
    try:
        return list(db.query("select key, status, claimed_by from outbox"))
    finally:
        db.conn.close()


def _sent(url: str) -> int:
    db = connect(url)
    try:
        return db.execute("select count(*) from outbox where status = 'sent'").fetchone()[0]
    finally:
        db.conn.close()


def _check(url: str, messages, resends_allowed: int) -> None:
    rows = _outbox(url)
    expected = {f"t{n:04d}:primeira_cobranca" for n in range(CUSTOMERS)}
    assert {r["key"] for r in rows if r["status"] == "sent"} == expected, {r["status"] for r in rows}
    ids = [m["Message-ID"] for m in messages]
    assert len(set(ids)) == CUSTOMERS
    assert len(ids) - len(set(ids)) <= resends_allowed, (len(ids), len(set(ids)))


def test_two_runs_at_once_share_the_outbox_and_send_each_step_once(tmp_path, postgres_url):
    _load(postgres_url)
    with SMTPServer() as smtp:
        config = collect_config(tmp_path, smtp.port, postgres_url)
        runs = [start_collect(config), start_collect(config)]
        results = [run.communicate(timeout=300) for run in runs]
        messages = list(smtp.mailbox.messages)
    for run, (_stdout, stderr) in zip(runs, results):
        assert run.returncode == 0, stderr
    _check(postgres_url, messages, resends_allowed=0)
    sent = [json.loads(stdout)["outcomes"].get("sent", 0) for stdout, _ in results]
    assert sum(sent) == CUSTOMERS, sent  # each step carried out by exactly one of the two runs
    assert all(r["claimed_by"] is None for r in _outbox(postgres_url))  # every claim released


def test_kill_9_of_one_run_mid_way_the_other_takes_over_and_nothing_is_lost_or_sent_twice(tmp_path, postgres_url):
    _load(postgres_url)
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    with SMTPServer() as smtp:
        config = collect_config(tmp_path, smtp.port, postgres_url)
        runs = [start_collect(config), start_collect(config)]
        threshold = rng.randint(5, CUSTOMERS // 3)
        deadline = time.monotonic() + 180
        while _sent(postgres_url) < threshold and time.monotonic() < deadline and runs[0].poll() is None:
            time.sleep(0.05)
        victim, survivor = rng.sample(runs, 2)
        killed_mid_run = victim.poll() is None
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        stdout, stderr = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, stderr
        messages = list(smtp.mailbox.messages)
        assert _sent(postgres_url) == CUSTOMERS  # checked as soon as the survivor ends: no third run needed
        again = start_collect(config)
        stdout_again, stderr = again.communicate(timeout=120)
        assert again.returncode == 0, stderr
    assert killed_mid_run, f"the run was over before the kill (seed {seed})"
    _check(postgres_url, messages, resends_allowed=1)  # at most the message in flight at the kill
    assert json.loads(stdout_again)["outcomes"] == {}
