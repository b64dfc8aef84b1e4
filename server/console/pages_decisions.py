"""Decisions: find them (policy, version, outcome, reason code, period, document, id), newest first,
paged by id ranges; a decision's page with the customer's explanation (pt-BR), the ranked reasons,
the trace and the connector calls. Personal data is masked; a key with `decisions:read` may reveal
a decision's input, and every reveal is audited (console_audit)."""

from __future__ import annotations

import datetime as dt

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery

from regua.dsl.values import normalize_cnpj, normalize_cpf
from regua.engine.brazil import BRASILIA
from regua.engine.trace import uniform

from ..counterfactuals import customer_counterfactuals
from ..explanation import explain
from ..ids import ULID, id_floor, id_time
from ..store_common import document_hash
from .audit import audit
from .decision_extras import counterfactual_rows, decision_arm
from .render import mask_value, output_formatter, page

PAGE = 50
#: Filters no index serves (version, reason code) look at this many candidate rows per page at
#: most, so a page costs the same however rare the value; "continue" pages on from where it stopped.
WINDOW = 10_000
_COLUMNS = "id, policy, version, revision, outcome, body, document_masked"


def _day_floor(text: str | None, plus_days: int = 0) -> str | None:
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text) + dt.timedelta(days=plus_days)
    except (ValueError, OverflowError):
        return None
    return id_floor(dt.datetime.combine(day, dt.time(), BRASILIA))


def _document(text: str) -> str | None:
    compact = normalize_cpf(text) or normalize_cnpj(text.upper())
    return document_hash(compact) if compact else None


def find(db, f: dict, before: str | None) -> tuple[list[dict], str | None]:
    """One page of decisions, newest first, and the id to continue below (None at the end)."""
    where, params = [], []
    for clause, value in (("policy = ?", f.get("policy")), ("outcome = ?", f.get("outcome")),
                          ("document_hash = ?", f.get("document_hash")), ("id >= ?", f.get("start")),
                          ("id < ?", f.get("end")), ("id < ?", before)):
        if value:
            where.append(clause)
            params.append(value)
    sql = f"select {_COLUMNS} from decisions" + (" where " + " and ".join(where) if where else "") + " order by id desc"
    extra, extra_params = [], []
    if f.get("version"):
        extra.append("version = ?")
        extra_params.append(f["version"])
    if f.get("reason"):
        extra.append("instr(body, ?) > 0")
        extra_params.append(msgspec.json.encode({"code": f["reason"]}).decode()[1:-1])  # "code":"X"
    if not extra:
        rows = list(db.query(sql + " limit ?", params + [PAGE + 1]))
        return rows[:PAGE], rows[PAGE - 1]["id"] if len(rows) > PAGE else None
    window = f"select * from ({sql} limit ?) where " + " and ".join(extra) + " order by id desc limit ?"
    rows = list(db.query(window, params + [WINDOW] + extra_params + [PAGE + 1]))
    if len(rows) > PAGE:
        return rows[:PAGE], rows[PAGE - 1]["id"]
    # Fewer matches than a page in this window: continue below the window's last row, if it was full
    # (found by walking the index alone, without reading the rows again).
    ids = sql.replace(f"select {_COLUMNS} from", "select id from", 1)
    last = db.execute(f"{ids} limit 1 offset ?", params + [WINDOW - 1]).fetchone()
    return rows, last[0] if last else None


class DecisionPages(Controller):
    path = "/decisions"
    opt = {"console": ("decisions:read",)}

    @get("/")
    async def search(self, request: Request) -> Response:
        svc = request.app.state.services
        q = {k: (request.query_params.get(k) or "").strip() for k in
             ("id", "policy", "version", "outcome", "reason", "from", "to", "document", "before")}
        if q["id"]:
            if ULID.match(q["id"]):
                found = await anyio.to_thread.run_sync(svc.store.decision, q["id"])
                if found is not None:
                    return Response(b"", status_code=303, headers={"Location": f"/console/decisions/{q['id']}"})
            return page(request, "decisions.html", q=q, rows=[], next=None, policies=sorted(svc.policies.active),
                        notice="Nenhuma decisão com este id.")
        filters = {"policy": q["policy"], "outcome": q["outcome"], "version": q["version"], "reason": q["reason"],
                   "start": _day_floor(q["from"]), "end": _day_floor(q["to"], 1)}
        notice = None
        if q["document"]:
            filters["document_hash"] = _document(q["document"])
            if filters["document_hash"] is None:
                notice = "O documento informado não é um CPF ou CNPJ válido."
        before = q["before"] if ULID.match(q["before"] or "") else None
        rows, following = ([], None) if notice else await anyio.to_thread.run_sync(
            lambda: find(svc.store.db, filters, before))
        items = [{"id": r["id"], "at": id_time(r["id"]), "policy": r["policy"], "version": r["version"],
                  "outcome": r["outcome"], "document": r["document_masked"],
                  "reasons": [x.get("code") for x in msgspec.json.decode(r["body"])["reasons"] if x.get("code")]}
                 for r in rows]
        return page(request, "decisions.html", q=q, rows=items, next=following, policies=sorted(svc.policies.active),
                    notice=notice)

    @get("/{decision_id:str}")
    async def decision(self, request: Request, decision_id: FromPath[str], reveal: FromQuery[bool] = False) -> Response:
        svc = request.app.state.services
        session = request.scope["console_session"]
        row = await anyio.to_thread.run_sync(svc.store.decision, decision_id)
        if row is None:
            raise NotFoundException(f"Nenhuma decisão com o id {decision_id}.")
        body = msgspec.json.decode(row["body"])
        body["trace"] = (uniform(body.get("trace")) or {}).get("rules", [])
        created = id_time(row["id"])
        active = svc.policies.get(row["policy"])
        personal = ({f.name for f in active.prepared.meta.input_type.fields if str(f.type) in ("cpf", "cnpj")}
                    if active else set())
        data = msgspec.json.decode(row["input"]) if row["input"] else {}
        if reveal:
            await anyio.to_thread.run_sync(lambda: audit(svc.store, session.actor, "reveal", decision_id, ""))
        shown = data if reveal else mask_value("input", data, personal)
        found = await anyio.to_thread.run_sync(customer_counterfactuals, row, svc.store, svc.policies)
        explanation = explain(row["outcome"], body["reasons"], row["policy"], row["version"],
                              created.isoformat(timespec="milliseconds"), found)
        arm = await anyio.to_thread.run_sync(decision_arm, svc, row, body)
        return page(request, "decision.html", row=row, body=body, created=created, input=shown, revealed=reveal,
                    explanation=explanation.split("\n"), purged=bool(row.get("purged_at")),
                    counterfactuals=counterfactual_rows(found), arm=arm,
                    show=output_formatter({n: str(t) for n, t in active.prepared.meta.outputs} if active else {}))
