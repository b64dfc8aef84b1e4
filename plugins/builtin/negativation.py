"""Built-in negativation services: a sandbox that behaves like a bureau, and an HTTP connector.

Both implement plugins.connectors.NegativationService: `submit(request)` carries out
`request.action` (include, remove or status) and returns a NegativationRecord.

The services live in negativation_sandbox.py (SandboxNegativation, name "sandbox": offline
development and tests, following the rules of ../shared/domain-br.md like a bureau would) and
negativation_http.py (HTTPNegativation: a provider's JSON API, configured, not coded). This module
is the plugin: it builds them from the settings.

Configuration (plugin settings, section "negativation")
-------------------------------------------------------
    {"negativation": {
        "sandbox": {"waiting_days": 10, "waiting_days_by_uf": {"SP": 15}, "path": "neg.db"},
        "http": [{"name": "serasa_pefin", "base_url": "https://provider.example/api",
                  "auth_header": "Authorization", "auth_value_env": "SERASA_TOKEN",
                  "endpoints": {"include": "POST /v1/negativacoes",
                                "remove": "DELETE /v1/negativacoes/{protocol}",
                                "status": "GET /v1/negativacoes/{protocol}"},
                  "response_fields": {"protocol": "dados.protocolo", "status": "dados.situacao"},
                  "status_map": {"NOTIFICADO": "notice_sent", "INCLUIDO": "included",
                                 "BAIXADO": "removed"}}]}}
"""

from __future__ import annotations

from regua.plugins.connectors import NegativationService
from regua.plugins.hookspecs import hookimpl
from regua.plugins.mapping import get_path

from .negativation_http import HTTPNegativation, ProviderError
from .negativation_sandbox import SandboxNegativation

__all__ = ["HTTPNegativation", "ProviderError", "SandboxNegativation", "get_path", "regua_negativation_services"]


@hookimpl
def regua_negativation_services(config):
    settings = (config or {}).get("negativation", {}) or {}
    services: list[NegativationService] = [SandboxNegativation.from_config(settings.get("sandbox", {}))]
    services += [HTTPNegativation.from_config(item) for item in settings.get("http", []) or []]
    return services
