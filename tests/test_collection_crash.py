"""Exactly-once effects: a `regua collect` killed with SIGKILL at random moments and started again
sends nothing twice and loses nothing; re-running the same date does nothing.

At the provider boundary exactly-once means: Régua never sends again a message whose acceptance
it recorded, and the one message that can be in flight at the moment of a kill is sent again
with the same idempotency key — for e-mail, the same Message-ID — so the receiving side
recognises it. The receiver below counts raw SMTP transactions and distinct Message-IDs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import time

from collection_harness import AS_OF, SMTPServer, collect_config, cpf_number, portfolio, receivable, start_collect

from regua.portfolio.collection.store import CollectionStore
from regua.portfolio.model import Customer

CUSTOMERS = 400


def test_kill_9_at_random_moments_sends_nothing_twice_and_loses_nothing(tmp_path, collection_backend):
    """Once per backend (collection_backend: a SQLite file, then PostgreSQL, where a killed run's
    claims are taken over by the next run)."""
    url = collection_backend if collection_backend.startswith("postgresql") else ""
    customers = [Customer(f"c{n}", cpf_number(n), f"Cliente {n}", "SP", "varejo", email=f"c{n}@example.com",
                          channels=["email"]) for n in range(CUSTOMERS)]
    receivables = [receivable(f"t{n:04d}", f"c{n}", "150.00", AS_OF - dt.timedelta(days=1)) for n in range(CUSTOMERS)]
    portfolio(collection_backend, customers, receivables)
    rng = random.Random(20261122)
    with SMTPServer() as smtp:
        config = collect_config(tmp_path, smtp.port, url)
        kills = 0
        for _ in range(6):
            process = start_collect(config)
            time.sleep(rng.uniform(0.8, 2.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(timeout=60)
        final = start_collect(config)
        stdout, stderr = final.communicate(timeout=120)
        assert final.returncode == 0, stderr
        again = start_collect(config)
        stdout_again, stderr = again.communicate(timeout=120)
        assert again.returncode == 0, stderr
        messages = list(smtp.mailbox.messages)

    assert kills >= 1, "no run was killed: the portfolio is too small for this machine"
    store = CollectionStore(collection_backend)
    rows = list(store.db.query("select key, status from outbox"))
    store.close()
    # Loses nothing: every receivable's D+1 step was planned once and carried out.
    expected = {f"t{n:04d}:primeira_cobranca" for n in range(CUSTOMERS)}
    sent = {r["key"] for r in rows if r["status"] == "sent"}
    assert sent == expected, (len(sent), {r["status"] for r in rows})
    # Sends nothing twice: one Message-ID per step; a message resent after a kill carries the same one.
    ids = [m["Message-ID"] for m in messages]
    assert len(set(ids)) == CUSTOMERS
    resent = len(ids) - len(set(ids))
    assert resent <= kills, (resent, kills)  # at most the message in flight at each kill
    # Re-running the same date does nothing.
    summary = json.loads(stdout_again)
    assert summary["planned"] == {} and summary["outcomes"] == {}
    print(f"\n{kills} kills, {len(ids)} SMTP transactions, {resent} in-flight resends recognised by Message-ID")


def test_the_outbox_key_is_unique(tmp_path, collection_backend):
    store = CollectionStore(collection_backend)
    row = {"key": "t1:aviso", "receivable_id": "t1", "customer_id": "c1", "step": "aviso",
           "action": "notify_negativation", "status": "pending", "attempts": 0}
    assert store.plan([row], []) == 1
    assert store.plan([dict(row, status="superseded")], []) == 0
    assert store.db.execute("select status from outbox").fetchall() == [("pending",)]
    store.close()
    assert collection_backend.startswith("postgresql") or os.path.exists(collection_backend)
