"""The `regua` command line: one group, its commands listed once below, one module per group of
commands (policy authoring, the server, API keys, the portfolio, collection, monitoring, KPIs, the
language server).

Command modules import their heavy dependencies inside the commands, so `regua --help` and
`regua --version` stay quick.
"""

from __future__ import annotations

import click

from regua import __version__

from . import collect, experiments, explain, keys, kpis, lab, lsp, monitor, policy, portfolio, purge, serve


class _Main(click.Group):
    def invoke(self, ctx):
        """A PostgreSQL store that cannot be used (not installed, unreachable) is one line, without
        the password, from any command: never a traceback."""
        from regua.postgres import PostgresUnavailable

        try:
            return super().invoke(ctx)
        except PostgresUnavailable as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_Main)
@click.version_option(version=__version__, package_name="regua")
def main() -> None:
    """Régua: credit and collection policies, checked, compiled and explained."""


COMMANDS: list[click.Command] = [
    policy.check_command,
    policy.fmt_command,
    policy.eval_command,
    explain.explain_command,
    policy.test_command,
    policy.graph_command,
    policy.plugins_command,
    portfolio.import_command,
    kpis.kpis_command,
    collect.collect_command,
    collect.simulate_command,
    collect.queue_command,
    collect.deliveries_group,
    monitor.monitor_command,
    monitor.limits_command,
    purge.purge_command,
    lab.replay_command,
    lab.backtest_command,
    serve.serve_command,
    experiments.experiments_group,
    keys.keys_group,
    lsp.lsp_command,
]

for _command in COMMANDS:
    main.add_command(_command)
