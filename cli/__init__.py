"""The `regua` command line: one group, its commands listed once below, one module per group of
commands (policy authoring, the server, API keys, the portfolio, collection, monitoring, KPIs, the
language server).

Start-up time matters (`regua --version` ≤ 0.15 s, `regua eval` ≤ 0.3 s with the compile cache:
issue 14), so the group imports a command's module only when that command runs: `regua eval`
never imports the collection, lab or server commands, and `--version` imports none. Command
modules in turn import their heavy dependencies inside the commands. `regua --help` lists every
command, so it imports every command module (but still neither the engine nor the server).
"""

from __future__ import annotations

import importlib
from collections.abc import MutableMapping

import click

from regua import __version__

#: Every command: its name, then where it lives (module of this package : attribute), in the order
#: they were added. tests/test_cli.py checks each name against the loaded command's own name.
COMMANDS: dict[str, str] = {
    "check": "policy:check_command",
    "fmt": "policy:fmt_command",
    "eval": "policy:eval_command",
    "explain": "explain:explain_command",
    "test": "policy:test_command",
    "graph": "policy:graph_command",
    "plugins": "policy:plugins_command",
    "import": "portfolio:import_command",
    "kpis": "kpis:kpis_command",
    "collect": "collect:collect_command",
    "simulate": "collect:simulate_command",
    "queue": "collect:queue_command",
    "deliveries": "collect:deliveries_group",
    "monitor": "monitor:monitor_command",
    "limits": "monitor:limits_command",
    "purge": "purge:purge_command",
    "replay": "lab:replay_command",
    "backtest": "lab:backtest_command",
    "serve": "serve:serve_command",
    "experiments": "experiments:experiments_group",
    "keys": "keys:keys_group",
    "lsp": "lsp:lsp_command",
}


def load_command(name: str) -> click.Command:
    """The command called `name`, importing its module now."""
    module_name, _, attribute = COMMANDS[name].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module_name}"), attribute)


class LazyCommands(MutableMapping):
    """A click group's `commands` mapping that imports a command's module on first access: names
    are known without importing anything (listing, `in`), `get`/`[]` load the one asked for. Click
    and the tests use `group.commands` as a dict; this keeps that true while staying lazy."""

    def __init__(self, loaded: dict[str, click.Command]):
        self._loaded = dict(loaded)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in COMMANDS:
            self._loaded[name] = load_command(name)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in COMMANDS

    def __iter__(self):
        return iter(dict.fromkeys([*COMMANDS, *self._loaded]))

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._loaded))

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError(f"the command line's commands are fixed (cannot remove {name!r})")


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use (see LazyCommands)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands)

    def invoke(self, ctx):
        """A PostgreSQL store that cannot be used (not installed, unreachable) is one line, without
        the password, from any command: never a traceback."""
        from regua.postgres import PostgresUnavailable

        try:
            return super().invoke(ctx)
        except PostgresUnavailable as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=LazyGroup)
@click.version_option(version=__version__, package_name="regua")
def main() -> None:
    """Régua: credit and collection policies, checked, compiled and explained."""
