"""Reviews: decisions waiting for a person, as a task list (what Camunda's task list gives its
users). A task is a `review` outcome in the decision log or an open monitoring review; a person
takes it, then approves or denies it with a note. Every step is audited (console_audit), and the
task's state lives in review_tasks (server/migrations.py m006)."""

from __future__ import annotations

import json

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from ..store import utc_now
from .audit import audit
from .render import SECURITY_HEADERS, page
from .session import check_csrf

SCOPE = ("decisions:read",)
SHOW = 100
VERDICTS = {"approve": "aprovada", "deny": "negada"}


def tasks(store, show_done: bool) -> list[dict]:
    """The newest `review` decisions and every open monitoring review, with their task state."""
    db = store.db
    rows = list(db.query(
        "select d.id as decision_id, d.policy, d.version, d.body, d.document_masked, 'decision' as source "
        "from decisions d where d.outcome = 'review' order by d.id desc limit ?", [SHOW]))
    if db["monitoring_reviews"].exists():
        rows += [dict(r, source="monitoring", policy="monitoramento", version="", document_masked=None)
                 for r in db.query("select decision_id, customer_id, reasons as body from monitoring_reviews "
                                   "where closed_at is null order by id limit ?", [SHOW])]
    state = {r["decision_id"]: r for r in db.query(
        "select * from review_tasks where decision_id in (select value from json_each(?))",
        [json.dumps([r["decision_id"] for r in rows])])}
    out = []
    for row in rows:
        task = state.get(row["decision_id"], {})
        if task.get("verdict") and not show_done:
            continue
        try:
            body = json.loads(row["body"] or "{}")
        except ValueError:
            body = {}
        reasons = ([r.get("code") for r in body.get("reasons", [])] if isinstance(body, dict) else list(body))
        out.append({**row, "reasons": reasons, "taken_by": task.get("taken_by"), "verdict": task.get("verdict"),
                    "note": task.get("note"), "resolved_by": task.get("resolved_by")})
    return out


class ReviewPages(Controller):
    path = "/reviews"
    opt = {"console": SCOPE}

    @get("/")
    async def task_list(self, request: Request, done: FromQuery[bool] = False) -> Response:
        svc = request.app.state.services
        rows = await anyio.to_thread.run_sync(lambda: tasks(svc.store, done))
        return page(request, "reviews.html", tasks=rows, done=done, verdicts=VERDICTS)

    @post("/{decision_id:str}/take")
    async def take(self, request: Request, decision_id: FromPath[str]) -> Response:
        session = request.scope["console_session"]
        check_csrf(session, dict(await request.form()))
        svc = request.app.state.services

        def work():
            with svc.store.transaction() as db:
                source = _source(db, decision_id)
                db.execute("insert into review_tasks (decision_id, source, taken_by, taken_at) values (?, ?, ?, ?) "
                           "on conflict(decision_id) do update set taken_by = excluded.taken_by, "
                           "taken_at = excluded.taken_at where review_tasks.verdict is null",
                           [decision_id, source, session.actor, utc_now()])
                audit(svc.store, session.actor, "take", decision_id, "", db)

        await anyio.to_thread.run_sync(work)
        return _back()

    @post("/{decision_id:str}/resolve")
    async def resolve(self, request: Request, decision_id: FromPath[str]) -> Response:
        session = request.scope["console_session"]
        form = dict(await request.form())
        check_csrf(session, form)
        verdict = str(form.get("verdict") or "")
        note = str(form.get("note") or "").strip()[:2000]
        if verdict not in VERDICTS:
            return page(request, "message.html", 400, title="Revisão", message="Escolha aprovar ou negar.")
        if not note:
            return page(request, "message.html", 400, title="Revisão", message="Escreva uma nota dizendo por quê.")
        svc = request.app.state.services

        def work():
            now = utc_now()
            with svc.store.transaction() as db:
                source = _source(db, decision_id)
                if source == "monitoring" and not session.may("monitoring"):
                    return False  # closing a monitoring review takes the scope the API asks for it
                db.execute("insert into review_tasks (decision_id, source, taken_by, taken_at, verdict, note, "
                           "resolved_by, resolved_at) values (?, ?, ?, ?, ?, ?, ?, ?) on conflict(decision_id) do "
                           "update set verdict = excluded.verdict, note = excluded.note, "
                           "resolved_by = excluded.resolved_by, resolved_at = excluded.resolved_at, "
                           "taken_by = coalesce(review_tasks.taken_by, excluded.taken_by)",
                           [decision_id, source, session.actor, now, verdict, note, session.actor, now])
                if source == "monitoring":
                    db.execute("update monitoring_reviews set closed_at = ?, closed_by = ? where decision_id = ? "
                               "and closed_at is null", [now, session.actor, decision_id])
                audit(svc.store, session.actor, verdict, decision_id, note, db)
            return True

        if not await anyio.to_thread.run_sync(work):
            return page(request, "message.html", 403, title="Sem permissão",
                        message="Resolver uma revisão do monitoramento pede o escopo monitoring.")
        return _back()


def _source(db, decision_id: str) -> str:
    if db.execute("select 1 from decisions where id = ? and outcome = 'review'", [decision_id]).fetchone():
        return "decision"
    if db["monitoring_reviews"].exists() and db.execute(
            "select 1 from monitoring_reviews where decision_id = ?", [decision_id]).fetchone():
        return "monitoring"
    raise NotFoundException("Nenhuma revisão pendente com este id.")


def _back() -> Response:
    response = Redirect("/console/reviews", status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


