"""Policies: the list (kind, active revision, hot-reload problems), a version's source with
highlighting, line numbers and the checker's diagnostics in place, a diff of two versions, and the
in-language tests with their results and rule coverage."""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path

import anyio.to_thread
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery

from .graph import rule_graph
from .highlight import highlight
from .render import page

READ = ("evaluate", "policies:admin")
_LOCATION = re.compile(r":(\d+):(\d+)$")


def _services(request: Request):
    return request.app.state.services


def annotate(source: str, diagnostics: list[dict]) -> list[dict]:
    """Source lines, highlighted, each with the diagnostics (code, severity, message, column) found on it."""
    by_line: dict[int, list[dict]] = {}
    for d in diagnostics:
        by_line.setdefault(d["line"], []).append(d)
    return [{"number": n, "html": html, "diagnostics": by_line.get(n, [])}
            for n, html in enumerate(highlight(source), start=1)]


_DIAGNOSTICS: dict[tuple[str, str], list[dict]] = {}


def _checked(source: str, file: str, env) -> list[dict]:
    """Every diagnostic of `source` (errors and warnings) as dicts with line and column. Remembered
    per source (a stored version never changes; the checker and its lints take ~100 ms)."""
    key = (hashlib.sha256(source.encode("utf-8")).hexdigest(), file)
    found = _DIAGNOSTICS.get(key)
    if found is None:
        if len(_DIAGNOSTICS) >= 256:
            _DIAGNOSTICS.clear()
        found = _DIAGNOSTICS[key] = _check(source, file, env)
    return found


def _check(source: str, file: str, env) -> list[dict]:
    # Imported here: the checker and the test runner load at the first policy page, not at start-up.
    from regua.dsl.diagnostics import PolicyError
    from regua.engine.compiler import check_source

    try:
        checked = check_source(source, file, env)
        found = list(checked.warnings)
    except PolicyError as error:
        found = list(error.diagnostics)
    return [{"code": d.code, "severity": d.severity.value, "message": d.message + (f" ({d.hint})" if d.hint else ""),
             "line": d.span.line, "column": d.span.column} for d in found]


def _problem_diagnostics(errors: list[dict]) -> list[dict]:
    out = []
    for e in errors:
        match = _LOCATION.search(e.get("location") or "")
        out.append({"code": e.get("code"), "severity": "error", "message": e.get("message"),
                    "line": int(match.group(1)) if match else 1, "column": int(match.group(2)) if match else 1})
    return out


class PolicyPages(Controller):
    path = "/policies"
    opt = {"console": READ}

    @get("/")
    async def list_policies(self, request: Request) -> Response:
        svc = _services(request)
        active = svc.policies.active
        rows = [{"name": name, "kind": a.prepared.meta.kind, "version": a.prepared.meta.version,
                 "revision": a.revision, "description": a.prepared.meta.description} for name, a in sorted(active.items())]
        problems = [{"file": file, "errors": errors} for file, errors in sorted(svc.policies.problems.items())]
        return page(request, "policies.html", policies=rows, problems=problems)

    @get("/problem")
    async def problem(self, request: Request, file: FromQuery[str]) -> Response:
        """A file the hot reload refused: its source on disk with the errors in place."""
        svc = _services(request)
        errors = svc.policies.problems.get(file)
        if errors is None:  # only files the server reported: never an arbitrary path
            raise NotFoundException("Este arquivo não tem problemas registrados.")
        path = Path(file)
        source = await anyio.to_thread.run_sync(
            lambda: path.read_text(encoding="utf-8", errors="replace") if path.is_file() else "")
        diagnostics = _problem_diagnostics(errors)
        return page(request, "policy_source.html", title=path.name, lines=annotate(source, diagnostics),
                    diagnostics=diagnostics, policy=None, versions=[], revision=None, fired=set(), graph=None)

    @get("/{name:str}")
    async def source(self, request: Request, name: FromPath[str], revision: FromQuery[int | None] = None) -> Response:
        svc = _services(request)
        active = svc.policies.get(name)
        if active is None:
            raise NotFoundException(f"Nenhuma política chamada {name} está carregada.")
        wanted = revision or active.revision

        def read():
            row = svc.store.policy_version(name, wanted)
            return row, svc.store.policy_versions(name), (_checked(row["source"], name, svc.policies.env) if row else [])

        row, versions, diagnostics = await anyio.to_thread.run_sync(read)
        if row is None:
            raise NotFoundException(f"A política {name} não tem a revisão {wanted}.")
        meta = active.prepared.meta
        return page(request, "policy_source.html", title=name, lines=annotate(row["source"], diagnostics),
                    diagnostics=diagnostics, versions=versions, revision=wanted, fired=set(),
                    policy={"name": name, "kind": meta.kind, "version": row["version"], "active": active.revision},
                    graph=rule_graph(meta.graph) if wanted == active.revision and meta.graph else None)

    @get("/{name:str}/diff")
    async def diff(self, request: Request, name: FromPath[str], a: FromQuery[int], b: FromQuery[int]) -> Response:
        svc = _services(request)
        old, new = await anyio.to_thread.run_sync(lambda: (svc.store.policy_version(name, a),
                                                            svc.store.policy_version(name, b)))
        if old is None or new is None:
            raise NotFoundException(f"A política {name} não tem as revisões {a} e {b}.")
        lines = []
        for text in difflib.unified_diff(old["source"].splitlines(), new["source"].splitlines(),
                                         f"revisão {a}", f"revisão {b}", lineterm="", n=3):
            kind = ("meta" if text.startswith(("---", "+++")) else "hunk" if text.startswith("@@")
                    else "add" if text.startswith("+") else "del" if text.startswith("-") else "ctx")
            lines.append({"kind": kind, "text": text})
        return page(request, "policy_diff.html", name=name, a=a, b=b, lines=lines)

    @get("/{name:str}/tests")
    async def tests(self, request: Request, name: FromPath[str]) -> Response:
        svc = _services(request)
        active = svc.policies.get(name)
        if active is None:
            raise NotFoundException(f"Nenhuma política chamada {name} está carregada.")

        def run():
            from regua.engine.compiler import check_source
            from regua.engine.testing import run_policy_tests

            row = svc.store.policy_version(name, active.revision)
            checked = check_source(row["source"], name, svc.policies.env)
            return run_policy_tests(checked, active.prepared)

        report = await anyio.to_thread.run_sync(run)
        return page(request, "policy_tests.html", name=name, report=report)
