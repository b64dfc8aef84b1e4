"""Experiments: the list, and an experiment's page with its arms, the report (per arm: volume,
outcome rates and average limit with 95% intervals, bad rate once payments are known; each
shadow's disagreement matrix and the rules behind it), a chart of approval and bad rate per arm
with their intervals, and the audit trail. Pause, resume, stop and promote are forms (CSRF token,
scope `experiments`), made by the same service as the API and audited as `console:<key>`.

The report holds no personal data: counts, rates, amounts, rule names and arm names."""

from __future__ import annotations

from urllib.parse import quote

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from ..experiment_report import OUTCOMES, build_report
from ..experiment_store import ExperimentConflict
from .charts_intervals import from_report, interval_chart, percent
from .render import SECURITY_HEADERS, page
from .session import check_csrf

SCOPE = ("experiments",)
STATUS = {"running": "em andamento", "paused": "pausado", "stopped": "encerrado", "promoted": "promovido"}
ACTIONS = {"pause": "paused", "resume": "running", "stop": "stopped"}


def _service(request: Request):
    experiments = request.app.state.services.evaluator.experiments
    if experiments is None:  # a PostgreSQL store: no experiments (nor console) there yet
        raise NotFoundException("Experimentos não estão disponíveis neste servidor.")
    return experiments


class ExperimentPages(Controller):
    path = "/experiments"
    opt = {"console": SCOPE}

    @get("/")
    async def experiment_list(self, request: Request) -> Response:
        experiments = _service(request)

        def read():
            return [experiments.store.get(name) for name in reversed(experiments.store.names())]

        return page(request, "experiments.html", experiments=await anyio.to_thread.run_sync(read), status=STATUS)

    @get("/{name:str}")
    async def experiment(self, request: Request, name: FromPath[str], bad_days: FromQuery[int] = 60) -> Response:
        experiments = _service(request)
        svc = request.app.state.services
        bad_days = min(max(bad_days, 1), 3650)
        if experiments.worker is not None:
            await anyio.to_thread.run_sync(experiments.worker.wait_idle, 2.0)

        def read():
            experiment = experiments.store.get(name)
            if experiment is None:
                return None
            report = build_report(experiment, experiments.store.decisions(name), svc.store.db, bad_days=bad_days,
                                  as_of=svc.evaluator.today())
            return experiment, report, experiments.store.audit(name)

        found = await anyio.to_thread.run_sync(read)
        if found is None:
            raise NotFoundException(f"Nenhum experimento chamado {name}.")
        experiment, report, audit = found
        categories, series = from_report(report)
        chart = interval_chart(f"Aprovação e inadimplência por braço, {name}", categories, series)
        return page(request, "experiment.html", experiment=experiment, report=report, audit=audit, chart=chart,
                    outcomes=OUTCOMES, status=STATUS, pct=percent, bad_days=bad_days,
                    has_bad=len(series) > 1, live=experiment["status"] in ACTIONS.values(),
                    challengers=[a["arm"] for a in experiment["arms"] if a["role"] == "challenger"])

    @post("/{name:str}/action")
    async def action(self, request: Request, name: FromPath[str]) -> Response:
        session = request.scope["console_session"]
        form = dict(await request.form())
        check_csrf(session, form)
        experiments = _service(request)
        what = str(form.get("do") or "")
        if what == "promote":
            def work():
                return experiments.promote(name, str(form.get("arm") or ""), session.actor)
        elif what in ACTIONS:
            def work():
                return experiments.set_status(name, ACTIONS[what], session.actor)
        else:
            return page(request, "message.html", 400, title="Experimento", message="Ação desconhecida.")
        try:
            await anyio.to_thread.run_sync(work)
        except ExperimentConflict as error:
            return page(request, "message.html", error.status, title="Experimento",
                        message=f"Não foi possível: {error.message} ({error.code}).")
        response = Redirect(f"/console/experiments/{quote(name, safe='')}", status_code=303)
        response.headers.update(SECURITY_HEADERS)
        return response
