"""regua-plugin-exemplo: a complete third-party Régua plugin.

- `bureau.exemplo(cnpj)`: a bureau connector (regua_plugin_exemplo.bureau);
- `faixa_serasa(score)`: a typed policy function (regua_plugin_exemplo.funcoes);
- a decision sink that keeps every recorded decision (regua_plugin_exemplo.plugin).

Régua finds it through the entry point `exemplo` in the group `regua` (see pyproject.toml).
"""

__version__ = "0.1.0"
