"""Third-party plugins, end to end, with the example package installed for real.

examples/regua-plugin-exemplo is pip-installed (no dependencies, no build isolation, no index:
offline) into a temporary folder that is put on sys.path, so importlib.metadata finds its
dist-info and its entry point in the group `regua`, exactly as for a plugin installed from PyPI.
Then: discovery, `regua plugins`, allow/deny lists, a broken plugin, the plugin's function in the
checker and in evaluation, its bureau answering a policy lookup, its decision sink.
(Every provider hook, the builtins, and the meta-tests: tests/test_plugin_hooks.py.)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from regua.dsl.diagnostics import PolicyError
from regua.engine.compiler import compile_file, compile_policy
from regua.engine.connectors import ConnectorError, mask_document
from regua.engine.testing import load, run_policy_tests
from regua.plugins.contracts import BureauReport, Score
from regua.plugins.hookspecs import hookimpl
from regua.plugins.manager import DEFAULT_PLUGINS, PluginSettings, get_plugin_manager
from regua.plugins.registry import Registry, RegistryError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "regua-plugin-exemplo"
EXAMPLE_PROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
EXAMPLE_POLICY = EXAMPLE / "politicas" / "pedido_exemplo.regua"
REGUA = Path(sys.executable).with_name("regua")
BUILTINS = set(DEFAULT_PLUGINS.values())

# CNPJs the example bureau knows (see regua_plugin_exemplo/bureau.py).
HEALTHY, TROUBLED, CLOSED, PROVIDER_DOWN = "11222333000181", "19131243000197", "45997418000153", "34028316000103"


# ---- installing a plugin package into a folder ------------------------------------------

# pip builds the wheel with the environment's setuptools (no build isolation). Setuptools older
# than 70.1 needs the separate `wheel` package for that; when neither is there, the package is
# installed the way pip would lay it out (its packages and a dist-info with the same metadata and
# entry points), so these tests still exercise real entry-point discovery.
_NO_BUILD_TOOLS = ("invalid command 'bdist_wheel'", "No module named 'setuptools'", "Cannot import 'setuptools")


def install_package(source: Path, target: Path) -> str:
    """Install the project at `source` into `target`; returns how ("pip" or "by hand: why").

    It is built from a copy, so the build leaves nothing (build/, *.egg-info) in the source tree."""
    copy = target.parent / f"{target.name}-source"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", ".pytest_cache"))
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "--target", str(target), str(copy)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=copy)
    if result.returncode == 0:
        return "pip"
    output = result.stdout + result.stderr
    reason = next((needle for needle in _NO_BUILD_TOOLS if needle in output), None)
    assert reason, f"pip could not install {source}:\n{output}"
    _lay_out_like_pip(source, target)
    return f"by hand: {reason}"


def _lay_out_like_pip(source: Path, target: Path) -> None:
    pyproject = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    packages = pyproject.get("tool", {}).get("setuptools", {}).get("packages", {})
    if isinstance(packages, list):  # [tool.setuptools] packages = ["a", "a.b"]
        folders = [source / name.replace(".", "/") for name in packages if "." not in name]
    else:  # [tool.setuptools.packages.find] where = [...], or the flat layout
        folders = [init.parent for where in packages.get("find", {}).get("where", ["."])
                   for init in sorted((source / where).glob("*/__init__.py"))
                   if init.parent.name not in ("tests", "docs", "examples")]
    for folder in folders:
        shutil.copytree(folder, target / folder.name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    name, version = project["name"], project["version"]
    dist_info = target / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    groups = [f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items())
              for group, entries in project.get("entry-points", {}).items()]
    (dist_info / "entry_points.txt").write_text("\n".join(groups), encoding="utf-8")
    (dist_info / "INSTALLER").write_text("regua-tests\n", encoding="utf-8")


@dataclasses.dataclass
class Installed:
    target: Path
    how: str

    def env(self, **extra) -> dict:
        """Environment for a subprocess that sees the installed package."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGUA_PLUGINS_")}
        env.update(extra)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.target), env.get("PYTHONPATH", "")]))
        return env


