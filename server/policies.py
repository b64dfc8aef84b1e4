"""The policies a server runs: versions in the store, compiled once, swapped atomically.

Lifecycle:
- at start, each *.regua file of the policies folder that changed since it was last synced
  is published as a new revision (a file that did not change leaves whatever was active,
  perhaps a version published over HTTP or a rollback);
- `publish()` (HTTP POST/PUT) checks and compiles first: a policy that fails never becomes
  active. A new revision and its activation are one SQLite transaction;
- `rollback()` activates an earlier revision (it is compiled before it is activated);
- the folder is watched: an edit is published like any other; a broken edit is reported
  (`problems`, the log) and the running version keeps serving;
- each policy name belongs to one file (the first, in path order, to declare it): another file
  declaring the same name is reported (DUPLICATE_POLICY_NAME) and never activated;
- every worker polls the store's activation counter (`sync_interval`), so a version published
  through one worker reaches all of them.
The running set is an immutable dict replaced in one assignment: a request sees either the
old version or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from regua.dsl.diagnostics import PolicyError
from regua.dsl.environment import Environment
from regua.dsl.source import read_policy
from regua.engine.compiler import compile_policy
from regua.engine.prepared import PreparedPolicy

from .store import Store

log = logging.getLogger("regua.policies")
SUFFIX = ".regua"


@dataclass(frozen=True)
class ActivePolicy:
    prepared: PreparedPolicy
    revision: int
    version_id: int
    source_hash: str
    #: Evaluate on the event loop: every connector the policy uses answers from memory and it
    #: loops over no input list (engine PolicyMeta.input_loops).
    inline: bool
    document_field: str | None  # the first CPF/CNPJ input, indexed (hashed) in the decision log


class PolicyRejected(Exception):
    """A policy failed its checks; `error` carries every diagnostic with file:line:col."""

    def __init__(self, error: PolicyError, file: str):
        super().__init__(str(error))
        self.error = error
        self.file = file

    def to_list(self) -> list[dict]:
        return [{"code": d.code, "message": d.message + (f" ({d.hint})" if d.hint else ""),
                 "location": d.location()} for d in self.error.errors]


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _document_field(prepared: PreparedPolicy) -> str | None:
    for field in prepared.meta.input_type.fields:
        if str(field.type) in ("cpf", "cnpj"):
            return field.name
    return None


class PolicyService:
    def __init__(self, store: Store, env: Environment, is_inline=lambda name: False, folder: str | None = None,
                 cache_dir: str | None = None, functions=None):
        self.store = store
        self.env = env
        self.is_inline = is_inline
        self.folder = Path(folder).resolve() if folder else None
        self.cache_dir = cache_dir or None
        self.functions = functions
        self.active: dict[str, ActivePolicy] = {}
        #: Files (or policy names) whose last load failed: path -> error list. Shown by the API.
        self.problems: dict[str, list[dict]] = {}
        self._generation = -1
        self._lock = threading.RLock()
        #: policy name -> the file (resolved path) that declares it; a second file is a problem.
        self._owners: dict[str, str] = {}

    # ---- compiling ----
    def compile(self, source: str, file: str) -> PreparedPolicy:
        try:
            return compile_policy(source, file, self.env, self.cache_dir)
        except PolicyError as error:
            raise PolicyRejected(error, file) from None

    def _active_from(self, row: dict, prepared: PreparedPolicy | None = None) -> ActivePolicy:
        prepared = prepared or self.compile(row["source"], row["origin"] or row["name"])
        # On the event loop only when nothing can make it slow: no lookup waits on I/O and no
        # loop runs over an input list (its cost would grow with the request).
        inline = not prepared.meta.input_loops and \
            all(self.is_inline(spec.qualified_name) for spec in prepared.meta.connectors)
        return ActivePolicy(prepared, row["revision"], row["id"], row["source_hash"], inline,
                            _document_field(prepared))

    # ---- lifecycle ----
    def start(self) -> None:
        """Sync the folder into the store, then load every active version."""
        if self.folder is not None:
            for path in sorted(self.folder.rglob(f"*{SUFFIX}")):
                self.sync_file(path)
        self.refresh(force=True)

    def sync_file(self, path: Path) -> bool:
        """Publish a policy file if it changed since it was last synced. False when it is broken."""
        key = str(path.resolve())  # one spelling per file, however the folder was given
        try:
            source = read_policy(path)
        except PolicyError as error:
            self._problem(key, [{"code": "UNREADABLE", "message": d.message, "location": f"{key}:{d.span.line}:{d.span.column}"}
                                for d in error.diagnostics])
            return False
        digest = source_digest(source)
        if self.store.file_hash(key) == digest:
            # Synced before, unchanged since (a restart, a save without edits, another worker's
            # watcher): whatever is active stays, even a version published over HTTP.
            name = self.store.file_policy_name(key, digest)
            if name is not None and not self._claim(name, key, source):
                return False
            self.problems.pop(key, None)
            return True
        try:
            prepared = self.compile(source, key)
        except PolicyRejected as rejected:
            self._problem(key, rejected.to_list())
            return False
        with self._lock:  # store and install in one step: concurrent activations cannot cross
            if not self._claim(prepared.name, key, source):
                return False
            self.problems.pop(key, None)
            row, created = self.store.publish_version(
                prepared.name, prepared.version, source, digest, f"file:{key}", "file", "file changed",
                only_if_changed=True)
            self.store.remember_file(key, digest)
            self._install(prepared.name, self._active_from(row, prepared))
        if created:
            log.info("policy %s revision %d published from %s", prepared.name, row["revision"], key)
        return True

    def _claim(self, name: str, key: str, source: str) -> bool:
        """Make `key` the file of policy `name`, unless another existing file declares it (then report it)."""
        with self._lock:
            owner = self._owners.get(name)
            if owner is not None and owner != key and Path(owner).is_file():
                found = re.search(rf"^policy\s+{re.escape(name)}\b", source, re.M)
                line = source.count("\n", 0, found.start()) + 1 if found else 1
                message = (f"policy '{name}' is already declared by {owner}; this file is ignored "
                           f"and the running version keeps serving")
                self._problem(key, [{"code": "DUPLICATE_POLICY_NAME", "message": message,
                                     "location": f"{key}:{line}:1"}])
                return False
            for other in [n for n, file in self._owners.items() if file == key and n != name]:
                del self._owners[other]  # the file now declares another policy
            self._owners[name] = key
            return True

    def forget_file(self, path: Path) -> None:
        """A policy file was removed: its names are free, and files that lost to it are synced again."""
        key = str(path.resolve())
        with self._lock:
            self.problems.pop(key, None)
            released = [n for n, file in self._owners.items() if file == key]
            for name in released:
                del self._owners[name]
            waiting = [Path(file) for file, errors in self.problems.items()
                       if released and any(e.get("code") == "DUPLICATE_POLICY_NAME" for e in errors)]
        for other in sorted(waiting):
            if other.is_file():
                self.sync_file(other)

    def _problem(self, key: str, errors: list[dict]) -> None:
        self.problems[key] = errors
        first = errors[0] if errors else {}
        log.warning("policy file %s rejected, the running version keeps serving: %s %s at %s",
                    key, first.get("code"), first.get("message"), first.get("location"))

    def publish(self, source: str, by: str, expected_name: str | None = None) -> tuple[ActivePolicy, bool]:
        """Check, compile, store and activate a new revision. Raises PolicyRejected; never half-done."""
        prepared = self.compile(source, f"<{expected_name or 'published'}>")
        if expected_name is not None and prepared.name != expected_name:
            raise NameMismatch(expected_name, prepared.name)
        with self._lock:  # store and install in one step: concurrent activations cannot cross
            row, created = self.store.publish_version(prepared.name, prepared.version, source,
                                                      source_digest(source), f"api:{by}", by, "published",
                                                      only_if_changed=True)
            active = self._active_from(row, prepared)
            self._install(prepared.name, active)
        return active, created

    def rollback(self, name: str, revision: int, by: str) -> ActivePolicy:
        row = self.store.policy_version(name, revision)
        if row is None:
            raise LookupError(f"policy {name} has no revision {revision}")
        active = self._active_from(row)  # compiled before activation: a version that no longer compiles stays out
        with self._lock:
            self.store.activate(name, revision, by, f"rollback to revision {revision}")
            self._install(name, active)
        return active

    def _install(self, name: str, active: ActivePolicy) -> None:
        with self._lock:
            running = dict(self.active)
            running[name] = active
            self.active = running  # one assignment: readers see the old dict or the new one

    def refresh(self, force: bool = False) -> bool:
        """Load versions activated elsewhere (other workers). True when something changed."""
        generation = self.store.activation_generation()
        if not force and generation == self._generation:
            return False
        with self._lock:
            running = dict(self.active)
            changed = False
            for name, row in self.store.active_versions().items():
                current = running.get(name)
                if current is not None and current.version_id == row["id"]:
                    continue
                try:
                    running[name] = self._active_from(row)
                    changed = True
                    self.problems.pop(f"policy:{name}", None)
                except PolicyRejected as rejected:  # e.g. a plugin function went away
                    self.problems[f"policy:{name}"] = rejected.to_list()
                    log.error("policy %s revision %d no longer compiles; keeping what runs", name, row["revision"])
            self.active = running
            self._generation = generation
        return changed

    def get(self, name: str) -> ActivePolicy | None:
        return self.active.get(name)


class NameMismatch(Exception):
    def __init__(self, expected: str, found: str):
        super().__init__(f"the source declares policy '{found}', not '{expected}'")
        self.expected = expected
        self.found = found


class FolderWatcher:
    """Hot reload: publishes edited policy files (watchfiles), in a daemon thread."""

    def __init__(self, service: PolicyService, debounce_ms: int = 200, on_reload=None):
        self.service = service
        self.on_reload = on_reload  # a prometheus Counter labelled by result, or None
        self.debounce_ms = debounce_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0

    def start(self) -> None:
        if self.service.folder is None or not self.service.folder.is_dir():
            return
        self._thread = threading.Thread(target=self._run, name="regua-policy-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from watchfiles import watch

        for changes in watch(self.service.folder, stop_event=self._stop, debounce=self.debounce_ms,
                             rust_timeout=500, yield_on_timeout=False, raise_interrupt=False):
            paths = sorted({Path(p) for _, p in changes if p.endswith(SUFFIX)})
            for path in paths:
                if path.exists():
                    try:
                        ok = self.service.sync_file(path)
                    except Exception as error:  # noqa: BLE001 — the watcher must survive anything
                        ok = False
                        log.error("reloading %s failed: %s", path, type(error).__name__)
                    if self.on_reload is not None:
                        self.on_reload.labels("ok" if ok else "rejected").inc()
                else:
                    log.warning("policy file %s was removed; its last version keeps serving", path)
                    self.service.forget_file(path)
            self.reloads += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
