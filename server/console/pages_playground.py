"""The playground: a form generated from a policy's typed inputs; evaluating it (a dry run: nothing
is written to the decision log) shows the outcome, the outputs, the ranked reasons and the rules
that fired, highlighted in the source. The inputs are in the URL, so a result can be shared.

Each connector the policy calls can be given a fixture: a JSON answer typed in the form, used
instead of the server's connector for that evaluation (like a test's `returns`)."""

from __future__ import annotations

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from regua.engine import brazil
from regua.engine.connectors import Connectors, Fixture
from regua.engine.prepared import InvalidInput
from regua.engine.trace import uniform

from ..errors import ApiError
from .forms import FormError, to_input, widgets
from .pages_policies import annotate
from .render import mask_value, output_formatter, page

PERSONAL_TYPES = ("cpf", "cnpj")
FIXTURE = "fixture:"


def fixtures_from(specs, values: dict[str, str]) -> tuple[dict[str, object], dict[str, str]]:
    """The connector answers typed in the form (JSON objects), and the names of those that are not."""
    answers, errors = {}, {}
    for spec in specs:
        text = (values.get(FIXTURE + spec.qualified_name) or "").strip()
        if not text:
            continue
        try:
            answer = msgspec.json.decode(text)
        except msgspec.DecodeError:
            answer = None
        if isinstance(answer, dict):
            answers[spec.qualified_name] = answer
        else:
            errors[FIXTURE + spec.qualified_name] = "resposta em JSON (um objeto) esperada"
    return answers, errors


def evaluate_with_fixtures(svc, active, data: dict, answers: dict) -> dict:
    """A dry run with some connectors replaced by fixed answers (never logged, never cached)."""
    connectors = Connectors({name: svc.evaluator.connectors.get(name) for name in svc.evaluator.connectors.names()})
    for name, answer in answers.items():
        connectors.register(name, Fixture(answer))
    prepared = active.prepared
    try:
        inputs = prepared.validate(data)
    except InvalidInput as error:
        raise ApiError(422, "INVALID_INPUT", f"the input does not fit policy {prepared.name}", error.to_list()) from None
    decision = prepared.evaluate_validated(inputs, connectors=connectors, trace="rules", as_of=brazil.today())
    return msgspec.json.decode(msgspec.json.encode(decision.to_dict()))


def rule_blocks(source: str, starts: set[int]) -> set[int]:
    """The lines of each fired rule: its `rule` line and the indented lines under it."""
    lines = source.split("\n")
    out = set()
    for start in starts:
        out.add(start)
        n = start + 1
        while n <= len(lines) and lines[n - 1][:1] in (" ", "\t") and lines[n - 1].strip():
            out.add(n)
            n += 1
    return out


class PlaygroundPages(Controller):
    path = "/playground"
    opt = {"console": ("evaluate",)}

    @get("/")
    async def choose(self, request: Request) -> Response:
        svc = request.app.state.services
        names = sorted(n for n, a in svc.policies.active.items() if a.prepared.meta.kind != "collection")
        return page(request, "playground_index.html", names=names)

    @get("/{name:str}")
    async def playground(self, request: Request, name: FromPath[str]) -> Response:
        svc = request.app.state.services
        active = svc.policies.get(name)
        if active is None:
            raise NotFoundException(f"Nenhuma política chamada {name} está carregada.")
        meta = active.prepared.meta
        fields = widgets(meta.input_type)
        values = {f.name: request.query_params.get(f.name, "") for f in fields}
        values.update({FIXTURE + c.qualified_name: request.query_params.get(FIXTURE + c.qualified_name, "")
                       for c in meta.connectors})
        result, errors, fired = None, {}, set()
        if request.query_params.get("run"):
            try:
                data = to_input(fields, values)
                answers, errors = fixtures_from(meta.connectors, values)
                if errors:
                    raise FormError(errors)
                if answers:
                    result = await anyio.to_thread.run_sync(lambda: evaluate_with_fixtures(svc, active, data, answers))
                else:
                    evaluation = await svc.evaluator.evaluate(name, data, trace="rules", dry_run=True,
                                                              api_key=request.scope["console_session"].key_name)
                    result = msgspec.json.decode(evaluation.body)
                steps = (uniform(result.get("trace")) or {}).get("rules", [])
                fired = {r["line"] for r in steps if r.get("result") == "fired"}
                personal = {f.name for f in fields if f.kind in PERSONAL_TYPES}
                result["outputs"] = mask_value("outputs", result["outputs"], personal)
                result["connector_calls"] = mask_value("calls", result["connector_calls"])
            except FormError as error:
                errors = error.errors
            except ApiError as error:
                errors = {(e.get("location") or "").removeprefix("input.").split(".")[0].split("[")[0] or "_":
                          e.get("message", "") for e in error.errors} or {"_": error.message}
        source = await anyio.to_thread.run_sync(
            lambda: (svc.store.policy_version(name, active.revision) or {}).get("source", ""))
        fired = rule_blocks(source, fired)
        return page(request, "playground.html", name=name, meta=meta, fields=fields, values=values, result=result,
                    errors=errors, lines=annotate(source, []), fired=fired, revision=active.revision,
                    connectors=[(FIXTURE + c.qualified_name, c.qualified_name) for c in meta.connectors],
                    show=output_formatter({n: str(t) for n, t in meta.outputs}))
