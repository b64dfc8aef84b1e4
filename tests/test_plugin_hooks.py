"""Every provider hook feeding the registry (sync and async), what the builtins declare, and the
meta-tests that keep docs/plugins.md and the tests in step with plugins/hookspecs.py and
plugins/contracts.py, and the engine's BureauReport record with the contract."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import re
import subprocess
import sys
import typing
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from regua.dsl import types as T
from regua.engine.compiler import compile_policy
from regua.plugins import contracts, hookspecs
from regua.plugins.connectors import BureauConnector, NegativationService, NotificationChannel
from regua.plugins.contracts import BureauReport, DeliveryReceipt, NegativationRecord, NegativationRequest, Notification, Score
from regua.plugins.hookspecs import hookimpl
from regua.plugins.manager import DEFAULT_PLUGINS, PluginSettings, get_plugin_manager
from regua.plugins.registry import Registry, RegistryError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "regua-plugin-exemplo"
EXAMPLE_POLICY = EXAMPLE / "politicas" / "pedido_exemplo.regua"
DOC = ROOT / "docs" / "plugins.md"
BUILTINS = set(DEFAULT_PLUGINS.values())

# CNPJs the example bureau knows (see regua_plugin_exemplo/bureau.py).
HEALTHY = "11222333000181"


# ---- the other provider hooks, sync and async ---------------------------------------------


class AsyncBureau(BureauConnector):
    name = "assincrono"
    ttl = 0

    async def fetch(self, document: str) -> BureauReport:
        return BureauReport(score=Score(value=777, bureau="assincrono"))


class Email(NotificationChannel):
    name = "email_teste"
    channel = "email"

    def send(self, notification: Notification) -> DeliveryReceipt:
        return DeliveryReceipt(status="sent", idempotency_key=notification.idempotency_key, provider_id="m-1")


class Negativador(NegativationService):
    name = "negativador_teste"

    def submit(self, request: NegativationRequest) -> NegativationRecord:
        return NegativationRecord(protocol="P-1", status="notice_sent")


class Provedor:
    __name__ = "provedor_teste"

    @hookimpl
    def regua_bureau_connectors(self, config):
        return [AsyncBureau()]

    @hookimpl
    def regua_notification_channels(self, config):
        return [Email()]

    @hookimpl
    def regua_negativation_services(self, config):
        return [Negativador()]


def test_every_provider_hook_feeds_the_registry():
    registry = Registry.load(PluginSettings(allow=["provedor_teste"]), extra=[Provedor()])
    assert registry.pm.infos["provedor_teste"].hooks == [
        "regua_bureau_connectors", "regua_negativation_services", "regua_notification_channels"]
    assert set(registry.bureaus) == {"assincrono"}
    assert set(registry.channels) == {"email_teste"} and set(registry.negativators) == {"negativador_teste"}
    # An async fetch answers a policy lookup like a sync one.
    source = EXAMPLE_POLICY.read_text(encoding="utf-8").replace("bureau.exemplo(cnpj)", "bureau.assincrono(cnpj)")
    source = source.replace("faixa_serasa(relatorio.score.value)", '"excelente"').split("\ntest ")[0]
    decision = compile_policy(source, env=registry.environment()).evaluate(
        {"cnpj": HEALTHY, "valor_pedido": "1.00"}, connectors=registry.engine_connectors())
    assert decision.outcome == "approve" and decision.to_dict()["connector_calls"][0]["status"] == "ok"


def test_the_builtins_declare_the_hooks_they_implement():
    from regua.plugins.manager import BUILTIN_HOOKS

    pm = get_plugin_manager(PluginSettings(allow=sorted(BUILTINS)))
    assert {name: tuple(info.hooks) for name, info in pm.infos.items()} == BUILTIN_HOOKS


def test_a_registry_for_policies_has_the_bureaus_and_functions_and_imports_no_other_builtin():
    code = ("import sys\nfrom regua.plugins.registry import Registry\nr = Registry.for_policies()\n"
            "assert 'sandbox' in r.bureaus and not r.channels and not r.negativators, r.bureaus\n"
            "loaded = [m for m in ('regua.plugins.builtin.notifications', 'regua.plugins.builtin.negativation',"
            " 'regua.plugins.builtin.monitoring_source', 'sqlite_utils', 'asyncio') if m in sys.modules]\n"
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_registry_for_policies_still_loads_installed_plugins_functions():
    registry = Registry.load(PluginSettings(allow=["provedor_teste"]), extra=[Provedor()],
                             hooks=("regua_bureau_connectors", "regua_functions"))
    assert set(registry.bureaus) == {"assincrono"} and not registry.channels and not registry.negativators


def test_connectors_need_unique_names():
    class Duplicado:
        __name__ = "duplicado"

        @hookimpl
        def regua_notification_channels(self, config):
            return [Email(), Email()]

    with pytest.raises(RegistryError, match="two notification channels are called 'email_teste'"):
        Registry.load(PluginSettings(allow=["duplicado"]), extra=[Duplicado()])

    class SemNome:
        __name__ = "sem_nome"

        @hookimpl
        def regua_negativation_services(self, config):
            return [NegativationService()]

    with pytest.raises(RegistryError, match="without a name"):
        Registry.load(PluginSettings(allow=["sem_nome"]), extra=[SemNome()])


# ---- meta-tests: docs, tests and contracts stay in step --------------------------------------

HOOKS = {name: function for name, function in vars(hookspecs).items()
         if callable(function) and hasattr(function, "regua_spec")}
STRUCTS = {name: cls for name, cls in vars(contracts).items()
           if isinstance(cls, type) and issubclass(cls, msgspec.Struct) and cls.__module__ == contracts.__name__}
META_TESTS = {"test_every_hook_is_documented_with_its_signature", "test_every_hook_is_exercised_by_a_test",
              "test_every_contract_field_is_documented", "test_the_engine_bureau_report_matches_the_contract"}


def test_the_hook_and_contract_lists_are_complete():
    pm = get_plugin_manager(PluginSettings(allow=[]))
    assert set(HOOKS) == {name for name in vars(pm.hook) if name.startswith("regua_")}
    assert {"BureauReport", "Score", "Restriction", "Inquiry", "Partner", "Notification", "DeliveryReceipt", "Debt",
            "NegativationRequest", "NegativationRecord"} <= set(STRUCTS)


def _doc_headings() -> list[str]:
    text = re.sub(r"^```.*?^```", "", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)
    return re.findall(r"^#+ (.+)$", text, re.M)


def test_every_hook_is_documented_with_its_signature():
    headings = _doc_headings()
    missing = []
    for name, function in HOOKS.items():
        signature = f"`{name}({', '.join(inspect.signature(function).parameters)})`"
        if not any(signature in heading for heading in headings):
            missing.append(signature)
    assert not missing, f"hooks without a heading in docs/plugins.md: {missing}"


def _identifiers_used_by_tests() -> dict[str, set[str]]:
    """Per test file: function names defined, attributes read and names used, outside the meta-tests.

    A hook counts as exercised when a test implements it (a `def regua_...`) or calls it
    (`pm.hook.regua_...`); mentions in strings and comments do not count."""
    used: dict[str, set[str]] = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in META_TESTS:
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(inner.name)
                elif isinstance(inner, ast.Attribute):
                    names.add(inner.attr)
                elif isinstance(inner, ast.Name):
                    names.add(inner.id)
        used[path.name] = names
    return used


def test_every_hook_is_exercised_by_a_test():
    used = _identifiers_used_by_tests()
    untested = [name for name in HOOKS if not any(name in names for names in used.values())]
    assert not untested, f"hooks no test implements or calls: {untested}"


def _documented_fields(struct: str) -> list[tuple[str, str]]:
    """(field, default column) rows of the table under the heading that names `struct`."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^#+ .*`{struct}`.*$", text, re.M)
    assert match, f"docs/plugins.md has no heading for the contract `{struct}`"
    section = re.split(r"^#+ ", text[match.end():], maxsplit=1, flags=re.M)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and re.fullmatch(r"`\w+`", cells[0]):
            rows.append((cells[0].strip("`"), cells[2]))
    return rows