def forget_modules(*packages: str) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def exemplo(tmp_path_factory):
    """examples/regua-plugin-exemplo, installed into a temporary folder that is on sys.path."""
    target = tmp_path_factory.mktemp("site")
    how = install_package(EXAMPLE, target)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield Installed(target, how)
    finally:
        sys.path.remove(str(target))
        forget_modules("regua_plugin_exemplo")


@pytest.fixture
def decisoes(exemplo):
    """The example plugin's decision sink (the list it appends to), emptied for each test."""
    from regua_plugin_exemplo import plugin

    plugin.DECISOES.clear()
    yield plugin.DECISOES
    plugin.DECISOES.clear()


def regua_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(REGUA), *args], capture_output=True, text=True, env=env, cwd=ROOT)


# ---- discovery ---------------------------------------------------------------------------


def test_the_installed_plugin_is_discovered_with_its_distribution_and_version(exemplo):
    pm = get_plugin_manager()
    info = pm.infos["exemplo"]
    assert info.error is None
    assert (info.source, info.version) == (EXAMPLE_PROJECT["name"], EXAMPLE_PROJECT["version"])
    assert info.module == EXAMPLE_PROJECT["entry-points"]["regua"]["exemplo"] == "regua_plugin_exemplo.plugin"
    assert info.hooks == ["regua_bureau_connectors", "regua_decision_recorded", "regua_functions"]
    assert BUILTINS <= set(pm.infos) and all(pm.infos[name].source == "builtin" for name in BUILTINS)
    # Installed where pip puts it: a dist-info beside the package, not from the source tree.
    assert Path(importlib.import_module("regua_plugin_exemplo").__file__).is_relative_to(exemplo.target)


def test_regua_plugins_lists_it(exemplo):
    result = regua_cli("plugins", "--json", env=exemplo.env())
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    rows = {row["name"]: row for row in listing["plugins"]}
    assert rows["exemplo"] == {
        "name": "exemplo", "source": "regua-plugin-exemplo", "version": "0.1.0",
        "module": "regua_plugin_exemplo.plugin", "error": None,
        "hooks": ["regua_bureau_connectors", "regua_decision_recorded", "regua_functions"]}
    assert "exemplo" in listing["bureaus"] and "sandbox" in listing["bureaus"]


def test_the_command_line_takes_the_lists_from_the_environment(exemplo):
    env = exemplo.env(REGUA_PLUGINS_ALLOW="exemplo, sandbox_bureau, notifications", REGUA_PLUGINS_DENY="notifications")
    listing = json.loads(regua_cli("plugins", "--json", env=env).stdout)
    assert [row["name"] for row in listing["plugins"]] == ["sandbox_bureau", "exemplo"]
    assert listing["bureaus"] == ["exemplo", "sandbox"]


def test_the_deny_list_removes_it(exemplo):
    registry = Registry.load(PluginSettings(deny=["exemplo"]))
    assert "exemplo" not in registry.pm.infos and "exemplo" not in registry.bureaus
    assert "faixa_serasa" not in registry.environment().functions
    assert "sandbox" in registry.bureaus  # the rest is untouched


def test_an_allow_list_keeps_only_what_it_lists_builtins_included(exemplo):
    registry = Registry.load(PluginSettings(allow=["exemplo"]))
    assert set(registry.pm.infos) == {"exemplo"}
    assert set(registry.bureaus) == {"exemplo"}
    only_builtin = Registry.load(PluginSettings(allow=["sandbox_bureau"]))
    assert set(only_builtin.pm.infos) == {"sandbox_bureau"} and set(only_builtin.bureaus) == {"sandbox"}
    # Built-ins obey the deny-list too, and deny wins over allow.
    no_sandbox = Registry.load(PluginSettings(deny=["sandbox_bureau"]))
    assert "sandbox_bureau" not in no_sandbox.pm.infos and "sandbox" not in no_sandbox.bureaus
    assert "exemplo" in no_sandbox.bureaus
    assert not Registry.load(PluginSettings(allow=["exemplo"], deny=["exemplo"])).pm.infos


