"""The example plugin's own tests, as a plugin author writes them.

Run them with the plugin installed (`pip install -e .`, then `pytest`): the fixtures
`regua_plugin_manager` and `regua_registry` come with Régua (a pytest plugin), and the
contract kit (`plugins.testing.check_*`) proves the connector honours its contract.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from regua_plugin_exemplo import plugin
from regua_plugin_exemplo.bureau import ExemploBureau
from regua_plugin_exemplo.funcoes import faixa_serasa

from regua.engine.compiler import compile_file
from regua.engine.testing import load, run_policy_tests
from regua.plugins.testing import check_bureau_connector

POLITICA = Path(__file__).resolve().parent.parent / "politicas" / "pedido_exemplo.regua"


def test_o_bureau_cumpre_o_contrato():
    report = check_bureau_connector(ExemploBureau(), document="11222333000181")  # deterministic = True
    assert report.score.value == 812 and report.score.band == "excelente"
    check_bureau_connector(ExemploBureau(), document="12345678000195")  # a document outside the base
    check_bureau_connector(ExemploBureau(), document="52998224725")  # a CPF


@pytest.mark.parametrize("score, faixa", [(0, "baixo"), (300, "baixo"), (301, "regular"), (500, "regular"),
                                          (501, "bom"), (700, "bom"), (701, "excelente"), (1000, "excelente")])
def test_faixas_serasa(score, faixa):
    assert faixa_serasa(score) == faixa


def test_o_plugin_instalado_e_carregado(regua_plugin_manager):
    pm = regua_plugin_manager(allow=["exemplo"])  # only this plugin: no built-ins
    info = pm.infos["exemplo"]
    assert (info.source, info.error) == ("regua-plugin-exemplo", None)
    assert info.hooks == ["regua_bureau_connectors", "regua_decision_recorded", "regua_functions"]


def test_a_politica_usa_o_bureau_e_a_funcao(regua_registry):
    registry = regua_registry(allow=["exemplo"])
    checked, prepared = load(POLITICA, registry.environment())
    report = run_policy_tests(checked, prepared)  # the tests written in the policy
    assert all(case.passed for case in report.cases), [case.failures for case in report.cases]

    policy = compile_file(POLITICA, env=registry.environment())
    connectors = registry.engine_connectors()  # resilient and cached (the fixture's cache is in tmp_path)
    first = policy.evaluate({"cnpj": "19.131.243/0001-97", "valor_pedido": "1000.00"}, connectors=connectors)
    assert first.outcome == "deny" and first.outputs["faixa"] == "baixo"
    second = policy.evaluate({"cnpj": "19.131.243/0001-97", "valor_pedido": "1000.00"}, connectors=connectors)
    assert [(c.cached, c.cost) for c in first.connector_calls + second.connector_calls] == [(False, "0.85"),
                                                                                            (True, "0")]


def test_config_do_plugin(regua_registry):
    registry = regua_registry(allow=["exemplo"], config={"exemplo": {"ttl": 60}})
    assert registry.bureaus["exemplo"].ttl == 60


def test_o_registro_de_decisoes(regua_plugin_manager, tmp_path, monkeypatch):
    arquivo = tmp_path / "decisoes.jsonl"
    monkeypatch.setenv(plugin.ARQUIVO_ENV, str(arquivo))
    plugin.DECISOES.clear()
    pm = regua_plugin_manager(allow=["exemplo"])
    pm.hook.regua_decision_recorded(decision=None, record={"policy": "pedido_exemplo", "outcome": "approve"})
    assert plugin.DECISOES == [{"policy": "pedido_exemplo", "outcome": "approve"}]
    assert arquivo.read_text(encoding="utf-8") == '{"policy": "pedido_exemplo", "outcome": "approve"}\n'
    plugin.DECISOES.clear()