def test_every_contract_field_is_documented():
    problems = []
    for name, cls in STRUCTS.items():
        documented = _documented_fields(name)
        fields = {field.name: field for field in msgspec.structs.fields(cls)}
        names = [row[0] for row in documented]
        if names != list(fields):
            problems.append(f"{name}: the doc lists {names}, the contract has {list(fields)}")
            continue
        for field_name, default in documented:
            if fields[field_name].required != (default == "required"):
                problems.append(f"{name}.{field_name}: the doc says default {default!r}")
    assert not problems, "docs/plugins.md and plugins/contracts.py disagree:\n" + "\n".join(problems)


# The contract's envelope: which version of the contract a connector answered with. Policies do
# not read it, so the engine's record leaves it out (answers' extra fields are ignored).
ENVELOPE = {"version"}


def _engine_type(annotation) -> T.Type | str:
    """The policy-language type the engine should use for a contract field's annotation."""
    records = {"Score", "Restriction", "Inquiry", "Partner"}
    if typing.get_origin(annotation) is list:
        return T.ListType(_engine_type(typing.get_args(annotation)[0]))
    if typing.get_origin(annotation) is typing.Literal:
        return f"enum {typing.get_args(annotation)}"
    if isinstance(annotation, type) and annotation.__name__ in records:
        return annotation.__name__
    return {int: T.INT, str: T.TEXT, Decimal: T.MONEY, dt.date: T.DATE, bool: T.BOOL}[annotation]


def _comparable(type_: T.Type):
    if isinstance(type_, T.ListType):
        return T.ListType(_comparable(type_.element))
    if isinstance(type_, T.EnumType):
        return f"enum {type_.values}"
    if isinstance(type_, T.RecordType):
        return type_.name
    return type_


def test_the_engine_bureau_report_matches_the_contract():
    from regua.engine.builtins import BUREAU_REPORT, INQUIRY, PARTNER, RESTRICTION, SCORE

    pairs = [(BUREAU_REPORT, contracts.BureauReport), (SCORE, contracts.Score), (RESTRICTION, contracts.Restriction),
             (INQUIRY, contracts.Inquiry), (PARTNER, contracts.Partner)]
    for record, struct in pairs:
        assert record.name == struct.__name__
        fields = [f for f in msgspec.structs.fields(struct) if f.name not in ENVELOPE]
        assert [f.name for f in record.fields] == [f.name for f in fields], f"{record.name}: field names drifted"
        hints = typing.get_type_hints(struct, include_extras=False)
        for spec, field in zip(record.fields, fields):
            where = f"{record.name}.{spec.name}"
            assert _comparable(spec.type) == _engine_type(hints[field.name]), f"{where}: types drifted"
            assert spec.required == field.required, f"{where}: required in one, optional in the other"
            if not field.required:
                default = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
                assert spec.default == default, f"{where}: defaults drifted ({spec.default!r} != {default!r})"
    assert ENVELOPE <= {f.name for f in msgspec.structs.fields(contracts.BureauReport)}
