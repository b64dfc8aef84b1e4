"""Real parts for the collection tests: an SMTP server (aiosmtpd), a messaging gateway on 127.0.0.1,
a portfolio in a real SQLite file, and a registry wired to them."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from aiosmtpd.controller import Controller
from loopback import LoopbackHTTP, reply_json
from server_harness import free_port

from regua.engine.compiler import compile_file
from regua.portfolio import Portfolio
from regua.portfolio.model import Customer, Payment, Receivable

POLICIES = Path(__file__).resolve().parent.parent / "policies"
#: The PostgreSQL database of the test running now, when it runs on that backend (the
#: `collection_backend` fixture in conftest.py sets these); None: a SQLite file in the test's folder.
STORE_URL: str | None = None
POSTGRES = None  # the session's server (postgres_harness.PostgresForTests)
_DATABASES: dict[Path, str] = {}  # folder -> its database, for the test running now


def store_at(folder: Path, name: str = "regua.db") -> str:
    """Where a store of the test lives: a SQLite file in `folder`, or on PostgreSQL a database of
    its own per folder (the test's first folder gets the fixture's database, the others new ones,
    dropped with it: see `collection_backend`)."""
    if STORE_URL is None:
        return str(Path(folder) / name)
    folder = Path(folder)
    if not _DATABASES:
        _DATABASES[folder] = STORE_URL
    if folder not in _DATABASES:
        _DATABASES[folder] = POSTGRES.new_database()
    return _DATABASES[folder]
CREDITOR = ("Loja Exemplo Ltda", "11.444.777/0001-61", "Rua Augusta, 500, São Paulo - SP, 01304-000")


class Mailbox:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"


class SMTPServer:
    def __init__(self):
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


class Gateway(LoopbackHTTP):
    """An SMS/WhatsApp gateway: records each request (headers, JSON) and answers delivered."""

    def __init__(self):
        self.requests: list[dict] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                gateway.requests.append({"key": self.headers.get("Idempotency-Key"), "body": body})
                reply_json(self, {"id": f"gw-{len(gateway.requests)}", "status": "delivered"})

            def log_message(self, *args):
                pass

        super().__init__(Handler, "fake-gateway")

    @property
    def url(self) -> str:
        return f"{self.base_url}/mensagens"


def notifications_config(smtp_port: int, gateway_url: str | None, idempotency_db: str) -> dict:
    config = {"idempotency_db": idempotency_db,
              "email": {"from_address": "cobranca@loja.example.com", "host": "127.0.0.1", "port": smtp_port,
                        "retries": 0}}
    if gateway_url:
        config["whatsapp"] = {"type": "whatsapp", "url": gateway_url, "status_path": "status",
                              "delivered_values": ["delivered"], "retries": 0}
    return config


def policies() -> dict:
    return {name: compile_file(POLICIES / f"{name}.regua") for name in ("cobranca_b2c", "cobranca_b2b")}


def portfolio(path: str, customers: list[Customer], receivables: list[Receivable],
              payments: list[Payment] = ()) -> None:
    store = Portfolio(path)
    store.save(customers)
    store.save(receivables)
    if payments:
        store.save(list(payments))
    store.close()


def maria(**changes) -> Customer:
    values = dict(id="maria", document="52998224725", name="Maria Souza", uf="SP", segment="varejo",
                  email="maria@example.com", phone="+5511987654321", channels=["whatsapp", "email"])
    values.update(changes)
    return Customer(**values)


def alfa(**changes) -> Customer:
    values = dict(id="alfa", document="11222333000181", name="Comercial Alfa Ltda", uf="RJ", segment="atacado",
                  email="financeiro@alfa.example.com", channels=["email"])
    values.update(changes)
    return Customer(**values)


def receivable(rid: str, customer: str, amount: str, due: dt.date, **changes) -> Receivable:
    return Receivable(rid, customer, amount, due - dt.timedelta(days=30), due, **changes)


# ---- `regua collect` as a real process (crash and concurrency tests) ----
REGUA = Path(sys.executable).with_name("regua")
AS_OF = dt.date(2026, 3, 11)  # a Wednesday: the receivables of those tests are at D+1 of their due date


def cpf_number(n: int) -> str:
    digits = [int(d) for d in f"{100000000 + n * 7919:09d}"[:9]]
    for size in (9, 10):
        total = sum(d * w for d, w in zip(digits, range(size + 1, 1, -1)))
        digits.append((total * 10 % 11) % 10)
    return "".join(map(str, digits))


def collect_config(tmp_path: Path, smtp_port: int, url: str = "") -> Path:
    config = tmp_path / "regua.toml"
    config.write_text(f"""
[store]
url = "{url}"
path = "{tmp_path / 'regua.db'}"

[policies]
folder = "{Path(__file__).resolve().parent.parent / 'policies'}"

[collection]
creditor_name = "{CREDITOR[0]}"
creditor_document = "{CREDITOR[1]}"
creditor_address = "{CREDITOR[2]}"
max_contacts = 10

[plugins.config.notifications]
idempotency_db = "{tmp_path / 'receipts.db'}"

[plugins.config.notifications.email]
from_address = "cobranca@loja.example.com"
host = "127.0.0.1"
port = {smtp_port}
retries = 0
""", encoding="utf-8")
    return config


def start_collect(config: Path) -> subprocess.Popen:
    return subprocess.Popen([str(REGUA), "collect", "--config", str(config), "--as-of", AS_OF.isoformat(),
                             "--at", "10:00", "--json", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
