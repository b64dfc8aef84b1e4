"""Schema migrations of the server store, in order. Never edit one that has shipped: add a new one.

Applied by server.store.Store.migrate() (sqlite_utils.Migrations records each in
`_sqlite_migrations`, inside the same transaction as its changes).
"""

from __future__ import annotations

from sqlite_utils import Migrations

MIGRATIONS = Migrations("regua.server")


@MIGRATIONS()
def m001_policies(db):
    db["policy_versions"].create({
        "id": int, "name": str, "revision": int, "version": str, "source": str, "source_hash": str,
        "origin": str, "created_at": str,
    }, pk="id", not_null={"name", "revision", "source", "source_hash"})
    db["policy_versions"].create_index(["name", "revision"], unique=True)
    # The active version of each policy: one row per policy, replaced in one statement (atomic).
    db["policy_active"].create({"name": str, "version_id": int, "activated_at": str, "activated_by": str},
                               pk="name", foreign_keys=[("version_id", "policy_versions", "id")])
    # Every activation (publish, reload, rollback), for audit; its max(id) tells workers to refresh.
    db["policy_activations"].create({"id": int, "version_id": int, "activated_at": str, "activated_by": str,
                                     "reason": str}, pk="id",
                                    foreign_keys=[("version_id", "policy_versions", "id")])
    # Files of the policies folder as last synced, so a restart republishes only what changed on disk.
    db["policy_files"].create({"path": str, "file_hash": str, "synced_at": str}, pk="path")


@MIGRATIONS()
def m002_decisions(db):
    db["decisions"].create({
        "id": str,               # ULID: sorts by, and encodes, the creation time (server/ids.py)
        "policy": str, "version": str, "revision": int,
        "outcome": str,
        "body": str,             # the response as returned (JSON; documents masked)
        "input": str,            # the input as received (JSON): personal data, kept for audit (LGPD art. 20)
        "input_hash": str,       # sha256 of the canonical input: an idempotent retry must match it
        "document_hash": str,    # sha256 of the CPF/CNPJ, to find a customer's decisions without an index of documents
        "document_masked": str,
        "request_id": str,
        "api_key": str,          # the key's name, never the key
        "duration_ms": float,
    }, pk="id", not_null={"policy", "outcome", "body", "input"})
    # Ids are ULIDs, so "by time" is "by id": no index on created_at is needed (date filters become
    # id ranges). Partial indexes skip the rows that have nothing to find (most have no request_id).
    db["decisions"].create_index(["policy", "id"])
    db.execute("create index idx_decisions_document on decisions (document_hash, id) where document_hash is not null")
    db.execute("create unique index idx_decisions_request on decisions (policy, api_key, request_id) "
               "where request_id is not null")


@MIGRATIONS()
def m003_connector_cache(db):
    # Same layout plugins.cache.BureauCache expects (it creates the table itself when used alone).
    db["connector_cache"].create({"key": str, "connector": str, "answer": str, "stored_at": float,
                                  "expires_at": float, "cost": str}, pk="key", if_not_exists=True)


@MIGRATIONS()
def m004_retention(db):
    # LGPD retention (regua purge, store.retention_days): a purged decision keeps its outcome and
    # its masked answer for statistics; its input and document hashes are gone. Each purge is audited.
    db["decisions"].add_column("purged_at", str)
    db["purges"].create({"id": int, "at": str, "before": str, "by": str, "decisions": int, "cache_entries": int},
                        pk="id")


@MIGRATIONS()
def m005_connector_answers(db):
    # The policy lab (regua replay) re-evaluates stored decisions on the answers their lookups got
    # (engine.recorded: compact JSON, arguments masked). Personal data like `input`: purged with it.
    db["decisions"].add_column("connector_answers", str)


@MIGRATIONS()
def m006_replays(db):
    # Replay jobs of the policy lab (POST /replays): any worker answers GET /replays/{id} from the row;
    # the running job updates `processed` and `heartbeat_at` (epoch seconds) as it goes. The report is
    # stored masked (no CPF/CNPJ in clear); the candidate is kept as its hash, name and version.
    db["replays"].create({
        "id": str, "status": str, "policy": str, "request": str, "candidate_name": str, "candidate_version": str,
        "candidate_hash": str, "api_key": str, "total": int, "processed": int, "purged_skipped": int,
        "created_at": str, "heartbeat_at": float, "finished_at": str, "report": str, "error": str,
    }, pk="id", not_null={"status", "policy", "request"})


@MIGRATIONS()
def m007_console(db):
    # The web console (server/console): sign-in sessions and the review task list.
    # A session is found by the sha256 of its cookie (the cookie itself is never stored) and names
    # the API key it was opened with by that key's hash, so revoking the key ends the session.
    db["console_sessions"].create({"id_hash": str, "key_hash": str, "key_name": str, "csrf": str,
                                   "created_at": str, "expires_at": str}, pk="id_hash")
    # A person's work on a decision that waits for review (a `review` outcome or a monitoring
    # review): who took it, the verdict and the note. Every step is also a row of console_audit.
    db["review_tasks"].create({"decision_id": str, "source": str, "taken_by": str, "taken_at": str,
                               "verdict": str, "note": str, "resolved_by": str, "resolved_at": str},
                              pk="decision_id")
    db["console_audit"].create({"id": int, "at": str, "actor": str, "action": str, "target": str, "detail": str},
                               pk="id")
    # The review task list reads `review` outcomes newest first.
    db.execute("create index idx_decisions_outcome on decisions (outcome, id)")
