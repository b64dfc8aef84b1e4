"""The bureau connector `exemplo`: asks a provider, translates its answer into the contract.

A real bureau connector does two things: it queries the provider (HTTP, SOAP, a file drop…) and
translates the provider's answer into Régua's `BureauReport`. Here the "provider" is a small
in-memory base with answers in the provider's own (Portuguese) format, so the example is
deterministic and runs offline; replace `consultar` with an HTTP call and the rest stays the same.

| CNPJ | what the provider says |
|---|---|
| 11.222.333/0001-81 | Padaria Pão Quente: score 812, a small old pefin, one partner |
| 19.131.243/0001-97 | Metalúrgica Ferro Velho: score 280, a protest, a refin, six recent inquiries |
| 45.997.418/0001-53 | Comercial Fechado: registration closed (baixada) |
| 34.028.316/0001-03 | the provider is down (HTTP 503): a transient error, retried |
| any other valid CPF/CNPJ | a clean report, score 301–950 derived from the document |
| anything else | ConnectorError INVALID_DOCUMENT (not retried) |
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

from stdnum.br import cnpj, cpf

from regua.engine.connectors import ConnectorError
from regua.plugins.connectors import BureauConnector, TransientError
from regua.plugins.contracts import BureauReport, Inquiry, Partner, Restriction, Score

from .funcoes import faixa_serasa

BASE: dict[str, dict] = {
    "11222333000181": {
        "razao_social": "Padaria Pão Quente Ltda",
        "situacao_cadastral": "ATIVA",
        "score": {"pontos": 812, "modelo": "Exemplo PJ 2.0"},
        "pendencias": [
            {"tipo": "PEFIN", "valor": "300.00", "data": "2026-02-01", "credor": "Banco Alfa S.A."},
        ],
        "consultas": [{"data": "2026-11-10", "consulente": "Distribuidora Beta"}],
        "socios": [{"nome": "Maria Souza", "documento": "52998224725", "qualificacao": "sócia-administradora"}],
    },
    "19131243000197": {
        "razao_social": "Metalúrgica Ferro Velho Ltda",
        "situacao_cadastral": "ATIVA",
        "score": {"pontos": 280, "modelo": "Exemplo PJ 2.0"},
        "pendencias": [
            {"tipo": "PROTESTO", "valor": "1200.00", "data": "2026-09-15", "credor": "1º Tabelionato de Protesto"},
            {"tipo": "REFIN", "valor": "5400.00", "data": "2026-06-30", "credor": "Banco Gama S.A."},
        ],
        "consultas": [{"data": f"2026-11-{dia:02d}", "consulente": f"Consulente {dia}"}
                      for dia in (2, 5, 9, 12, 16, 20)],
        "socios": [{"nome": "João Ferreira", "documento": "39053344705", "qualificacao": "sócio"}],
    },
    "45997418000153": {
        "razao_social": "Comercial Fechado Ltda",
        "situacao_cadastral": "BAIXADA",
        "score": {"pontos": 540, "modelo": "Exemplo PJ 2.0"},
    },
    "34028316000103": {"erro_http": 503},
}

# The provider's words -> the contract's.
TIPOS = {"PEFIN": "pefin", "REFIN": "refin", "PROTESTO": "protest", "CCF": "bounced_cheque",
         "ACAO_JUDICIAL": "lawsuit", "FALENCIA": "bankruptcy", "RECUPERACAO_JUDICIAL": "judicial_recovery"}
SITUACOES = {"ATIVA": "active", "SUSPENSA": "suspended", "INAPTA": "inapt", "BAIXADA": "closed", "NULA": "null"}


def consultar(document: str, base: dict[str, dict] = BASE) -> dict:
    """The provider's answer for a document, in the provider's format."""
    if not (cpf.is_valid(document) or cnpj.is_valid(document)):
        # Not worth retrying: a plain ConnectorError, which the policy sees as CONNECTOR_INVALID_DOCUMENT.
        raise ConnectorError("INVALID_DOCUMENT", "exemplo: not a valid CPF or CNPJ")
    answer = base.get(document)
    if answer is None:  # not in the base: a clean, deterministic report
        digest = hashlib.sha256(document.encode()).digest()
        answer = {"situacao_cadastral": "ATIVA", "score": {"pontos": 301 + int.from_bytes(digest[:2], "big") % 650,
                                                           "modelo": "Exemplo PJ 2.0"}}
    if "erro_http" in answer:
        raise TransientError(f"HTTP_{answer['erro_http']}", "exemplo: the provider is unavailable")
    return answer


def traduzir(answer: dict) -> BureauReport:
    """The provider's answer as Régua's BureauReport contract."""
    pontos = int(answer["score"]["pontos"])
    return BureauReport(
        score=Score(value=pontos, bureau="exemplo", model=answer["score"].get("modelo", ""),
                    range_min=0, range_max=1000, band=faixa_serasa(pontos)),
        restrictions=[Restriction(kind=TIPOS[p["tipo"]], amount=Decimal(p["valor"]),
                                  date=dt.date.fromisoformat(p["data"]), creditor=p.get("credor", ""))
                      for p in answer.get("pendencias", [])],
        inquiries=[Inquiry(date=dt.date.fromisoformat(c["data"]), inquirer=c.get("consulente", ""))
                   for c in answer.get("consultas", [])],
        registration_status=SITUACOES.get(answer.get("situacao_cadastral", "ATIVA"), "active"),
        partners=[Partner(name=s["nome"], document=s.get("documento", ""), role=s.get("qualificacao", ""))
                  for s in answer.get("socios", [])],
    )


class ExemploBureau(BureauConnector):
    name = "exemplo"  # policies call bureau.exemplo(cnpj)
    timeout = 3.0  # seconds for one call
    retries = 2  # after a TransientError: at most 3 attempts
    backoff = 0.1  # 0.1 s, then 0.2 s
    budget = 10.0  # seconds for one call, retries included (3 attempts of 3 s and the backoff fit)
    failure_threshold = 5  # consecutive failures that open the circuit
    reset_after = 30.0  # seconds before trying again
    ttl = 12 * 3600  # answers are reused from the cache for 12 hours
    cost = "0.85"  # BRL per query, recorded with each decision
    deterministic = True  # the same document always gets the same report (the contract kit checks it)

    def __init__(self, base: dict[str, dict] | None = None, ttl: float | None = None):
        self.base = BASE if base is None else base
        if ttl is not None:
            self.ttl = ttl

    def fetch(self, document: str) -> BureauReport:
        return traduzir(consultar(document, self.base))
