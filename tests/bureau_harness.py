"""A scripted bureau provider on 127.0.0.1 and what the HTTP bureau tests share (its answers in
Portuguese, the mapping into the contract, the connector's settings, the B2B policy's input)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import msgspec
import pytest
from loopback import LoopbackHTTP

from regua.engine.compiler import compile_file
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
B2B = ROOT / "policies" / "credito_b2b.regua"
AS_OF = dt.date(2026, 11, 22)

CNPJ = "11.222.333/0001-81"
CNPJ_DIGITS = "11222333000181"
CNPJ_RESTRICTED = "45.371.045/0001-00"
CNPJ_RESTRICTED_DIGITS = "45371045000100"
CNPJ_UNKNOWN = "60.874.484/0001-20"
CNPJ_UNKNOWN_DIGITS = "60874484000120"
TOKEN = "s3cr3t-token-for-tests"

# What a Brazilian bureau answers: Portuguese names, its own codes, dd/mm/yyyy dates, numbers
# with cents as JSON numbers, and the queried document echoed back (which must not leak).
PROVIDER_ANSWER = {
    "status": "OK",
    "protocolo": "2026112200001",
    "data": {
        "documento": CNPJ_DIGITS,
        "razaoSocial": "Comércio de Exemplo Ltda",
        "situacao": "ATIVA",
        "score": {"pontuacao": 850, "faixa": "EXCELENTE", "modelo": "Score PJ 3.0"},
        "pendencias": [],
        "consultas": [{"data": "10/08/2026", "consulente": "Banco A"}],
        "socios": [{"nome": "Maria da Silva", "cpf": "52998224725", "qualificacao": "Sócio-Administrador"}],
    },
}
RESTRICTED_ANSWER = copy.deepcopy(PROVIDER_ANSWER)
RESTRICTED_ANSWER["data"].update({
    "documento": CNPJ_RESTRICTED_DIGITS,
    "score": {"pontuacao": 720, "faixa": "EXCELENTE", "modelo": "Score PJ 3.0"},
    "pendencias": [
        # Sent as the JSON numbers 3500.10 and 2000.33 (see JSON below), exactly as written.
        {"tipo": "PEFIN", "valor": Decimal("3500.10"), "data": "02/05/2026", "credor": "Banco X"},
        {"tipo": "REFIN", "valor": Decimal("2000.33"), "data": "10/06/2026", "credor": "Financeira Y"},
        {"tipo": "PROTESTO", "valor": 1200, "data": "01/03/2026", "credor": "Cartório 2º Ofício"},
    ],
})

MAPPING = {
    "score.value": "data.score.pontuacao",
    "score.band": {"path": "data.score.faixa", "map": {"BAIXO": "baixo", "REGULAR": "regular", "BOM": "bom",
                                                       "EXCELENTE": "excelente"}},
    "score.model": "data.score.modelo",
    "score.bureau": {"const": "serasa"},
    "registration_status": {"path": "data.situacao",
                            "map": {"ATIVA": "active", "SUSPENSA": "suspended", "BAIXADA": "closed", "NULA": "null"},
                            "otherwise": "other"},
    "restrictions": {"from": "data.pendencias", "item": {
        "kind": {"path": "tipo", "map": {"PEFIN": "pefin", "REFIN": "refin", "PROTESTO": "protest",
                                         "CCF": "bounced_cheque", "ACAO_JUDICIAL": "lawsuit"}},
        "amount": "valor",
        "date": {"path": "data", "date_format": "%d/%m/%Y"},
        "creditor": "credor"}},
    "inquiries": {"from": "data.consultas", "item": {
        "date": {"path": "data", "date_format": "%d/%m/%Y"}, "inquirer": "consulente"}},
    "partners": {"from": "data.socios", "item": {"name": "nome", "document": "cpf", "role": "qualificacao"}},
}

B2B_INPUT = {
    "cnpj": CNPJ,
    "faturamento_anual": "2000000",
    "data_fundacao": "2015-03-10",
    "ticket_medio": "40000",
    "valor_pedido": "30000",
    "saldo_em_aberto": "50000",
    "ciclos_sem_atraso": 4,
}


# The provider writes Decimals as JSON numbers, digit for digit (json.dumps would go through float).
JSON = msgspec.json.Encoder(decimal_format="number")

# ---------------------------------------------------------------------------------------------
# A bureau provider on 127.0.0.1, scripted by each test.


class Provider:
    """What the fake provider answers. By default each document's report (404 when unknown);
    `script` queues (status, body, delay) answers that take precedence, one per request."""

    def __init__(self):
        self.reports = {CNPJ_DIGITS: PROVIDER_ANSWER, CNPJ_RESTRICTED_DIGITS: RESTRICTED_ANSWER}
        self.script: list[tuple[int, bytes | dict, float]] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # set at teardown: sleeping handlers wake up and finish
        self.base_url = ""

    @property
    def hits(self) -> int:
        return len(self.requests)

    def answer(self, method: str, path: str, headers: dict, body: bytes):
        with self.lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            if self.script:
                return self.script.pop(0)
        document = path.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        if method == "POST" and body:
            document = json.loads(body).get("documento", "")
        if document in self.reports:
            return 200, self.reports[document], 0.0
        return 404, {"erro": "documento não encontrado"}, 0.0


def _handler(provider: Provider):
    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload, delay = provider.answer(self.command, self.path, dict(self.headers), body)
            if delay:
                provider.release.wait(delay)
            data = payload if isinstance(payload, bytes) else JSON.encode(payload)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        do_GET = do_POST = _serve

        def log_message(self, *args):  # the request line holds the document: never print it
            pass

    return Handler


@pytest.fixture
def provider():
    state = Provider()
    with LoopbackHTTP(_handler(state), "fake-bureau") as http:
        state.base_url = http.base_url
        state.server = http.server
        try:
            yield state
        finally:
            state.release.set()  # handlers told to hang let go before the server stops


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("SERASA_TOKEN", TOKEN)


def settings(provider: Provider, **overrides) -> dict:
    config = {
        "name": "serasa", "base_url": provider.base_url, "path": "/v1/relatorios/{kind}/{document}",
        "auth": {"header": "Authorization", "prefix": "Bearer ", "env": "SERASA_TOKEN"},
        "mapping": MAPPING, "timeout": 2, "retries": 2, "backoff": 0.01, "failure_threshold": 5,
        "reset_after": 30, "ttl": 3600, "cost": "3.90",
    }
    config.update(overrides)
    return config


def plugin_settings(provider: Provider, **overrides) -> PluginSettings:
    return PluginSettings(config={"http_bureau": {"bureaus": [settings(provider, **overrides)]}})


def evaluate(registry: Registry, data: dict | None = None):
    prepared = compile_file(B2B, env=registry.environment())
    return prepared.evaluate(data or B2B_INPUT, connectors=registry.engine_connectors(), as_of=AS_OF)


def stopped(provider: Provider) -> None:
    provider.server.shutdown()
    provider.server.server_close()


def summary(decision) -> dict:
    """What must be the same when a decision is replayed (durations and cache flags aside)."""
    data = decision.to_dict()
    return {"outcome": data["outcome"], "outputs": data["outputs"],
            "reasons": [(r["code"], r["rule"], r["outcome"]) for r in data["reasons"]],
            "calls": [(c["connector"], c["args"], c["status"], c["error"]) for c in data["connector_calls"]]}
