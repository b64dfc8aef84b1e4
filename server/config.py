"""Server configuration: a TOML file plus environment variables, decoded with msgspec.

    settings = load_settings("regua.toml")          # or REGUA_CONFIG=regua.toml
    settings.store.path, settings.server.port, ...

Every field has a default, so an empty file (or none) is a valid configuration. Environment
variables override the file: `REGUA_<SECTION>__<FIELD>` (double underscore between the parts),
e.g. `REGUA_SERVER__PORT=9000`, `REGUA_STORE__PATH=/var/lib/regua/regua.db`, and the top-level
`REGUA_SANDBOX=true`. Values from the environment are text and converted to the field's type.
A bad value is reported with its path (`server.port: Expected int, got str`) as ConfigError.
See docs/operating.md for the full list.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal, Mapping

import msgspec

from regua.portfolio.collection.settings import CollectionSettings
from regua.portfolio.monitoring.settings import MonitoringSettings

from .scopes import SANDBOX_KEY, SCOPES

__all__ = ["SANDBOX_KEY", "SCOPES"]  # re-exported: defined in server/scopes.py (no heavy imports)
Scope = Literal["evaluate", "decisions:read", "policies:admin", "collection", "monitoring", "lab", "experiments"]
#: SANDBOX_KEY: the API key that sandbox mode accepts when no keys are configured (local development only).


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the field path."""


class ServerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8000
    #: Worker processes (each loads every policy; they share the SQLite file).
    workers: int = 1
    #: ASGI server that `regua serve` runs: uvicorn or granian.
    runner: Literal["uvicorn", "granian"] = "uvicorn"
    #: Largest request body accepted, in bytes (larger ones get 413 PAYLOAD_TOO_LARGE).
    max_body_bytes: int = 1_048_576
    #: Most items in one POST /evaluate/batch.
    batch_max_items: int = 1000
    #: Seconds one decision may spend waiting on all its connector lookups together (retries and
    #: the wait for a free lookup thread included), counted from the request's arrival. A lookup
    #: that has not answered by then is unavailable (CONNECTOR_TIMEOUT): the policy's `available()`
    #: rules or its `on error` decide.
    connector_budget: float = 8.0
    #: Seconds of CPU one evaluation may spend going through lists (comprehensions, `in`, sums);
    #: past it the rules still computing fail with EVALUATION_TIMEOUT and `on error` decides.
    evaluation_budget: float = 1.0
    #: Most items in any list of an input, at any depth (more: 422 TOO_MANY_ITEMS at its path).
    max_list_items: int = 10_000
    #: Seconds a client may take to send a request's headers (then 408 and the connection closed).
    header_timeout: float = 10.0
    #: Seconds a client may take to send a request's body, from its headers (then 408 REQUEST_TIMEOUT).
    body_timeout: float = 30.0
    #: One log line per request (masked). Off by default: the decision log and /metrics cover traffic.
    access_log: bool = False
    #: Sandbox mode may listen beyond loopback only when this is set.
    allow_public_sandbox: bool = False
    #: Evaluate experiments' shadow challengers in a child process (one per worker, started with
    #: the first shadow, at a lower priority), off the serving process's GIL and core; false:
    #: on a thread of the worker itself.
    shadow_process: bool = True


class StoreSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: A PostgreSQL store shared by every replica, `postgresql://user:password@host:5432/regua` (the
    #: `postgres` extra; also `REGUA_STORE_URL`). Empty (the default): the embedded SQLite file `path`.
    url: str = ""
    #: The SQLite file (WAL mode) holding policy versions, decisions and the connector cache. Under
    #: var/ by default, with its -wal/-shm and lock files, so runtime files stay out of the tree.
    path: str = "var/regua.db"
    #: Decisions are written in batches: at most this many milliseconds after the response…
    flush_interval_ms: int = 50
    #: …or as soon as this many are waiting.
    flush_max: int = 512
    #: "batched" (fast; a crash can lose the last flush_interval_ms) or "sync" (written before responding).
    durability: Literal["batched", "sync"] = "batched"
    #: On SQLite, the batched inserts are made by a child process (one per worker), off the serving
    #: process's interpreter lock; false: by a thread of the worker. PostgreSQL: always a thread.
    writer_process: bool = True
    #: LGPD retention: decisions older than this many days lose their personal data (input,
    #: document) and cached bureau answers are deleted, every 6 hours (0: keep, purge by hand with
    #: `regua purge`). See docs/operating.md.
    retention_days: int = 0
    #: Replay jobs of the policy lab (POST /replays) older than this many days are deleted with
    #: their reports, every 6 hours (0: only with the decisions, by retention_days or `regua purge`).
    replay_retention_days: int = 0

    @property
    def location(self) -> str:
        """Where the server's store lives: the PostgreSQL URL when set, else the SQLite path."""
        return self.url or self.path


class PolicySettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: Folder of *.regua files loaded at start and watched for changes.
    folder: str = "policies"
    #: Reload policies when files change (a broken edit keeps the running version).
    watch: bool = True
    #: How often each worker looks for versions published by other workers, in seconds.
    sync_interval: float = 1.0
    #: Compiled-policy cache folder (empty: memory only).
    cache_dir: str = ""
    #: Longest policy text accepted, in characters (E007 beyond; parsing costs ~85 bytes of
    #: memory per character: a 100,000-rule policy is ~15 million characters).
    max_source_chars: int = 16_000_000
    #: Longest single text literal, name or number in a policy, in characters (E007 beyond).
    max_literal_chars: int = 10_000


class ApiKey(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: Who uses the key (shown in logs and in the decision log, never the key itself).
    name: str
    #: "sha256:<hex>" of the key; make one with `regua keys new`.
    hash: str
    scopes: list[Scope] = []


class AuthSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    keys: list[ApiKey] = []


class PluginsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    allow: list[str] | None = None
    deny: list[str] = []
    #: Per-plugin settings, passed to the plugin hooks as `config`.
    config: dict[str, dict] = {}


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: Local development: sandbox bureau for every bureau name, the sandbox API key. Loud on purpose.
    sandbox: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: "text" (one readable line per event) or "json" (one JSON object per line, for log collectors).
    log_format: Literal["text", "json"] = "text"
    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    policies: PolicySettings = PolicySettings()
    auth: AuthSettings = AuthSettings()
    plugins: PluginsConfig = PluginsConfig()
    collection: CollectionSettings = CollectionSettings()
    monitoring: MonitoringSettings = MonitoringSettings()


ENV_PREFIX = "REGUA_"
_NOT_SETTINGS = {"REGUA_CONFIG", "REGUA_PLUGINS_ALLOW", "REGUA_PLUGINS_DENY", "REGUA_STORE_URL"}
#: Short names of settings, as deployment tools spell them (the long form wins when both are set).
_ALIASES = {"REGUA_STORE_URL": ("store", "url")}


def _env_overrides(environ: Mapping[str, str]) -> dict:
    overrides: dict = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in _NOT_SETTINGS:
            continue
        parts = key[len(ENV_PREFIX):].lower().split("__")
        if parts[0] not in Settings.__struct_fields__:
            continue
        target = overrides
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _env_value(value, _is_list(parts))
    for alias, (section, name) in _ALIASES.items():
        if environ.get(alias):
            overrides.setdefault(section, {}).setdefault(name, environ[alias])
    return overrides


def _is_list(parts: list[str]) -> bool:
    """Whether the setting at this path is a list (plugins.allow, plugins.deny)."""
    struct: type = Settings
    for part in parts:
        fields = {f.name: f.type for f in msgspec.structs.fields(struct)} if isinstance(struct, type) and \
            issubclass(struct, msgspec.Struct) else {}
        if part not in fields:
            return False
        struct = fields[part]
    return "list[" in str(struct)


def _env_value(text: str, is_list: bool):
    """JSON for lists and tables; a list may also be comma-separated (`a,b`). Everything else
    stays text: msgspec converts it to the field's type."""
    stripped = text.strip()
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            return msgspec.json.decode(stripped)
        except msgspec.DecodeError:
            return text
    if is_list:
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return text


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `path` (or $REGUA_CONFIG, or none) with REGUA_* variables on top."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("REGUA_CONFIG") or None
    data: dict = {}
    where = "defaults"
    if path:
        where = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: {error}") from None
    overrides = _env_overrides(environ)
    if overrides:
        data = _merge(data, overrides)
        where += " + environment"
    try:
        # strict=False: environment values are text ("9000", "true") for typed fields.
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{where}: {_readable(str(error))}") from None
    _validate(settings, where)
    return settings


def _readable(message: str) -> str:
    """msgspec says "Expected `int`, got `str` - at `$.server.port`": lead with the path."""
    if " - at `$." in message:
        text, path = message.rsplit(" - at `$.", 1)
        return f"{path.rstrip('`')}: {text}"
    return message


def _validate(settings: Settings, where: str) -> None:
    problems = []
    if not 0 < settings.server.port < 65536:
        problems.append(f"server.port: {settings.server.port} is not a TCP port")
    problems += [f"collection.{problem}" for problem in settings.collection.problems()]
    problems += [f"monitoring.{problem}" for problem in settings.monitoring.problems()]
    collection = settings.collection
    missing = collection.creditor_missing()
    if collection.enabled and missing and not (settings.sandbox and len(missing) == 3):  # sandbox: a test company
        problems.append(f"collection.enabled: the scheduler needs {', '.join(missing)} (every collection document "
                        "names the creditor: name, address and CNPJ; CDC art. 42-A)")
    if settings.server.workers < 1:
        problems.append("server.workers: must be at least 1")
    if not settings.server.connector_budget > 0:
        problems.append("server.connector_budget: must be more than 0 seconds")
    if not (settings.server.header_timeout > 0 and settings.server.body_timeout > 0):
        problems.append("server.header_timeout and server.body_timeout: must be more than 0 seconds")
    if not settings.server.evaluation_budget > 0:
        problems.append("server.evaluation_budget: must be more than 0 seconds")
    if settings.policies.max_source_chars < 1000 or settings.policies.max_literal_chars < 100:
        problems.append("policies.max_source_chars and policies.max_literal_chars: at least 1000 and 100")
    if settings.server.max_list_items < 1:
        problems.append("server.max_list_items: must be at least 1")
    if settings.server.max_body_bytes < 1024:
        problems.append("server.max_body_bytes: must be at least 1024")
    if settings.store.retention_days < 0:
        problems.append("store.retention_days: cannot be negative (0 keeps everything)")
    if settings.store.replay_retention_days < 0:
        problems.append("store.replay_retention_days: cannot be negative (0 keeps replay jobs with the decisions)")
    if settings.store.url and not settings.store.url.startswith(("postgresql://", "postgres://")):
        problems.append("store.url: expected a postgresql:// URL (leave it empty for the SQLite file store.path)")
    if settings.store.flush_interval_ms < 1 or settings.store.flush_max < 1:
        problems.append("store.flush_interval_ms and store.flush_max: must be positive")
    names = set()
    for i, key in enumerate(settings.auth.keys):
        if not re.fullmatch(r"sha256:[0-9a-fA-F]{64}", key.hash):
            problems.append(f"auth.keys[{i}].hash: expected 'sha256:' and 64 hex digits (make one with `regua keys new`)")
        if key.name in names:
            problems.append(f"auth.keys[{i}].name: '{key.name}' is used twice")
        names.add(key.name)
    if settings.sandbox and settings.server.host not in ("127.0.0.1", "localhost", "::1") \
            and not settings.server.allow_public_sandbox:
        problems.append(f"server.host: sandbox mode listens on loopback only (got {settings.server.host}); "
                        "set server.allow_public_sandbox = true to override")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
