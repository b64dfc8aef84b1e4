"""The bundled B2B policy written by hand in plain Python: the baseline of the benchmark.

Same logic as policies/credito_b2b.regua and the same combining rule as engine/prepared.py:
every rule is evaluated; the most severe action wins (deny > review > approve); reasons are
ranked by severity, then rule order; a rule that cannot be evaluated yields the `on error` action
(review ERRO_AVALIACAO), except that the policy handles the bureau being down itself
(`available(relatorio)`), so failures caused by it are left out; `set` clauses of fired rules
override outputs, the highest-ranked rule winning.

Written the way a careful engineer would: Decimal money, the bureau answer parsed only where it
is used, no tracing, no reason facts, no connector-call log.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from stdnum.br import cnpj as _cnpj

DENY, REVIEW, APPROVE = 2, 1, 0
VERB = {DENY: "deny", REVIEW: "review", APPROVE: "approve"}
ERRO = "ERRO_AVALIACAO"
FINANCEIRAS = frozenset(("pefin", "refin", "bounced_cheque"))
RECUPERACAO = frozenset(("bankruptcy", "judicial_recovery"))
ZERO = Decimal(0)
P15, P10, P05, P50 = Decimal("0.15"), Decimal("0.10"), Decimal("0.05"), Decimal("0.5")
LIMITE_RESTRICOES = Decimal(5000)
DAYS_30, DAYS_28, DAYS_21, DAYS_14 = (dt.timedelta(days=n) for n in (30, 28, 21, 14))


def decide(inputs: dict, bureau, today: dt.date) -> tuple[str, list[str], dict]:
    """inputs: typed values (Decimal money, date, compact CNPJ). bureau: the connector callable."""
    try:
        report = bureau(inputs["cnpj"])
        score = int(report["score"]["value"])
        restrictions = [(r["kind"], Decimal(str(r["amount"]))) for r in report.get("restrictions", ())]
        inquiries = [dt.date.fromisoformat(c["date"]) for c in report.get("inquiries", ())]
        status = report.get("registration_status", "active")
    except Exception:  # noqa: BLE001 — timeout, unknown CNPJ or a malformed answer: the bureau is unavailable
        report = None

    fundacao = inputs["data_fundacao"]
    idade = today.year - fundacao.year - ((today.month, today.day) < (fundacao.month, fundacao.day))
    atraso = inputs["dias_atraso_max"] > 30
    hits: list[tuple[int, int, str, dict | None]] = []  # (severity, rule index, code, outputs it sets)

    if report is None:
        # `available(relatorio)` is false: the policy handles it, so the rules that cannot read the
        # report (and the outputs that cannot be computed) are left out of the reasons.
        hits.append((REVIEW, 0, "BUREAU_INDISPONIVEL", None))
        if idade < 2:
            hits.append((REVIEW, 8, "EMPRESA_NOVA", {"prazo": DAYS_14}))
        limite = prazo = None
    else:
        restricoes = sum((amount for kind, amount in restrictions if kind in FINANCEIRAS), ZERO)
        protestos = sum(1 for kind, _ in restrictions if kind == "protest")
        em_recuperacao = any(kind in RECUPERACAO for kind, _ in restrictions)
        desde = today - DAYS_30
        consultas = sum(1 for day in inquiries if day >= desde)

        faturamento = inputs["faturamento_anual"]
        if score >= 701:
            teto, prazo = faturamento * P15, DAYS_28
        elif score >= 501:
            teto, prazo = faturamento * P10, DAYS_21
        elif score >= 301:
            teto, prazo = faturamento * P05, DAYS_14
        else:
            teto, prazo = ZERO, DAYS_14
        ciclos = 3 if inputs["ciclos_sem_atraso"] >= 3 else 2
        limite = min(inputs["ticket_medio"] * ciclos, teto)

        if em_recuperacao:
            hits.append((DENY, 1, "RECUPERACAO_JUDICIAL", None))
        if status != "active":
            hits.append((DENY, 2, "CNPJ_IRREGULAR", None))
        if restricoes > LIMITE_RESTRICOES:
            hits.append((DENY, 3, "RESTRICOES", None))
        if score <= 300:
            hits.append((DENY, 4, "SCORE_BAIXO", None))
        if protestos > 0:
            hits.append((REVIEW, 5, "PROTESTO", None))
        if atraso:
            hits.append((REVIEW, 6, "ATRASO_INTERNO", {"limite": limite * P50}))
        if consultas >= 5:
            hits.append((REVIEW, 7, "CONSULTAS_EXCESSIVAS", None))
        if idade < 2:
            hits.append((REVIEW, 8, "EMPRESA_NOVA", {"prazo": DAYS_14}))
        if inputs["saldo_em_aberto"] + inputs["valor_pedido"] > limite:
            hits.append((REVIEW, 9, "ACIMA_DO_LIMITE", None))

    outputs = {"limite": limite, "prazo": prazo}
    if not hits:
        return "approve", ["DENTRO_DO_LIMITE"], outputs
    hits.sort(key=lambda hit: (-hit[0], hit[1]))
    for hit in reversed(hits):  # the highest-ranked rule that sets an output wins
        if hit[3]:
            outputs.update(hit[3])
    return VERB[hits[0][0]], [hit[2] for hit in hits], outputs


# ---- input validation, the hand-written equivalent of PreparedPolicy.validate() ----------------

_MONEY = ("faturamento_anual", "ticket_medio", "valor_pedido", "saldo_em_aberto")
_INTS = ("dias_atraso_max", "ciclos_sem_atraso")
_FIELDS = frozenset(("cnpj", "data_fundacao") + _MONEY + _INTS)
_DEFAULTS = {"saldo_em_aberto": ZERO, "dias_atraso_max": 0, "ciclos_sem_atraso": 0}


class InvalidInput(ValueError):
    pass


def _money(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise InvalidInput("expected a number")
    try:
        result = Decimal(str(value).replace("_", "") if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise InvalidInput("expected a number") from None
    if not result.is_finite():
        raise InvalidInput("expected a finite number")
    return result


def validate(data: dict) -> dict:
    """JSON-like input -> typed values; raises InvalidInput listing every bad field."""
    errors = [f"{key}: unknown field" for key in data if key not in _FIELDS]
    out = {}
    for name in _FIELDS:
        value = data.get(name)
        try:
            if value is None:
                if name not in _DEFAULTS:
                    raise InvalidInput("is required")
                out[name] = _DEFAULTS[name]
            elif name == "cnpj":
                compact = _cnpj.compact(value) if isinstance(value, str) else ""
                if not _cnpj.is_valid(compact):
                    raise InvalidInput("is not a valid CNPJ")
                out[name] = compact
            elif name == "data_fundacao":
                out[name] = dt.date.fromisoformat(value) if isinstance(value, str) else _bad("a date")
            elif name in _INTS:
                out[name] = value if isinstance(value, int) and not isinstance(value, bool) else _bad("an int")
            else:
                out[name] = _money(value)
        except (InvalidInput, ValueError) as error:
            errors.append(f"{name}: {error}")
    if errors:
        raise InvalidInput("; ".join(errors))
    return out


def _bad(what: str):
    raise InvalidInput(f"expected {what}")


def decide_json(data: dict, bureau, today: dt.date):
    return decide(validate(data), bureau, today)
