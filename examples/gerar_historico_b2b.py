"""Gera um histórico sintético de pedidos PJ para o backtest de credito_b2b (docs/lab.md).

    python examples/gerar_historico_b2b.py --linhas 3000 --saida examples/historico_b2b.csv
    python examples/gerar_historico_b2b.py --linhas 1000000 --saida historico.parquet   # extra lab

Uma linha por pedido: os campos de entrada de credito_b2b, `as_of` (data do pedido, em 2025),
`uf` e `setor` (para cortes), a resposta do birô em `bureau.serasa` (JSON) e `inadimplente`
(1 se o cliente ficou inadimplente em até 12 meses). A inadimplência segue um modelo logístico
plausível: cai com o score, sobe com restrições financeiras, protestos, empresa jovem, atraso
interno e consultas recentes. Determinístico (semente fixa). Os CNPJs têm dígitos válidos e são
fictícios.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import random

UFS = ["SP"] * 8 + ["RJ"] * 3 + ["MG"] * 3 + ["PR", "RS", "SC", "BA", "PE", "GO", "DF", "CE"]
SETORES = ["varejo", "industria", "servicos", "agro", "construcao"]
RISCO_SETOR = {"varejo": 0.2, "industria": 0.0, "servicos": 0.1, "agro": -0.2, "construcao": 0.4}


def cnpj(rng: random.Random) -> str:
    base = [rng.randrange(10) for _ in range(8)] + [0, 0, 0, 1]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        rest = sum(d * w for d, w in zip(base, weights)) % 11
        base.append(0 if rest < 2 else 11 - rest)
    return "".join(map(str, base))


def linha(rng: random.Random) -> dict:
    as_of = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(365))
    setor = rng.choice(SETORES)
    idade = max(0.2, rng.expovariate(1 / 9))
    fundacao = as_of - dt.timedelta(days=int(idade * 365.25))
    faturamento = round(math.exp(rng.gauss(math.log(1_500_000), 0.9)), -3)
    ticket = round(faturamento / rng.uniform(15, 60), -2)
    pedido = round(ticket * rng.uniform(0.4, 1.6), -2)
    saldo = round(ticket * rng.choice([0, 0, 0.5, 1, 1.5]), -2)
    # Score: empresas mais velhas pontuam mais; cauda baixa para quem tem problemas.
    score = int(min(1000, max(0, rng.gauss(560 + 12 * min(idade, 15), 170))))
    restricoes = []
    if rng.random() < (0.35 if score < 400 else 0.08):
        for _ in range(rng.randint(1, 3)):
            restricoes.append({"kind": rng.choice(["pefin", "pefin", "refin", "bounced_cheque"]),
                               "amount": f"{rng.choice([800, 1500, 2500, 4000, 9000])}.00",
                               "date": (as_of - dt.timedelta(days=rng.randrange(30, 700))).isoformat()})
    if rng.random() < (0.12 if score < 450 else 0.03):
        restricoes.append({"kind": "protest", "amount": f"{rng.choice([600, 1200, 3000])}.00",
                           "date": (as_of - dt.timedelta(days=rng.randrange(30, 400))).isoformat()})
    if rng.random() < 0.01:
        restricoes.append({"kind": "judicial_recovery", "amount": "0.00",
                           "date": (as_of - dt.timedelta(days=rng.randrange(30, 400))).isoformat()})
    consultas = [{"date": (as_of - dt.timedelta(days=rng.randrange(0, 90))).isoformat(), "inquirer": f"Credor {i}"}
                 for i in range(rng.choice([0, 0, 1, 1, 2, 3, 6]))]
    situacao = "active" if rng.random() > 0.015 else rng.choice(["suspended", "closed"])
    atraso = rng.choice([0] * 12 + [5, 10, 20, 45, 90])
    ciclos = rng.choice([0, 1, 2, 3, 4, 6, 10])
    financeiras = sum(float(r["amount"]) for r in restricoes if r["kind"] in ("pefin", "refin", "bounced_cheque"))
    recentes = sum(1 for c in consultas if (as_of - dt.date.fromisoformat(c["date"])).days <= 30)
    logit = (-2.2 - (score - 500) / 110 + 0.9 * (financeiras > 0) + 0.5 * (financeiras > 5000)
             + 0.8 * any(r["kind"] == "protest" for r in restricoes) + 1.5 * (situacao != "active")
             + 2.0 * any(r["kind"] == "judicial_recovery" for r in restricoes)
             + 0.9 * (idade < 2) + 0.3 * (idade < 5) + 0.025 * atraso - 0.08 * min(ciclos, 6)
             + 0.15 * recentes + RISCO_SETOR[setor])
    inadimplente = int(rng.random() < 1 / (1 + math.exp(-logit)))
    bureau = {"score": {"value": score, "bureau": "serasa"}, "restrictions": restricoes, "inquiries": consultas,
              "registration_status": situacao}
    return {"as_of": as_of.isoformat(), "cnpj": cnpj(rng), "uf": rng.choice(UFS), "setor": setor,
            "faturamento_anual": f"{faturamento:.2f}", "data_fundacao": fundacao.isoformat(),
            "ticket_medio": f"{ticket:.2f}", "valor_pedido": f"{pedido:.2f}", "saldo_em_aberto": f"{saldo:.2f}",
            "dias_atraso_max": atraso, "ciclos_sem_atraso": ciclos,
            "bureau.serasa": json.dumps(bureau, ensure_ascii=False, separators=(",", ":")),
            "inadimplente": inadimplente}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--linhas", type=int, default=3000)
    parser.add_argument("--semente", type=int, default=2025)
    parser.add_argument("--saida", default="examples/historico_b2b.csv")
    args = parser.parse_args()
    rng = random.Random(args.semente)
    rows = [linha(rng) for _ in range(args.linhas)]
    if args.saida.endswith(".parquet"):  # com o extra lab (pyarrow)
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), args.saida)
        return
    with open(args.saida, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
