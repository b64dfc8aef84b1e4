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


def explain(outcome: str, reasons: list[dict], policy: str, version: str, created_at: str) -> str:
    """`reasons` as stored (ranked, most important first)."""
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
