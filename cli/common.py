"""What every command shares: the consoles, policy files, the plugin registry, diagnostics,
JSON errors, and the configuration options of the workflow commands (collect, monitor…)."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from regua.dsl.diagnostics import PolicyError
    from regua.server.config import Settings

POLICY_SUFFIX = ".regua"


class LazyConsole:
    """A rich Console made on first use: `regua --version` and `--help` never import rich."""

    def __init__(self, **options):
        self._options = options
        self._console = None

    def __getattr__(self, name: str):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


out = LazyConsole(highlight=False, soft_wrap=True)
err = LazyConsole(stderr=True, highlight=False, soft_wrap=True)


def compile_cache_dir() -> str | None:
    """Where the command line keeps compiled policies (engine.compiler's disk cache, keyed by the
    source, the environment and the compiler version): $REGUA_CACHE_DIR, else
    $XDG_CACHE_HOME/regua, else ~/.cache/regua. REGUA_CACHE_DIR=off turns it off."""
    from regua.dsl.grammar_cache import user_cache_dir

    return user_cache_dir()


def policy_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.rglob(f"*{POLICY_SUFFIX}"))
            if not found:
                raise click.BadParameter(f"{raw}: no *{POLICY_SUFFIX} file in this folder", param_hint="PATH")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise click.BadParameter(f"{raw}: no such file or folder", param_hint="PATH")
    return files


def registry(sandbox_aliases: bool = False, every_hook: bool = False):
    """The installed plugins (REGUA_PLUGINS_ALLOW / REGUA_PLUGINS_DENY apply), as a Registry: what
    policies need (bureaus, functions), or with `every_hook` also the channels, negativation
    services and monitoring sources (`regua plugins` lists them)."""
    from regua.plugins.manager import PluginSettings
    from regua.plugins.registry import Registry

    if every_hook:
        return Registry.load(PluginSettings.from_env(), sandbox_aliases=sandbox_aliases)
    return Registry.for_policies(PluginSettings.from_env(), sandbox_aliases=sandbox_aliases)


def print_diagnostics(error: PolicyError) -> None:
    from regua.dsl.diagnostics import Severity

    for diagnostic in error.diagnostics:
        style = "red" if diagnostic.severity is Severity.ERROR else "yellow"
        lines = diagnostic.render(error.source).split("\n")
        err.print(lines[0], style=style, markup=False)
        for extra in lines[1:]:
            err.print(_coloured_snippet(extra), markup=False)


def _coloured_snippet(line: str):
    """A `  12 | policy text` line of a diagnostic with the policy text coloured as editors do
    (dsl/highlight.py); the caret line and anything else stay plain. On a console that is not a
    terminal rich drops the colours, so piped output is unchanged."""
    number, bar, code = line.partition(" | ")
    if not bar or not number.strip().isdigit():
        return line
    from rich.syntax import Syntax
    from rich.text import Text

    from regua.dsl.highlight import ReguaLexer

    coloured = Syntax(code, ReguaLexer(), theme="ansi_dark", background_color="default").highlight(code)
    coloured.rstrip()
    return Text(number + bar) + coloured


def read_json(name: str):
    """The JSON document in file `name` (- : standard input); a file that is not JSON, or not
    text, is a MALFORMED_JSON error with its location (exit 2), never a traceback. Numbers with a
    fraction or an exponent are read as Decimal from their text, as the server reads them."""
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as error:
        fail_json("UNREADABLE", f"{name}: {error.strerror or error}")
    try:
        return json.loads(data, parse_float=Decimal)
    except json.JSONDecodeError as error:
        fail_json("MALFORMED_JSON", f"{name}:{error.lineno}:{error.colno}: {error.msg}")
    except UnicodeDecodeError as error:
        fail_json("MALFORMED_JSON", f"{name}: not UTF-8 text (byte {error.start})")


def fail_json(code: str, message: str, errors: list | None = None):
    click.echo(json.dumps({"code": code, "message": message, "errors": errors or []}, ensure_ascii=False, indent=2),
               err=True)
    sys.exit(2)


def workflow_options(command):
    for option in reversed([
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML configuration file."),
        click.option("--db", help="The store: a SQLite file or a postgresql:// URL (default: the configuration's store)."),
        click.option("--policies", help="Policies folder (default: the configuration's policies.folder)."),
        click.option("--sandbox", is_flag=True, default=False, help="Offline: e-mails to <db folder>/outbox, sandbox bureau."),
    ]):
        command = option(command)
    return command


def store_variable(db: str | None) -> str:
    """The setting `--db` sets: store.url for a postgresql:// URL, else the SQLite file store.path."""
    return "REGUA_STORE__URL" if db and db.startswith(("postgresql://", "postgres://")) else "REGUA_STORE__PATH"


def workflow_settings(config_path, db, policies, sandbox) -> Settings:
    """Settings for a command working on the store (`settings.store.location`: the PostgreSQL
    database store.url when set, else the SQLite file store.path); `--db` sets whichever its
    value is (store_variable)."""
    from regua.server.config import ConfigError, load_settings

    environ = dict(os.environ)
    for key, value in ((store_variable(db), db), ("REGUA_POLICIES__FOLDER", policies)):
        if value:
            environ[key] = value
    if sandbox:
        environ["REGUA_SANDBOX"] = "true"
    try:
        return load_settings(config_path, environ)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def load_folder(settings: Settings, kind: str, **registry_options):
    from regua.dsl.diagnostics import PolicyError
    from regua.engine.compiler import compile_file
    from regua.server.collection import plugin_config

    """The plugins' registry and the policies of `kind` in the policies folder, compiled; every
    policy that does not compile is reported (file:line:col) and stops the command."""
    from regua.plugins.manager import PluginSettings
    from regua.plugins.registry import Registry

    if not settings.store.url and not Path(settings.store.path).exists():
        raise click.UsageError(f"{settings.store.path}: no such database (load the portfolio with `regua import`)")
    registry = Registry.load(PluginSettings(allow=settings.plugins.allow, deny=list(settings.plugins.deny),
                                            config=plugin_config(settings)), **registry_options)
    env = registry.environment()
    policies, failed = {}, False
    for path in sorted(Path(settings.policies.folder).rglob(f"*{POLICY_SUFFIX}")):
        try:
            prepared = compile_file(path, env)
        except PolicyError as error:
            print_diagnostics(error)
            failed = True
            continue
        if prepared.meta.kind == kind:
            policies[prepared.name] = prepared
    if failed:
        raise click.ClickException("fix the policies above first")
    if not policies:
        raise click.UsageError(f"{settings.policies.folder}: no {kind} policy (kind {kind})")
    return registry, policies
