"""The plugin module Régua loads (entry point `exemplo` in the group `regua`).

Each function marked with @hookimpl implements one hook of plugins/hookspecs.py.
"""

from __future__ import annotations

import json
import os

from regua.plugins.hookspecs import hookimpl

from .bureau import ExemploBureau
from .funcoes import FAIXA_SERASA

#: Every decision Régua recorded while this plugin was loaded (the stored rows, documents masked).
DECISOES: list[dict] = []
#: When set, each recorded decision is also appended to this file as one JSON line.
ARQUIVO_ENV = "REGUA_EXEMPLO_DECISOES"


@hookimpl
def regua_bureau_connectors(config):
    # config holds every plugin's settings by plugin name; ours is under "exemplo".
    settings = (config or {}).get("exemplo", {})
    ttl = settings.get("ttl")
    return [ExemploBureau(ttl=float(ttl) if ttl is not None else None)]


@hookimpl
def regua_functions(config):
    return [FAIXA_SERASA]


@hookimpl
def regua_decision_recorded(decision, record):
    row = dict(record)
    DECISOES.append(row)
    path = os.environ.get(ARQUIVO_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
