"""The bundled B2B policy as a GoRules JDM graph, evaluated by zen-engine (PyPI zen-engine, `import zen`).

Graph: input -> lets (expression node) -> teto_por_score, ciclos_de_compra, prazo_por_score
(decision tables, hit policy "first") -> limite (expression) -> rules (decision table, hit policy
"collect": one row per rule, plus one `on error` row per rule that reads the bureau report)
-> combine (expression: deny > review > approve, ranked reasons, `set` overrides) -> output.

zen has no connectors: the wrapper calls the same fixture callable and puts the bureau answer
(or null when the lookup fails) into the context, with the JSON-like input as the client sent it.
zen's context takes JSON types only (no Decimal, no date): money travels as JSON numbers and zen
computes with its own decimal numbers; dates are ISO text read with d().
"""

from __future__ import annotations

import json

import zen

_POS = {"x": 0, "y": 0}
AVAILABLE = "bureau != null"
DOWN = "bureau == null"

# (rule index, condition, code, severity, set_limite, set_prazo, reads the bureau report)
RULES = [
    (0, DOWN, "BUREAU_INDISPONIVEL", 1, "", "", False),
    (1, "em_recuperacao", "RECUPERACAO_JUDICIAL", 2, "", "", True),
    (2, 'status != "active"', "CNPJ_IRREGULAR", 2, "", "", True),
    (3, "restricoes_financeiras > 5000", "RESTRICOES", 2, "", "", True),
    (4, "score <= 300", "SCORE_BAIXO", 2, "", "", True),
    (5, "protestos > 0", "PROTESTO", 1, "", "", True),
    (6, "dias > 30", "ATRASO_INTERNO", 1, "limite_calculado * 0.5", "", True),  # its `set` reads the report
    (7, "consultas_30_dias >= 5", "CONSULTAS_EXCESSIVAS", 1, "", "", True),
    (8, "idade_empresa < 2", "EMPRESA_NOVA", 1, "", "14", False),
    (9, "saldo + valor_pedido > limite_calculado", "ACIMA_DO_LIMITE", 1, "", "", True),
]


def _expressions(node_id: str, items: list[tuple[str, str]], pass_through: bool = True) -> dict:
    return {"id": node_id, "type": "expressionNode", "name": node_id, "position": _POS,
            "content": {"passThrough": pass_through, "inputField": None, "outputPath": None,
                        "expressions": [{"id": f"{node_id}{n}", "key": k, "value": v}
                                        for n, (k, v) in enumerate(items)]}}


def _table(node_id: str, hit_policy: str, inputs: list[tuple[str, str]], outputs: list[str],
           rows: list[tuple[list[str], list[str]]], output_path: str | None = None) -> dict:
    in_ids = [f"{node_id}_i{n}" for n in range(len(inputs))]
    out_ids = [f"{node_id}_o{n}" for n in range(len(outputs))]
    rules = []
    for r, (cells, results) in enumerate(rows):
        row = {"_id": f"{node_id}_r{r}"}
        row.update(zip(in_ids, cells))
        row.update(zip(out_ids, results))
        rules.append(row)
    return {"id": node_id, "type": "decisionTableNode", "name": node_id, "position": _POS,
            "content": {"hitPolicy": hit_policy, "passThrough": True, "inputField": None, "outputPath": output_path,
                        "inputs": [{"id": i, "name": name, "field": field} for i, (name, field) in zip(in_ids, inputs)],
                        "outputs": [{"id": o, "name": f, "field": f} for o, f in zip(out_ids, outputs)],
                        "rules": rules}}


