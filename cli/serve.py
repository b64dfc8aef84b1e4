"""`regua serve`: the HTTP server.

`regua serve` resolves the configuration once, exports the command-line overrides as REGUA_*
variables (so every worker process, started by uvicorn or granian, builds the same settings),
applies the store's migrations before any worker starts, then runs the ASGI server.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from regua.server.scopes import SANDBOX_KEY

from .common import err, store_variable

if TYPE_CHECKING:
    from regua.server.config import Settings

APP_FACTORY = "regua.server.app:app_from_env"
EXAMPLE_INPUT = Path(__file__).resolve().parent.parent / "examples" / "pedido_b2b.json"


def curl_example(settings: Settings) -> str:
    """A request that works exactly as printed against this server (sandbox key in sandbox mode)."""
    host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::") else settings.server.host
    key = SANDBOX_KEY if settings.sandbox and not settings.auth.keys else "<your API key>"
    order = json.loads(EXAMPLE_INPUT.read_text(encoding="utf-8")) if EXAMPLE_INPUT.exists() else {}
    body = json.dumps({"input": order, "trace": "rules"}, ensure_ascii=False, separators=(",", ":"))
    return (f"curl -s http://{host}:{settings.server.port}/evaluate/credito_b2b "
            f"-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{body}'")


def console_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::") else settings.server.host
    return f"http://{host}:{settings.server.port}/console/"


def _overrides(**values) -> dict[str, str]:
    names = {"sandbox": "REGUA_SANDBOX", "host": "REGUA_SERVER__HOST", "port": "REGUA_SERVER__PORT",
             "workers": "REGUA_SERVER__WORKERS", "runner": "REGUA_SERVER__RUNNER", "db": store_variable(values.get("db")),
             "policies": "REGUA_POLICIES__FOLDER"}
    return {names[k]: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items() if v is not None}


@click.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML configuration file.")
@click.option("--sandbox", is_flag=True, default=None, help="Local development: sandbox bureau and API key.")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8000).")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (default 1).")
@click.option("--runner", type=click.Choice(["uvicorn", "granian"]), help="ASGI server (default uvicorn).")
@click.option("--db", help="The store: a SQLite file (default var/regua.db) or a postgresql:// URL shared by replicas.")
@click.option("--policies", help="Policies folder (default policies).")
def serve_command(config_path, sandbox, host, port, workers, runner, db, policies) -> None:
    """Run the HTTP server: POST /evaluate, policies, decisions, /metrics."""
    os.environ.update(_overrides(sandbox=sandbox, host=host, port=port, workers=workers, runner=runner, db=db,
                                 policies=policies))
    if config_path:
        os.environ["REGUA_CONFIG"] = str(Path(config_path).resolve())
    from regua.server.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as error:
        err.print(f"regua serve: configuration error: {error}", style="red", markup=False)
        sys.exit(2)
    from regua.postgres import PostgresUnavailable
    from regua.server.store import open_store

    try:
        open_store(settings.store.location).close()  # migrations run once, here, before any worker
    except PostgresUnavailable as error:
        err.print(f"regua serve: {error}", style="red", markup=False)
        sys.exit(2)
    _banner(settings)
    if settings.server.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="regua-metrics-")
    try:
        _run(settings)
    finally:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
        if folder.startswith(tempfile.gettempdir()) and "regua-metrics-" in folder:
            shutil.rmtree(folder, ignore_errors=True)


def _banner(settings: Settings) -> None:
    where = f"http://{settings.server.host}:{settings.server.port}"
    lines = [f"Régua listening on {where} ({settings.server.runner}, {settings.server.workers} worker(s))",
             f"store: {_store_label(settings)} · policies: {settings.policies.folder}"
             + (" (watched)" if settings.policies.watch else ""),
             f"API docs: {where}/schema · metrics: {where}/metrics"]
    if settings.log_format == "json":  # stderr stays one JSON object per line, for the log collector
        import logging

        from regua.server.logs import configure_logging

        configure_logging(settings.log_level, settings.server.access_log, "json")
        log = logging.getLogger("regua.server")
        if settings.sandbox:
            log.warning("SANDBOX MODE: synthetic bureau answers, development API key; never use in production")
        for line in lines:
            log.info("%s", line)
    elif settings.sandbox:
        from rich.panel import Panel

        err.print(Panel("\n".join([
            "SANDBOX MODE — for local development only.",
            "Bureau lookups are answered by the SANDBOX bureau with SYNTHETIC data.",
            f"The development API key '{SANDBOX_KEY}' has every scope." if not settings.auth.keys else
            "API keys come from the configuration.",
            "Never run sandbox mode in production."]), style="bold yellow", title="SANDBOX"), markup=False)
    if settings.log_format != "json":
        for line in lines:
            err.print(line, markup=False)
    click.echo("Try it:\n" + curl_example(settings), err=False)
    click.echo(f"Console: {console_url(settings)} (sign in with an API key)", err=False)
    sys.stdout.flush()


def _store_label(settings: Settings) -> str:
    if settings.store.url:
        from regua.postgres import redacted

        return redacted(settings.store.url)  # never the password
    return settings.store.path


def _run(settings: Settings) -> None:  # pragma: no cover — exercised by the end-to-end tests, in a subprocess
    server = settings.server
    if server.runner == "granian":
        from granian import Granian
        from granian.constants import Interfaces
        from granian.http import HTTP1Settings

        # Slow clients (regua.server.slow_clients): granian bounds the headers itself, the app the body.
        http1 = HTTP1Settings(header_read_timeout=max(1, int(server.header_timeout * 1000)))
        Granian(APP_FACTORY, address=server.host, port=server.port, interface=Interfaces.ASGI,
                workers=server.workers, factory=True, log_access=server.access_log, http1_settings=http1).serve()
        return
    import uvicorn

    from regua.server.uvicorn_protocol import HeaderTimeoutHttpTools

    # uvicorn has no header timeout of its own: its httptools protocol with one (server.header_timeout).
    uvicorn.run(APP_FACTORY, factory=True, host=server.host, port=server.port, workers=server.workers,
                log_config=None, access_log=server.access_log, timeout_graceful_shutdown=30,
                server_header=False, http=HeaderTimeoutHttpTools)
