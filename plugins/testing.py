"""Pytest fixtures and the contract test kit for Régua plugin authors.

This module is a pytest plugin (entry point `pytest11: regua`): once `regua` is installed its
fixtures are available in every pytest run, nothing to import. The kit functions are plain
functions (defined in plugins.contract_kit, re-exported here): import them from
`plugins.testing` and call them in your own tests.

Fixtures
--------
- `regua_plugin_manager(plugin, allow=None, deny=None, config=None)` -> PluginManager with the
  built-ins, installed plugins and `plugin` (an object with hookimpls: a module, a class or an
  instance). When `allow` is given your plugin's name is added to it, so `allow=[]` loads your
  plugin alone. `config` is the per-plugin settings dict ({"my_plugin": {...}}).
- `regua_registry(plugin, allow=None, deny=None, config=None, sandbox_aliases=False)` -> the
  plugins.registry.Registry the engine would use, with a bureau cache in the test's tmp_path.
- `regua_negativation_provider` -> a started FakeNegativationProvider (below), stopped after.

The contract kit
----------------
One call proves an implementation honours its contract; each raises AssertionError naming
the violation (and returns what it saw, for further checks of your own):

- `check_bureau_connector(connector, document=..., deterministic=None, bad_documents=...)`:
  a name usable in policies, sane metadata (timeout, retries, backoff, breaker, ttl, cost as a
  decimal string), `fetch` returns a BureauReport whose fields have the contract's types (a
  msgspec round trip: Decimal money, `date` dates, aware datetimes, known literals), the score
  within its range; the same report twice when the connector is deterministic (argument, or
  attribute `deterministic = True`); for bad documents either a valid report or a
  non-transient ConnectorError — never another exception.
- `check_notification_channel(channel, notification=..., delivered_count=None)`: a
  DeliveryReceipt with the notification's idempotency_key, a known status, aware timestamps
  (sent_at for sent/delivered, delivered_at for delivered, an error for failed), no recipient
  in provider_id/error; the same notification sent twice gives the same receipt (and, when
  `delivered_count()` tells how many messages reached the provider, exactly one).
- `check_negativation_service(service, request=..., advance_clock=None, idempotent=True)`:
  include answers a protocol and notice_sent/waiting/included with the notice's timestamp,
  including again gives the same protocol, status by protocol works, after `advance_clock()`
  (if given: move the service's clock past its waiting period) the record is "included",
  remove answers "removed" and status agrees, an unknown protocol is a non-transient
  ConnectorError, and the protocol (nor reason) never contains the debtor's document.

Connectors may be sync or async; the kit calls them the way the engine does
(plugins.runtime.call_with_deadline, with the connector's own timeout).

Example (tests/test_my_plugin.py of a plugin providing a bureau "acme"):

    from regua.plugins.hookspecs import hookimpl
    from regua.plugins.testing import check_bureau_connector
    from my_plugin import AcmeBureau

    class MyPlugin:
        @hookimpl
        def regua_bureau_connectors(self, config):
            return [AcmeBureau(**config.get("MyPlugin", {}))]

    def test_acme_honours_the_contract():
        check_bureau_connector(AcmeBureau(), document="11222333000181", deterministic=True)

    def test_acme_is_loaded(regua_registry):
        registry = regua_registry(MyPlugin(), allow=[])
        assert "acme" in registry.bureaus
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import deque
from decimal import Decimal

import msgspec
import pytest

from regua.engine.connectors import ConnectorError
from regua.plugins.contract_kit import (  # noqa: F401 — re-exported: the kit is imported from plugins.testing
    CREDITOR_CNPJ,
    DELIVERY_STATUSES,
    KIT_CNPJ,
    KIT_CPF,
    check_bureau_connector,
    check_negativation_service,
    check_notification_channel,
    sample_negativation_request,
    sample_notification,
)
from regua.plugins.contracts import Debt, NegativationRecord, NegativationRequest

__all__ = [
    "check_bureau_connector", "check_notification_channel", "check_negativation_service",
    "sample_notification", "sample_negativation_request", "FakeNegativationProvider", "ManualClock",
    "KIT_CPF", "KIT_CNPJ", "CREDITOR_CNPJ",
]


# ============================================================================================
# Fixtures
# ============================================================================================

def _plugin_name(plugin) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def _settings(plugins: list, allow, deny, config):
    from regua.plugins.manager import PluginSettings

    if allow is not None:
        allow = list(allow) + [_plugin_name(p) for p in plugins if _plugin_name(p) not in allow]
    return PluginSettings(allow=allow, deny=list(deny or []), config=dict(config or {}))


@pytest.fixture
def regua_plugin_manager():
    """Factory: regua_plugin_manager(plugin, allow=None, deny=None, config=None) -> PluginManager."""
    from regua.plugins.manager import get_plugin_manager

    def factory(plugin=None, *more, allow=None, deny=None, config=None):
        plugins = [p for p in (plugin, *more) if p is not None]
        return get_plugin_manager(_settings(plugins, allow, deny, config), extra=plugins)

    return factory


@pytest.fixture
def regua_registry(tmp_path):
    """Factory: regua_registry(plugin, allow=None, deny=None, config=None, sandbox_aliases=False) -> Registry."""
    from regua.plugins.cache import BureauCache
    from regua.plugins.manager import get_plugin_manager
    from regua.plugins.registry import Registry

    def factory(plugin=None, *more, allow=None, deny=None, config=None, sandbox_aliases=False):
        plugins = [p for p in (plugin, *more) if p is not None]
        pm = get_plugin_manager(_settings(plugins, allow, deny, config), extra=plugins)
        return Registry(pm, BureauCache(str(tmp_path / "regua-cache.db")), sandbox_aliases=sandbox_aliases)

    return factory


@pytest.fixture
def regua_negativation_provider():
    """A FakeNegativationProvider listening on 127.0.0.1 for the duration of the test."""
    with FakeNegativationProvider() as provider:
        yield provider


# ============================================================================================
# A fake negativation provider: real HTTP on 127.0.0.1, for HTTP connectors' tests
# ============================================================================================

_PT_STATUS = {"notice_sent": "NOTIFICADO", "waiting": "EM_PRAZO", "included": "INCLUIDO",
              "removed": "BAIXADO", "rejected": "RECUSADO"}
_ERROR_STATUS = {"NOT_FOUND": 404, "CONFLICT": 409, "ALREADY_REMOVED": 409, "INVALID_TRANSITION": 409}


class ManualClock:
    """A clock tests move by hand: pass it where a service takes `clock` (it returns aware UTC)."""

    def __init__(self, start: dt.datetime | None = None):
        self.now = start or dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


class FakeNegativationProvider:
    """A negativation provider's JSON API (Portuguese field names) served on 127.0.0.1:<free port>.

    Behind it is a SandboxNegativation whose clock is `provider.now` (advance with
    `provider.advance(days=...)`). Routes: POST /v1/negativacoes, GET and DELETE
    /v1/negativacoes/{protocolo}; answers {"dados": {"protocolo", "situacao", "notificado_em",
    "incluido_em", "baixado_em", "motivo"}}; errors {"erro": {"codigo", "mensagem"}} (401 without
    the token, 422 for an invalid document). `script(status, body)` makes the next answer(s)
    whatever you need (503, garbage…); `calls` lists (method, path, headers) received.
    `connector(**overrides)` builds the matching plugins.builtin.negativation.HTTPNegativation.
    """

    token = "Bearer kit-token"

    def __init__(self, *, waiting_days: int = 10, start: dt.datetime | None = None):
        from regua.plugins.builtin.negativation import SandboxNegativation

        self.now = start or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self.backend = SandboxNegativation(lambda: self.now, waiting_days=waiting_days, protocol_prefix="NEG-")
        self.calls: list[tuple[str, str, dict]] = []
        self.bodies: list[bytes] = []
        self._scripted: deque[tuple[int, bytes, str, float]] = deque()
        self._requests: dict[str, NegativationRequest] = {}
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # ---- control ----
    def advance(self, days: float = 0, **timedelta) -> None:
        self.now += dt.timedelta(days=days, **timedelta)

    def script(self, status: int, body: bytes | str | dict = b"", times: int = 1,
               content_type: str = "application/json", delay: float = 0.0) -> None:
        """The next `times` requests get this answer, after `delay` seconds (to provoke timeouts)."""
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        for _ in range(times):
            self._scripted.append((status, body, content_type, delay))

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def connector_config(self, **overrides) -> dict:
        config = {
            "name": "fake_provider", "base_url": self.url, "auth_header": "Authorization", "auth_value": self.token,
            "endpoints": {"include": "POST /v1/negativacoes", "remove": "DELETE /v1/negativacoes/{protocol}",
                          "status": "GET /v1/negativacoes/{protocol}"},
            "request_fields": {"devedor.documento": "debtor_document", "divida.contrato": "debt.contract",
                               "divida.valor": "debt.amount", "divida.vencimento": "debt.due_date",
                               "divida.credor": "debt.creditor_name", "divida.cnpj_credor": "debt.creditor_document"},
            "response_fields": {"protocol": "dados.protocolo", "status": "dados.situacao",
                                "notice_sent_at": "dados.notificado_em", "included_at": "dados.incluido_em",
                                "removed_at": "dados.baixado_em", "reason": "dados.motivo"},
            "status_map": {pt: ours for ours, pt in _PT_STATUS.items()},
            "error_code_field": "erro.codigo", "timeout": 2.0, "retries": 2, "backoff": 0.0,
        }
        config.update(overrides)
        return config

    def connector(self, **overrides):
        from regua.plugins.builtin.negativation import HTTPNegativation

        return HTTPNegativation.from_config(self.connector_config(**overrides))

    # ---- lifecycle ----
    def start(self) -> "FakeNegativationProvider":
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload, content_type, delay = provider._answer(self.command, self.path,
                                                                        dict(self.headers), body)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

            def log_message(self, *args):  # quiet, and no request lines in test output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-negativation", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None
        self.backend.close()

    def __enter__(self) -> "FakeNegativationProvider":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- the API ----
    @staticmethod
    def _json(status: int, data: dict) -> tuple[int, bytes, str, float]:
        return status, json.dumps(data, ensure_ascii=False).encode(), "application/json", 0.0

    def _error(self, status: int, code: str, message: str = "") -> tuple[int, bytes, str, float]:
        return self._json(status, {"erro": {"codigo": code, "mensagem": message}})

    def _record(self, status: int, record: NegativationRecord) -> tuple[int, bytes, str, float]:
        def iso(moment):
            return moment.isoformat() if moment else None

        return self._json(status, {"dados": {
            "protocolo": record.protocol, "situacao": _PT_STATUS[record.status],
            "notificado_em": iso(record.notice_sent_at), "incluido_em": iso(record.included_at),
            "baixado_em": iso(record.removed_at), "motivo": record.reason}})

    def _answer(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes, str, float]:
        from stdnum.br import cnpj, cpf

        with self._lock:
            self.calls.append((method, path, headers))
            self.bodies.append(body)
            if self._scripted:
                return self._scripted.popleft()
            if headers.get("Authorization") != self.token:
                return self._error(401, "NAO_AUTORIZADO")
            parts = [p for p in path.split("?")[0].split("/") if p]
            if parts[:2] != ["v1", "negativacoes"] or len(parts) > 3:
                return self._error(404, "ROTA_INEXISTENTE")
            try:
                if method == "POST" and len(parts) == 2:
                    data = json.loads(body)
                    document = str(data["devedor"]["documento"])
                    if not (cpf.is_valid(document) or cnpj.is_valid(document)):
                        return self._error(422, "DOCUMENTO_INVALIDO", f"documento {document} inválido")
                    divida = data["divida"]
                    request = NegativationRequest(action="include", debtor_document=document, debt=Debt(
                        contract=divida["contrato"], amount=Decimal(divida["valor"]),
                        due_date=dt.date.fromisoformat(divida["vencimento"]), creditor_name=divida["credor"],
                        creditor_document=divida["cnpj_credor"]))
                    record = self.backend.submit(request)
                    self._requests.setdefault(record.protocol, request)
                    return self._record(201, record)
                if method in ("GET", "DELETE") and len(parts) == 3:
                    request = self._requests.get(parts[2])
                    if request is None:
                        return self._error(404, "PROTOCOLO_INEXISTENTE")
                    action = "status" if method == "GET" else "remove"
                    record = self.backend.submit(msgspec.structs.replace(request, action=action, protocol=parts[2]))
                    return self._record(200, record)
            except (KeyError, TypeError, ValueError, ArithmeticError):
                return self._error(400, "REQUISICAO_INVALIDA")
            except ConnectorError as error:
                return self._error(_ERROR_STATUS.get(error.code, 422), error.code)
            return self._error(405, "METODO_NAO_PERMITIDO")
