"""Monitoring notifications sent by two processes at once on one PostgreSQL (two replicas, or a
replica and `regua monitor`): each notification is claimed by one of them and sent once; when one
is killed with SIGKILL mid-way the other takes over what it held before it returns: nothing lost,
nothing sent twice (the one message in flight at the kill goes again with the same Message-ID,
which the receiving side recognises)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

from collection_harness import SMTPServer, alfa

from regua import dialect
from regua.portfolio import Portfolio
from regua.portfolio.monitoring.store import MonitoringStore

NOTIFICATIONS = 200

# One sender process: a Monitor on the store, its e-mail channel on the test's SMTP server; it sends
# every pending notification (Monitor.send with no keys: the backlog pass).
SENDER = """
import datetime as dt, sys
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry
from regua.portfolio.monitoring.monitor import Monitor
from regua.portfolio.monitoring.settings import MonitoringSettings
from regua.portfolio.monitoring.store import MonitoringStore

url, port, receipts = sys.argv[1], int(sys.argv[2]), sys.argv[3]
config = {"notifications": {"idempotency_db": receipts, "email": {
    "from_address": "credito@loja.example.com", "host": "127.0.0.1", "port": port, "retries": 0}}}
registry = Registry.load(PluginSettings(config=config))
monitor = Monitor(MonitoringStore(url, migrate=False), dict, None, registry.channels, MonitoringSettings(),
                  record_decision=None, creditor=("Loja Exemplo Ltda", "11.444.777/0001-61"))
sent = monitor.send(dt.datetime(2026, 11, 22, 15, 0, tzinfo=dt.timezone.utc))
print(len(sent))
"""

CONTEXT = {"cliente": "Comercial Alfa Ltda", "cliente_id": "alfa", "evento_texto": "nova negativação",
           "acao_texto": "revisão pedida", "limite_anterior": "1000.00", "limite_novo": "1000.00",
           "bloqueado": False, "revisao": True, "motivos": [], "politica": "monitoramento_credito", "versao": "1"}


def _load(url: str) -> None:
    portfolio = Portfolio(url)
    portfolio.save([alfa(manager="gerente@loja.example.com")])
    portfolio.close()
    store = MonitoringStore(url)
    with dialect.transaction(store.db) as db:
        for n in range(NOTIFICATIONS):
            store.add_notification(db, f"monitoring:d{n:04d}:manager", f"d{n:04d}", "alfa", "manager",
                                   "monitoramento_gerente", dict(CONTEXT, decisao=f"d{n:04d}"))
    store.close()


def _statuses(url: str) -> dict[str, int]:
    db = dialect.connect(url)
    try:
        return dict(db.execute("select status, count(*) from monitoring_outbox group by status").fetchall())
    finally:
        db.conn.close()


def _sender(url: str, port: int, receipts: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SENDER, url, str(port), receipts],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _message_ids(messages) -> list[str]:
    return [m["Message-ID"] for m in messages]


def test_two_senders_at_once_send_each_notification_once(tmp_path, postgres_url):
    _load(postgres_url)
    with SMTPServer() as smtp:
        senders = [_sender(postgres_url, smtp.port, str(tmp_path / "receipts.db")) for _ in range(2)]
        results = [sender.communicate(timeout=300) for sender in senders]
        messages = list(smtp.mailbox.messages)
    for sender, (_, stderr) in zip(senders, results):
        assert sender.returncode == 0, stderr
    assert _statuses(postgres_url) == {"sent": NOTIFICATIONS}
    ids = _message_ids(messages)
    assert len(ids) == len(set(ids)) == NOTIFICATIONS
    assert sum(int(stdout) for stdout, _ in results) == NOTIFICATIONS  # each sent by exactly one of them


def test_kill_9_of_one_sender_mid_way_the_other_takes_over(tmp_path, postgres_url):
    _load(postgres_url)
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    with SMTPServer() as smtp:
        senders = [_sender(postgres_url, smtp.port, str(tmp_path / "receipts.db")) for _ in range(2)]
        threshold = rng.randint(5, NOTIFICATIONS // 3)
        deadline = time.monotonic() + 180
        while _statuses(postgres_url).get("sent", 0) < threshold and time.monotonic() < deadline \
                and senders[0].poll() is None:
            time.sleep(0.02)
        victim, survivor = rng.sample(senders, 2)
        killed_mid_run = victim.poll() is None
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        _, stderr = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, stderr
        statuses = _statuses(postgres_url)  # as soon as the survivor returns: no third pass needed
        messages = list(smtp.mailbox.messages)
    assert killed_mid_run, f"the sender was done before the kill (seed {seed})"
    assert statuses == {"sent": NOTIFICATIONS}, (statuses, seed)
    ids = _message_ids(messages)
    assert len(set(ids)) == NOTIFICATIONS
    assert len(ids) - len(set(ids)) <= 1, (len(ids), seed)  # at most the message in flight at the kill
