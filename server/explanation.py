"""The explanation text a customer can be given about an automated decision (LGPD art. 20).

Plain Portuguese, built only from what the policy author wrote for people (the reasons'
messages) and the decision's facts that are safe to show: never scores' inner workings,
never another person's data. The same decision always gives the same text.
"""

from __future__ import annotations

import datetime as dt

from regua.engine.brazil import BRASILIA

_OUTCOME = {
    "approve": "foi aprovada",
    "review": "foi encaminhada para análise de um especialista",
    "deny": "não foi aprovada",
}


def explain(outcome: str, reasons: list[dict], policy: str, version: str, created_at: str,
            counterfactuals: dict | None = None) -> str:
    """`reasons` as stored (ranked, most important first); `counterfactuals` as
    engine.counterfactuals.Counterfactuals.to_dict() gives them, when the policy declares what the
    customer could change."""
    when = _date(created_at)
    lines = [f"Sua solicitação {_OUTCOME.get(outcome, 'foi avaliada')} em {when}, por decisão automatizada "
             f"(política {policy}, versão {version})."]
    messages = []
    for reason in reasons:
        message = reason.get("message") or reason.get("code")
        if message and message not in messages:
            messages.append(message)
    if messages:
        lines.append("Principais motivos:")
        lines.extend(f"- {m}" for m in messages[:5])
    sentence = counterfactual_sentence(counterfactuals) if counterfactuals else None
    if sentence:
        lines.append(sentence)
    lines.append("Você pode pedir a revisão desta decisão por uma pessoa e informações sobre os critérios "
                 "utilizados (Lei 13.709/2018, art. 20).")
    return "\n".join(lines)


def _date(created_at: str) -> str:
    try:
        instant = dt.datetime.fromisoformat(created_at)
    except ValueError:
        return created_at
    # The customer's calendar: the date in Brasília.
    return instant.astimezone(BRASILIA).strftime("%d/%m/%Y")


_TARGET = {"approve": "aprovada", "review": "encaminhada para análise", "deny": "recusada"}


def counterfactual_sentence(found: dict) -> str | None:
    """What would have changed the answer, in one pt-BR sentence:
    "Sua solicitação seria aprovada com valor do pedido até R$ 70.000,00, ou com score de crédito a
    partir de 601." None when there is nothing to say (no actionable fact, already the target)."""
    target = _TARGET.get(found.get("target"), "aceita")
    if found.get("status") == "none_within_bounds":
        facts = ", ".join(found.get("facts") or [])
        within = f" ({facts})" if facts else ""
        return f"Nenhuma mudança, dentro dos limites da política, nos dados que podem mudar{within} faria a " \
               f"solicitação ser {target}."
    alternatives = found.get("alternatives") or []
    if found.get("status") != "found" or not alternatives:
        return None
    options = [" e ".join(_change(c) for c in a["changes"]) for a in alternatives]
    return f"Sua solicitação seria {target} com " + ", ou com ".join(options) + "."


def _change(change: dict) -> str:
    word = "até" if change["direction"] == "down" else "a partir de"
    return f"{change['label']} {word} {_value(change['to'], change.get('type'))}"


def _value(value, type_name: str | None) -> str:
    """Brazilian notation: R$ 1.234,50 for money (stored as "1234.50"), 12,5% for a percent."""
    text = str(value)
    if text.endswith("%"):
        return _number(text[:-1]) + "%"
    if type_name == "money":
        return "R$ " + _number(text)
    return _number(text)


def _number(text: str) -> str:
    whole, _, cents = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    digits = whole.lstrip("-")
    grouped = f"{int(digits):,}".replace(",", ".") if digits.isdigit() else digits
    return sign + grouped + ("," + cents if cents else "")
