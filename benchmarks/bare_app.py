"""The floor for the HTTP benchmark: Litestar + msgspec answering POST /evaluate with a constant.

It decodes the same request body as Régua (a msgspec Struct shaped like EvaluateRequest) and
encodes a constant Struct shaped like Régua's decision, so the difference measured by
bench_server.py is Régua's own work per request (auth, policy lookup, input validation,
evaluation, decision log, metrics), not the HTTP stack's.

    .venv/bin/python benchmarks/bare_app.py --port 8001 [--workers N]

runs it under uvicorn with the keyword arguments `regua serve` uses (server/cli.py `_run`).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import msgspec
from litestar import Litestar, post

# `regua serve` leaves uvicorn's log_config alone (None) and sets the root level from the
# settings; the benchmark runs Régua with REGUA_LOG_LEVEL=warning, so match it here. At module
# level, so that every worker process uvicorn spawns does the same.
logging.getLogger().setLevel(logging.WARNING)


class EvaluateIn(msgspec.Struct, forbid_unknown_fields=True):
    input: dict[str, Any]
    policy: str | None = None
    trace: str = "off"
    dry_run: bool = False
    request_id: str | None = None


class PolicyRef(msgspec.Struct):
    name: str
    version: str
    revision: int


class DecisionOut(msgspec.Struct):
    decision_id: str | None
    policy: PolicyRef
    outcome: str
    outputs: dict[str, Any]
    reasons: list[dict[str, Any]]
    trace: Any
    connector_calls: list[dict[str, Any]]
    duration_ms: float
    dry_run: bool = False


# About the size of Régua's answer for the same request (~540 bytes), so both move the same bytes.
CONSTANT = DecisionOut(
    "01M82MCE79RDNSXP6BGFE3CAQB", PolicyRef("credito_b2b", "2026.11.1", 1), "approve",
    {"limite": "120000.00", "prazo": "21 days"},
    [{"code": "DENTRO_DO_LIMITE", "message": "Pedido dentro do limite e sem restrições relevantes", "rule": None,
      "outcome": "approve", "line": None, "values": {}}],
    None,
    [{"connector": "bureau.serasa", "args": ["************81"], "status": "ok", "duration_ms": 0.05,
      "error": None, "cached": True, "cost": "0"}],
    0.1)


@post("/evaluate", status_code=200)
async def evaluate(data: EvaluateIn) -> DecisionOut:
    return CONSTANT


app = Litestar(route_handlers=[evaluate], logging_config=None, debug=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    import uvicorn

    # Same options as server/cli.py `_run` (loop and http "auto": uvloop and httptools).
    uvicorn.run("bare_app:app", host=args.host, port=args.port, workers=args.workers, log_config=None,
                access_log=False, timeout_graceful_shutdown=30, server_header=False)


if __name__ == "__main__":
    main()
