"""Generates a valid Régua policy with many rules, for the compile-time benchmark.

Deterministic (seeded): the same text every run, so the disk cache key is stable. The policy
mixes comparisons on several inputs (money, int, percent, date, text, enum, bool), a few lets,
aggregates over a list of records, two decision tables, `in` lists and ranges, and/or/not,
deny and review actions with codes and messages, and a few `set` clauses.

    python benchmarks/gen_policy.py 1000 > /tmp/big.regua && regua check /tmp/big.regua
"""

from __future__ import annotations

import random
import sys

HEADER = '''\
policy gerada_{n} kind credit version "1.0.{n}"
description "Política gerada com {n} regras para medir o tempo de compilação"

enum porte = mei | pequena | media | grande

record pagamento
  valor: money
  dias_atraso: int
  vencimento: date

input
  faturamento: money
  divida_total: money
  valor_pedido: money
  score: int
  idade_empresa: int
  funcionarios: int = 0
  taxa_inadimplencia: percent = 0%
  data_fundacao: date
  uf: text
  setor: text
  porte_empresa: porte
  exportadora: bool = false
  pagamentos: list of pagamento = []

let margem = faturamento - divida_total
let comprometimento = divida_total / faturamento otherwise 0
let total_pago = sum(p.valor for p in pagamentos)
let atrasos = count(p for p in pagamentos where p.dias_atraso > 0)
let atraso_recente = any(p.dias_atraso > 15 and p.vencimento >= today - 90 days for p in pagamentos)
let pior_atraso = max(p.dias_atraso for p in pagamentos) otherwise 0
let anos = years_between(data_fundacao, today)

table faixa_score (first) by score
  >= 800   -> 4
  600..799 -> 3
  400..599 -> 2
  else     -> 1

table limite_base (first) by porte_empresa, faixa_score
  "grande", >= 3 -> faturamento * 20%
  "grande", -    -> faturamento * 10%
  "media", >= 3  -> faturamento * 15%
  "media", -     -> faturamento * 8%
  else           -> faturamento * 5%
'''

FOOTER = '''
default approve "APROVADO" "Sem restrições"

on error review "ERRO_AVALIACAO" "Falha na avaliação"

output limite = limite_base, prazo = 30 days
'''

UFS = ["SP", "RJ", "MG", "RS", "PR", "SC", "BA", "PE", "CE", "GO", "DF", "ES", "AM", "PA"]
SETORES = ["varejo", "industria", "servicos", "agro", "construcao", "tecnologia", "saude", "logistica"]
PORTES = ["mei", "pequena", "media", "grande"]


def _money(r: random.Random) -> str:
    return f"{r.randrange(1, 500) * 1_000:_} BRL"


def _condition(r: random.Random) -> str:
    kind = r.randrange(14)
    if kind == 0:
        return f"faturamento < {_money(r)}"
    if kind == 1:
        return f"score <= {r.randrange(100, 900)} and idade_empresa < {r.randrange(1, 10)}"
    if kind == 2:
        return f"comprometimento > {r.randrange(20, 95)}%"
    if kind == 3:
        return f"margem < {_money(r)} or divida_total > {_money(r)}"
    if kind == 4:
        return f"atrasos >= {r.randrange(1, 6)} and pior_atraso > {r.randrange(5, 90)}"
    if kind == 5:
        ufs = ", ".join(f'"{u}"' for u in r.sample(UFS, 3))
        return f"uf in [{ufs}] and valor_pedido > {_money(r)}"
    if kind == 6:
        return f'setor == "{r.choice(SETORES)}" and taxa_inadimplencia >= {r.randrange(1, 30)}%'
    if kind == 7:
        return f'porte_empresa == "{r.choice(PORTES)}" and faixa_score <= {r.randrange(1, 4)}'
    if kind == 8:
        return f"valor_pedido > limite_base * {r.randrange(50, 200)}%"
    if kind == 9:
        return f"anos < {r.randrange(1, 8)} and not exportadora"
    if kind == 10:
        low = r.randrange(0, 500)
        return f"score in {low}..{low + r.randrange(10, 200)} and funcionarios < {r.randrange(1, 200)}"
    if kind == 11:
        return f"atraso_recente and total_pago < {_money(r)}"
    if kind == 12:
        return f"data_fundacao > 2020-01-01 and valor_pedido + divida_total > {_money(r)}"
    return f'(score < {r.randrange(200, 700)} or uf == "{r.choice(UFS)}") and setor != "{r.choice(SETORES)}"'


def generate(n_rules: int = 1000, seed: int = 2026) -> str:
    r = random.Random(seed)
    parts = [HEADER.format(n=n_rules)]
    for i in range(n_rules):
        verb = "deny" if r.random() < 0.4 else "review"
        code = f"R{i:04d}_{'NEGA' if verb == 'deny' else 'ANALISA'}"
        lines = [f"rule regra_{i:04d}", f"  when {_condition(r)}",
                 f'  {verb} "{code}" "Regra gerada número {i}: condição {r.randrange(10**6)} atendida"']
        if i % 97 == 0:
            lines.append(f"  set limite = limite_base * {r.randrange(10, 90)}%")
        parts.append("\n".join(lines) + "\n")
    parts.append(FOOTER)
    return "\n".join(parts)


SAMPLE_INPUT = {
    "faturamento": 1_500_000, "divida_total": 300_000, "valor_pedido": 80_000, "score": 640,
    "idade_empresa": 6, "funcionarios": 40, "taxa_inadimplencia": "3%", "data_fundacao": "2018-05-04",
    "uf": "SP", "setor": "varejo", "porte_empresa": "media", "exportadora": False,
    "pagamentos": [{"valor": 12_000, "dias_atraso": 0, "vencimento": "2026-09-10"},
                   {"valor": 15_500.5, "dias_atraso": 20, "vencimento": "2026-10-10"},
                   {"valor": 9_800, "dias_atraso": 3, "vencimento": "2026-11-10"}],
}


if __name__ == "__main__":
    sys.stdout.write(generate(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