def build_graph() -> dict:
    lets = _expressions("lets", [
        ("score", f"{AVAILABLE} ? bureau.score.value : null"),
        ("status", 'bureau.registration_status ?? "active"'),
        ("restricoes_financeiras", 'sum(map(filter(bureau.restrictions ?? [], '
                                   '#.kind in ["pefin", "refin", "bounced_cheque"]), #.amount))'),
        ("protestos", 'count(bureau.restrictions ?? [], #.kind == "protest")'),
        ("em_recuperacao", 'some(bureau.restrictions ?? [], #.kind in ["bankruptcy", "judicial_recovery"])'),
        ("desde", 'd(today).sub(30, "d")'),
        ("consultas_30_dias", "count(bureau.inquiries ?? [], d(#.date).isSameOrAfter($.desde))"),
        ("idade_empresa", 'd(today).diff(d(data_fundacao), "year")'),
        ("saldo", "saldo_em_aberto ?? 0"),
        ("dias", "dias_atraso_max ?? 0"),
        ("ciclos", "ciclos_sem_atraso ?? 0"),
    ])
    teto = _table("teto_por_score", "first", [("score", "score")], ["teto"], [
        (["null"], ["null"]),
        ([">= 701"], ["faturamento_anual * 0.15"]),
        (["[501..700]"], ["faturamento_anual * 0.10"]),
        (["[301..500]"], ["faturamento_anual * 0.05"]),
        (["<= 300"], ["0"]),
    ])
    ciclos = _table("ciclos_de_compra", "first", [("ciclos", "ciclos")], ["ciclos_de_compra"], [
        ([">= 3"], ["3"]),
        ([""], ["2"]),
    ])
    prazo = _table("prazo_por_score", "first", [("score", "score")], ["prazo_dias"], [
        (["null"], ["null"]),
        ([">= 701"], ["28"]),
        (["[501..700]"], ["21"]),
        ([""], ["14"]),
    ])
    limite = _expressions("limite", [
        ("limite_calculado", f"{AVAILABLE} ? min([ticket_medio * ciclos_de_compra, teto]) : null"),
    ])
    rows = []
    for index, condition, code, severity, set_limite, set_prazo, reads_report in RULES:
        when = f"{AVAILABLE} and ({condition})" if reads_report else condition
        rows.append(([when], [f'"{code}"', str(severity), str(index), set_limite, set_prazo]))
        # When the bureau is down, rules reading it cannot be evaluated; the policy handles that
        # with `available(relatorio)`, so their `on error` reasons are left out.
    rules = _table("rules", "collect", [("when", "")], ["code", "sev", "idx", "set_limite", "set_prazo"], rows,
                   output_path="hits")
    combine = _expressions("combine", [
        ("ranked", "flatten([filter(hits, #.sev == 2), filter(hits, #.sev == 1), filter(hits, #.sev == 0)])"),
        ("outcome", 'len(hits) == 0 ? "approve" : (some(hits, #.sev == 2) ? "deny" : "review")'),
        ("reasons", 'len(hits) == 0 ? ["DENTRO_DO_LIMITE"] : map($.ranked, #.code)'),
        ("setters_limite", "filter($.ranked, #.set_limite != null)"),
        ("setters_prazo", "filter($.ranked, #.set_prazo != null)"),
        ("limite", "len($.setters_limite) > 0 ? $.setters_limite[0].set_limite : limite_calculado"),
        ("prazo", "len($.setters_prazo) > 0 ? $.setters_prazo[0].set_prazo : prazo_dias"),
    ], pass_through=False)
    nodes = [{"id": "request", "type": "inputNode", "name": "request", "position": _POS},
             lets, teto, ciclos, prazo, limite, rules, combine,
             {"id": "response", "type": "outputNode", "name": "response", "position": _POS}]
    edges = [{"id": f"e{n}", "type": "edge", "sourceId": a["id"], "targetId": b["id"]}
             for n, (a, b) in enumerate(zip(nodes, nodes[1:]))]
    return {"nodes": nodes, "edges": edges}


def make_evaluator(bureau, today_iso: str):
    """A function taking the JSON-like input and returning (outcome, reasons, {limite, prazo_dias})."""
    decision = zen.ZenEngine().create_decision(json.dumps(build_graph()))
    evaluate = decision.evaluate

    def run(data: dict):
        try:
            report = bureau(data["cnpj"])
        except Exception:  # noqa: BLE001 — the bureau is unavailable: `bureau` is null in the graph
            report = None
        result = evaluate({**data, "today": today_iso, "bureau": report})["result"]
        return result["outcome"], result["reasons"], result.get("limite"), result.get("prazo")

    return run
