"""Régua: an open credit-and-collection policy engine for the Brazilian market.

Everything installs under this one name. Each subpackage lives in its own top-level folder of the
repository (pyproject.toml maps them):

- `regua.dsl` (dsl/): the policy language: grammar, parser, checker, formatter;
- `regua.engine` (engine/): compile policies once, evaluate them many times, explain decisions;
- `regua.plugins` (plugins/): the plugin system and the built-in connectors;
- `regua.portfolio` (portfolio/): the portfolio and its workflows: collection and credit monitoring;
- `regua.server` (server/): the HTTP server;
- `regua.cli` (cli/): the `regua` command line.
"""

# The installed version, kept equal to pyproject.toml's by tests/test_cli.py; `regua --version`
# reads it here (no importlib.metadata scan of the installed distributions).
__version__ = "0.1.0"
