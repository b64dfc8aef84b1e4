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


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use (click's documented lazy-loading
    pattern: list_commands names them without importing, get_command imports the one asked for)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(version=__version__, package_name="regua")
def main() -> None:
    """Régua: credit and collection policies, checked, compiled and explained."""
