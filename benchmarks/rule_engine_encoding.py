"""The bundled B2B policy as `rule-engine` expressions (PyPI rule-engine, `import rule_engine`).

rule-engine evaluates one expression against one object; it has no notion of named values,
decision tables, actions, severities, reasons or outputs. So:
- each `let` and table is one expression (tables become nested `?:`), evaluated in dependency
  order by Python glue that stores the result in the context dict;
- each rule condition is a Rule(...).matches(); its `set` value is another expression;
- the combining (deny > review > approve), the reason ranking, the `set` overrides, the default
  outcome and the `on error` action are Python glue: rule-engine cannot express them;
- a value that fails (the bureau is down) is left out of the context, so every expression that
  reads it raises rule_engine.EvaluationError, which the glue turns into the `on error` action;
- missing optional fields of the bureau answer get their defaults in the glue (no `??` operator).
Inputs are the typed values (Decimal money, date) like contenders 1-3: rule-engine takes them.
"""

from __future__ import annotations

import datetime as dt

import rule_engine
from rule_engine.errors import EvaluationError

LETS = [
    ("score", "bureau.score.value"),
    ("restricoes_financeiras",
     "$sum([r.amount for r in bureau.restrictions if r.kind in ['pefin', 'refin', 'bounced_cheque']])"),
    ("protestos", "[r for r in bureau.restrictions if r.kind == 'protest'].length"),
    ("em_recuperacao", "$any([r.kind in ['bankruptcy', 'judicial_recovery'] for r in bureau.restrictions])"),
    ("consultas_30_dias", "[c for c in bureau.inquiries if $parse_datetime(c.date) >= today - t'P30D'].length"),
    ("idade_empresa", "today.year - data_fundacao.year - ((today.month < data_fundacao.month or "
                      "(today.month == data_fundacao.month and today.day < data_fundacao.day)) ? 1 : 0)"),
    ("teto_por_score", "score >= 701 ? faturamento_anual * 0.15 : (score >= 501 ? faturamento_anual * 0.10 : "
                       "(score >= 301 ? faturamento_anual * 0.05 : 0))"),
    ("ciclos_de_compra", "ciclos_sem_atraso >= 3 ? 3 : 2"),
    ("limite_calculado", "$min([ticket_medio * ciclos_de_compra, teto_por_score])"),
    ("prazo_por_score", "score >= 701 ? t'P28D' : (score >= 501 ? t'P21D' : t'P14D')"),
]
# (condition, code, severity, {output: expression})
RULES = [
    ("bureau == null", "BUREAU_INDISPONIVEL", 1, {}),
    ("em_recuperacao", "RECUPERACAO_JUDICIAL", 2, {}),
    ("bureau.registration_status != 'active'", "CNPJ_IRREGULAR", 2, {}),
    ("restricoes_financeiras > 5000", "RESTRICOES", 2, {}),
    ("score <= 300", "SCORE_BAIXO", 2, {}),
    ("protestos > 0", "PROTESTO", 1, {}),
    ("dias_atraso_max > 30", "ATRASO_INTERNO", 1, {"limite": "limite_calculado * 0.5"}),
    ("consultas_30_dias >= 5", "CONSULTAS_EXCESSIVAS", 1, {}),
    ("idade_empresa < 2", "EMPRESA_NOVA", 1, {"prazo": "t'P14D'"}),
    ("saldo_em_aberto + valor_pedido > limite_calculado", "ACIMA_DO_LIMITE", 1, {}),
]
OUTPUTS = [("limite", "limite_calculado"), ("prazo", "prazo_por_score")]
VERB = {2: "deny", 1: "review", 0: "approve"}
ON_ERROR = "ERRO_AVALIACAO"


def make_evaluator(bureau, today: dt.date):
    """A function taking typed inputs and returning (outcome, reason codes, outputs)."""
    lets = [(name, rule_engine.Rule(text).evaluate) for name, text in LETS]
    rules = [(rule_engine.Rule(text).matches, code, severity,
              [(name, rule_engine.Rule(value).evaluate) for name, value in sets.items()])
             for text, code, severity, sets in RULES]
    outputs = [(name, rule_engine.Rule(text).evaluate) for name, text in OUTPUTS]
    today_dt = dt.datetime(today.year, today.month, today.day)

    def run(inputs: dict):
        try:
            answer = bureau(inputs["cnpj"])
            report = {"restrictions": [], "inquiries": [], "registration_status": "active", **answer}
        except Exception:  # noqa: BLE001 — the bureau is unavailable
            report = None
        ctx = {**inputs, "today": today_dt, "bureau": report}
        for name, evaluate in lets:
            try:
                ctx[name] = evaluate(ctx)
            except EvaluationError:
                pass  # left out: whatever reads it fails
        hits = []
        for index, (matches, code, severity, sets) in enumerate(rules):
            try:
                if matches(ctx):
                    hits.append((severity, index, code, {name: value(ctx) for name, value in sets}))
            except EvaluationError:
                if report is not None:  # a bureau that is down is handled by `available()`
                    hits.append((1, index, ON_ERROR, None))
        out = {}
        for name, evaluate in outputs:
            try:
                out[name] = evaluate(ctx)
            except EvaluationError:
                out[name] = None
                if report is not None:
                    hits.append((1, len(rules), ON_ERROR, None))
        if not hits:
            return "approve", ["DENTRO_DO_LIMITE"], out
        hits.sort(key=lambda hit: (-hit[0], hit[1]))
        for hit in reversed(hits):
            if hit[3]:
                out.update(hit[3])
        return VERB[hits[0][0]], [hit[2] for hit in hits], out

    return run
