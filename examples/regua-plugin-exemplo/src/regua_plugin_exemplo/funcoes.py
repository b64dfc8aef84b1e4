"""The policy function `faixa_serasa(score: int) -> text`.

Serasa's public score bands: 0–300 "baixo", 301–500 "regular", 501–700 "bom", 701–1000
"excelente". The checker knows the signature (a wrong argument is E203 when the policy is
compiled); a score outside 0–1000 is an evaluation error the policy can handle with `otherwise`.
"""

from __future__ import annotations

from regua.dsl import types as T
from regua.dsl.environment import FunctionSpec
from regua.engine.runtime import EvalError

FAIXAS = ((300, "baixo"), (500, "regular"), (700, "bom"), (1000, "excelente"))


def faixa_serasa(score: int) -> str:
    if not 0 <= score <= 1000:
        raise EvalError("SCORE_FORA_DA_ESCALA", f"faixa_serasa(): {score} está fora da escala 0–1000")
    for limite, faixa in FAIXAS:
        if score <= limite:
            return faixa
    raise AssertionError("unreachable")  # pragma: no cover


FAIXA_SERASA = FunctionSpec.simple(
    "faixa_serasa", [T.INT], T.TEXT, faixa_serasa,
    "faixa_serasa(score): a faixa Serasa do score (baixo, regular, bom, excelente)")
