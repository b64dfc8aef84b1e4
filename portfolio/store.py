"""The portfolio: one table per record kind, upserted by id, in SQLite or PostgreSQL.

On SQLite it lives in the same file as the server's store (`store.path`), WAL mode, with its own
migration set (`regua.portfolio`) applied under the same kind of file lock; on PostgreSQL in the
server's database (`store.url`), migrated under the advisory lock (regua.dialect says how one
store runs on both). A save is one transaction: a batch is stored whole or not at all.
Money is text on SQLite and `numeric(15, 2)` on PostgreSQL, days are `date`: never a float.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from regua import dialect, postgres
from regua.schema import Migrations

from .model import Agreement, Customer, Payment, Receivable

MIGRATIONS = Migrations("regua.portfolio")


@MIGRATIONS(postgres="""
    create table customers (id text collate "C" primary key, document text not null, kind text, name text not null,
                            uf text not null, segment text, email text, phone text, whatsapp text, channels text);
    create index idx_customers_document on customers (document);
    create table receivables (id text collate "C" primary key,
                              customer_id text collate "C" not null references customers (id),
                              amount numeric(15, 2) not null, issue_date date, due_date date, status text,
                              disputed boolean);
    create index idx_receivables_status_due_date on receivables (status, due_date);
    create index idx_receivables_customer_id on receivables (customer_id);
    create table payments (id text collate "C" primary key, receivable_id text collate "C" references receivables (id),
                           amount numeric(15, 2), paid_on date);
    create index idx_payments_receivable_id on payments (receivable_id);
    create table agreements (id text collate "C" primary key, customer_id text references customers (id),
                             receivable_ids text, created_on date, instalments text, status text);
""")
def m001_portfolio(db):
    db["customers"].create({"id": str, "document": str, "kind": str, "name": str, "uf": str, "segment": str,
                            "email": str, "phone": str, "whatsapp": str, "channels": str}, pk="id",
                           not_null={"document", "name", "uf"})
    db["customers"].create_index(["document"])
    db["receivables"].create({"id": str, "customer_id": str, "amount": str, "issue_date": str, "due_date": str,
                              "status": str, "disputed": int}, pk="id", not_null={"customer_id", "amount"},
                             foreign_keys=[("customer_id", "customers", "id")])
    db["receivables"].create_index(["status", "due_date"])
    db["receivables"].create_index(["customer_id"])
    db["payments"].create({"id": str, "receivable_id": str, "amount": str, "paid_on": str}, pk="id",
                          foreign_keys=[("receivable_id", "receivables", "id")])
    db["payments"].create_index(["receivable_id"])
    db["agreements"].create({"id": str, "customer_id": str, "receivable_ids": str, "created_on": str,
                             "instalments": str, "status": str}, pk="id",
                            foreign_keys=[("customer_id", "customers", "id")])


@MIGRATIONS(postgres="alter table customers add column manager text")
def m002_account_manager(db):
    db["customers"].add_column("manager", str)


TABLES = {Customer: "customers", Receivable: "receivables", Payment: "payments", Agreement: "agreements"}
#: What each kind refers to: (field, table it must exist in).
REFERENCES = {"receivables": [("customer_id", "customers")], "payments": [("receivable_id", "receivables")],
              "agreements": [("customer_id", "customers")]}


def _row(record: msgspec.Struct) -> dict:
    row = msgspec.to_builtins(record)
    for key, value in row.items():
        if isinstance(value, list):
            row[key] = json.dumps(value, ensure_ascii=False)
    if isinstance(record, Customer):
        row["kind"] = record.kind
    return row


class Portfolio:
    def __init__(self, path: str):
        """`path`: the store's location, a SQLite file or a postgresql:// URL."""
        if path == ":memory:":
            raise ValueError("the portfolio needs a file path")
        self.path = path
        if not postgres.is_url(path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        dialect.migrate(path, MIGRATIONS)
        self.db = dialect.connect(path)

    def existing_ids(self, table: str, ids: set[str]) -> set[str]:
        if not ids:
            return set()
        found: set[str] = set()
        ordered = sorted(ids)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            found |= {r[0] for r in self.db.execute(f"select id from [{table}] where id in ({marks})", chunk)}
        return found

    def save(self, records: list[msgspec.Struct]) -> int:
        """Upsert records (all of one kind or mixed) in one transaction; returns how many."""
        with dialect.transaction(self.db):
            for record in records:
                self.db[TABLES[type(record)]].upsert(_row(record), pk="id")
        return len(records)

    def count(self, table: str) -> int:
        return self.db[table].count

    def get(self, table: str, record_id: str) -> dict | None:
        rows = list(self.db.query(f"select * from [{table}] where id = ?", [record_id]))
        return rows[0] if rows else None

    def close(self) -> None:
        self.db.conn.close()