# ---- a plugin that cannot be imported ----------------------------------------------------


@pytest.fixture
def broken(tmp_path, monkeypatch):
    """A distribution with two plugins: one names a module that does not exist, one raises on import."""
    dist_info = tmp_path / "regua_plugin_quebrado-0.3.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: regua-plugin-quebrado\nVersion: 0.3.0\n",
                                        encoding="utf-8")
    (dist_info / "entry_points.txt").write_text(
        "[regua]\nquebrado = regua_plugin_inexistente.plugin\nexplode = regua_plugin_explode\n", encoding="utf-8")
    (tmp_path / "regua_plugin_explode.py").write_text('raise RuntimeError("configuração ausente")\n', encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    forget_modules("regua_plugin_inexistente", "regua_plugin_explode")


def test_a_plugin_that_fails_to_import_is_reported_not_fatal(broken):
    pm = get_plugin_manager()
    missing, raising = pm.infos["quebrado"], pm.infos["explode"]
    assert missing.error.startswith("ModuleNotFoundError:") and "regua_plugin_inexistente" in missing.error
    assert raising.error == "RuntimeError: configuração ausente"
    for info in (missing, raising):
        assert (info.source, info.version, info.hooks) == ("regua-plugin-quebrado", "0.3.0", [])
        assert not pm.has_plugin(info.name)
    assert BUILTINS <= set(pm.infos)
    assert "sandbox" in Registry(pm).bureaus  # everything else still works


def test_regua_plugins_shows_the_broken_plugin_with_its_error(broken):
    result = regua_cli("plugins", env=Installed(broken, "by hand").env())
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert lines["quebrado"].split()[1:3] == ["regua-plugin-quebrado", "0.3.0"]
    assert "ERROR: ModuleNotFoundError:" in lines["quebrado"]
    assert lines["explode"].endswith("ERROR: RuntimeError: configuração ausente")
    assert "ERROR" not in lines["sandbox_bureau"]


def test_a_denied_plugin_is_not_even_imported(broken):
    pm = get_plugin_manager(PluginSettings(deny=["explode", "quebrado"]))
    assert "explode" not in pm.infos and "quebrado" not in pm.infos
    assert "regua_plugin_explode" not in sys.modules


# ---- the custom function ------------------------------------------------------------------

FAIXA_POLICY = """policy faixa kind credit

input
  score: int

default approve

output faixa = faixa_serasa(score)
"""


def test_the_custom_function_is_typed_for_the_checker(exemplo):
    env = Registry.load().environment()
    with pytest.raises(PolicyError) as raised:
        compile_policy(FAIXA_POLICY.replace("faixa_serasa(score)", 'faixa_serasa("alto")'), env=env)
    assert {d.code for d in raised.value.diagnostics} == {"E203"}
    assert "argument 1 of faixa_serasa() must be int, not text" in raised.value.render()
    with pytest.raises(PolicyError) as raised:
        compile_policy(FAIXA_POLICY.replace("faixa_serasa(score)", "faixa_serasa(score, 1)"), env=env)
    assert {d.code for d in raised.value.diagnostics} == {"E203"}
    with pytest.raises(PolicyError) as raised:  # the result is text: comparing it with a number is a type error
        compile_policy(FAIXA_POLICY.replace("default approve", "rule r\n  when faixa_serasa(score) > 3\n"
                                            "  deny \"X\" \"x\"\n\ndefault approve"), env=env)
    assert {d.code for d in raised.value.diagnostics} == {"E201"}
    assert "cannot compare text with int" in raised.value.render()
    with pytest.raises(PolicyError) as raised:  # without the plugin, the function does not exist
        compile_policy(FAIXA_POLICY)
    assert {d.code for d in raised.value.diagnostics} == {"E106"}


@pytest.mark.parametrize("score, faixa", [(0, "baixo"), (300, "baixo"), (301, "regular"), (500, "regular"),
                                          (501, "bom"), (700, "bom"), (701, "excelente"), (1000, "excelente")])
def test_the_custom_function_evaluates(exemplo, score, faixa):
    policy = compile_policy(FAIXA_POLICY, env=Registry.load().environment())
    assert policy.evaluate({"score": score}).outputs["faixa"] == faixa


def test_a_failing_custom_function_is_an_evaluation_error_not_a_crash(exemplo):
    policy = compile_policy(FAIXA_POLICY, env=Registry.load().environment())
    decision = policy.evaluate({"score": 1001}).to_dict()
    assert decision["outcome"] == "review" and decision["outputs"]["faixa"] is None
    assert decision["reasons"][0]["error"]["code"] == "SCORE_FORA_DA_ESCALA"
    fallback = compile_policy(FAIXA_POLICY.replace("(score)", '(score) otherwise "?"'), env=Registry.load().environment())
    assert fallback.evaluate({"score": -1}).outputs["faixa"] == "?"


def test_two_plugins_cannot_define_the_same_function(exemplo):
    from regua_plugin_exemplo.funcoes import FAIXA_SERASA

    class Copia:
        __name__ = "copia"

        @hookimpl
        def regua_functions(self, config):
            return [FAIXA_SERASA]

    registry = Registry.load(extra=[Copia()])
    with pytest.raises(RegistryError, match="faixa_serasa"):
        registry.environment()


# ---- the bureau connector -------------------------------------------------------------------


def test_the_bureau_answers_a_policy_lookup_through_engine_connectors(exemplo, tmp_path):
    registry = Registry.load(PluginSettings(allow=["exemplo"]), cache_path=str(tmp_path / "cache.db"))
    env = registry.environment()
    assert "bureau.exemplo" in env.connectors and env.connectors["bureau.exemplo"].returns.name == "BureauReport"
    policy = compile_file(EXAMPLE_POLICY, env=env)
    connectors = registry.engine_connectors()
    assert connectors.names() == ["bureau.exemplo"]
    sleeps: list[float] = []
    registry._resilient["exemplo"].sleep = sleeps.append  # no real backoff in tests

    def decide(cnpj: str, valor: str = "12000.00") -> dict:
        return policy.evaluate({"cnpj": cnpj, "valor_pedido": valor}, connectors=connectors).to_dict()

    healthy = decide(HEALTHY)
    assert (healthy["outcome"], healthy["outputs"]["faixa"]) == ("approve", "excelente")
    [call] = healthy["connector_calls"]
    assert call["connector"] == "bureau.exemplo" and call["args"] == [mask_document(HEALTHY)]
    assert (call["status"], call["cached"], call["cost"]) == ("ok", False, "0.85")
    again = decide(HEALTHY)["connector_calls"][0]
    assert (again["status"], again["cached"], again["cost"]) == ("ok", True, "0")  # the SQLite cache answered
    troubled = decide(TROUBLED)
    assert troubled["outcome"] == "deny" and [r["code"] for r in troubled["reasons"]] == ["FAIXA_BAIXA", "RESTRICOES"]
    assert [r["code"] for r in decide(CLOSED)["reasons"]] == ["CNPJ_IRREGULAR"]
    # The provider is down: retried with exponential backoff, then a value the policy branches on.
    down = decide(PROVIDER_DOWN)
    assert down["outcome"] == "review" and [r["code"] for r in down["reasons"]] == ["BUREAU_INDISPONIVEL"]
    assert down["connector_calls"][0]["error"] == "CONNECTOR_HTTP_503"
    assert sleeps == [0.1, 0.2] and registry._resilient["exemplo"].attempts == 2 + 1 + 3


def test_the_example_policy_tests_pass_with_the_plugin(exemplo):
    checked, prepared = load(EXAMPLE_POLICY, Registry.load().environment())
    report = run_policy_tests(checked, prepared)
    assert all(case.passed for case in report.cases), [case.failures for case in report.cases]
    assert report.coverage == 100


def test_plugin_config_reaches_the_connector(exemplo, tmp_path):
    registry = Registry.load(PluginSettings(allow=["exemplo"], config={"exemplo": {"ttl": 0}}),
                             cache_path=str(tmp_path / "cache.db"))
    assert registry.bureaus["exemplo"].ttl == 0
    fetch = registry.bureau_call("exemplo")
    assert [fetch(HEALTHY).cached for _ in range(2)] == [False, False]  # ttl 0: never cached


def test_the_bureau_report_is_the_contract(exemplo):
    from regua_plugin_exemplo.bureau import ExemploBureau

    report = ExemploBureau().fetch(TROUBLED)
    assert isinstance(report, BureauReport) and report.score == Score(
        value=280, bureau="exemplo", model="Exemplo PJ 2.0", range_min=0, range_max=1000, band="baixo")
    assert [(r.kind, r.amount) for r in report.restrictions] == [("protest", Decimal("1200.00")),
                                                                 ("refin", Decimal("5400.00"))]
    assert msgspec.convert(msgspec.to_builtins(report), BureauReport) == report  # round-trips as JSON
    with pytest.raises(ConnectorError) as raised:
        ExemploBureau().fetch("123")
    assert raised.value.code == "INVALID_DOCUMENT"


def test_the_example_package_own_tests_pass(exemplo):
    """The example's tests/ (which use the contract kit) run as a plugin author would run them."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            cwd=EXAMPLE, capture_output=True, text=True, env=exemplo.env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "skipped" not in result.stdout


# ---- sinks: decisions and events ------------------------------------------------------------


def _recorded_row(decision, cnpj: str) -> dict:
    """A stored decision row, as whoever records decisions hands it to the sinks (documents masked)."""
    data = decision.to_dict()
    return {"policy": data["policy"]["name"], "outcome": data["outcome"], "reasons": [r["code"] for r in data["reasons"]],
            "cnpj": mask_document(cnpj), "recorded_at": dt.datetime(2026, 11, 22, 10, tzinfo=dt.timezone.utc).isoformat()}


def test_the_decision_sink_is_called_when_a_decision_is_recorded(exemplo, decisoes, tmp_path, monkeypatch):
    from regua_plugin_exemplo import plugin

    log = tmp_path / "decisoes.jsonl"
    monkeypatch.setenv(plugin.ARQUIVO_ENV, str(log))
    registry = Registry.load(PluginSettings(allow=["exemplo"]))
    policy = compile_file(EXAMPLE_POLICY, env=registry.environment())
    decision = policy.evaluate({"cnpj": HEALTHY, "valor_pedido": "100.00"}, connectors=registry.engine_connectors())
    row = _recorded_row(decision, HEALTHY)
    registry.decision_recorded(decision, row)
    assert decisoes == [row] and decisoes[0]["cnpj"] == "************81" and decisoes[0]["outcome"] == "approve"
    assert [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] == [row]
    assert registry.sink_errors == []
    # The hook itself, called directly: sinks return nothing.
    assert registry.pm.hook.regua_decision_recorded(decision=decision, record=row) == []
    assert len(decisoes) == 2


def test_every_sink_of_every_plugin_sees_decisions_and_events_and_a_broken_one_is_isolated(exemplo, decisoes):
    seen: list = []

    class Auditoria:
        __name__ = "auditoria"

        @hookimpl
        def regua_decision_recorded(self, decision, record):
            seen.append(("decision", record["outcome"]))

        @hookimpl
        def regua_event_recorded(self, event):
            seen.append(("event", event["kind"]))

    class Quebrada:
        __name__ = "quebrada"

        @hookimpl
        def regua_event_recorded(self, event):
            raise OSError("disco cheio")

    registry = Registry.load(PluginSettings(allow=["exemplo", "auditoria", "quebrada"]), extra=[Quebrada(), Auditoria()])
    assert registry.pm.infos["auditoria"].hooks == ["regua_decision_recorded", "regua_event_recorded"]
    registry.decision_recorded(None, {"outcome": "deny"})
    registry.event_recorded({"kind": "contact", "channel": "email"})
    assert seen == [("decision", "deny"), ("event", "contact")]
    assert decisoes == [{"outcome": "deny"}]  # the example's sink too
    assert registry.sink_errors == [("quebrada", "regua_event_recorded", "OSError")]
