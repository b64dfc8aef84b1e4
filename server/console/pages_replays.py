"""Replays of the policy lab (POST /replays, regua replay): the jobs, newest first, and a job's
report (what changed: the outcome transitions, outputs, rules, the cuts, the top changed
decisions, errors). Reports are stored masked; values shown here are masked again by field name
(names, contacts), like every console page. A finished job can be deleted (CSRF, audited)."""

from __future__ import annotations

import json

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect

from ..ids import ULID, id_time
from .audit import audit
from .render import SECURITY_HEADERS, mask_value, page
from .session import check_csrf

SCOPE = ("lab",)
PAGE = 50
STATUS = {"running": "em andamento", "done": "concluído", "failed": "falhou", "interrupted": "interrompido"}
OUTCOMES = ("approve", "review", "deny")


def _matrix(transitions: list[dict]) -> tuple[list[str], list[list]]:
    """The outcome transition matrix: rows before, columns after."""
    seen = {t["before"] for t in transitions} | {t["after"] for t in transitions}
    order = [o for o in OUTCOMES if o in seen] + sorted(o for o in seen if o not in OUTCOMES and o)
    counts = {(t["before"], t["after"]): t["count"] for t in transitions}
    return order, [[before, *[counts.get((before, after), 0) for after in order]] for before in order]


def _shown(report: dict) -> dict:
    """The report as the page shows it: cut values and the changed decisions' fields masked by name."""
    for name, groups in report.get("cuts", {}).items():
        for group in groups:
            group["value"] = mask_value(name.split(":")[0].split(".")[-1], group["value"])
    for change in report.get("top_changes", []):
        change["by"] = {k: mask_value(k.split(":")[0].split(".")[-1], v) for k, v in (change.get("by") or {}).items()}
    return report


class ReplayPages(Controller):
    path = "/replays"
    opt = {"console": SCOPE}

    @get("/")
    async def jobs(self, request: Request) -> Response:
        svc = request.app.state.services
        before = request.query_params.get("before") or None
        before = before if before and ULID.match(before) else None
        rows = await anyio.to_thread.run_sync(lambda: svc.replays.recent(PAGE + 1, before))
        following = rows[PAGE - 1]["id"] if len(rows) > PAGE else None
        return page(request, "replays.html", jobs=rows[:PAGE], next=following, status=STATUS)

    @get("/{replay_id:str}")
    async def job(self, request: Request, replay_id: FromPath[str]) -> Response:
        svc = request.app.state.services
        job = await anyio.to_thread.run_sync(svc.replays.get, replay_id)
        if job is None:
            raise NotFoundException(f"Nenhum replay com o id {replay_id[:40]}.")
        report = _shown(job["report"]) if job["report"] else None
        columns, matrix = _matrix(report["transitions"]) if report else ([], [])
        session = request.scope["console_session"]
        return page(request, "replay.html", job=job, report=report, columns=columns, matrix=matrix, status=STATUS,
                    created=id_time(job["id"]) if ULID.match(job["id"]) else job["created_at"],
                    window=json.dumps(job["request"], ensure_ascii=False), decisions=session.may("decisions:read"))

    @post("/{replay_id:str}/delete")
    async def delete(self, request: Request, replay_id: FromPath[str]) -> Response:
        session = request.scope["console_session"]
        check_csrf(session, dict(await request.form()))
        svc = request.app.state.services
        result = await anyio.to_thread.run_sync(svc.replays.delete, replay_id)
        if result == "unknown":
            raise NotFoundException(f"Nenhum replay com o id {replay_id[:40]}.")
        if result == "running":
            return page(request, "message.html", 409, title="Replay em andamento",
                        message="Este replay ainda está rodando; apague-o quando terminar.")
        await anyio.to_thread.run_sync(lambda: audit(svc.store, session.actor, "delete-replay", replay_id, ""))
        response = Redirect("/console/replays", status_code=303)
        response.headers.update(SECURITY_HEADERS)
        return response
