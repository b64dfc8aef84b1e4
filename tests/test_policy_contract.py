"""Each policy's typed contract (issue 15 #3): its input and outputs as JSON Schema, and an OpenAPI
document for `POST /evaluate/{policy}` with those types, agreeing with what the engine accepts and
writes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from server_harness import ThreadedServer, sandbox_settings

from regua.dsl.json_schema import input_schema
from regua.engine.compiler import compile_file, compile_policy
from regua.engine.connectors import Connectors, Fixture
from regua.engine.prepared import InvalidInput
from regua.server import policy_contract

ROOT = Path(__file__).resolve().parent.parent
ORDER = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
BUREAU = json.loads((ROOT / "examples" / "bureau_b2b.json").read_text(encoding="utf-8"))

TYPES = """\
policy tipos kind credit

enum porte = mei | me | epp

input
  valor: money
  taxa: percent = 2%
  parcelas: int
  cpf: cpf
  porte: porte
  vencimentos: list of date = []
  prazo: duration = 30 days

default approve

output dobro = valor * 2, taxa_final = taxa, porte_final = porte, prazo_final = prazo
"""


def _validator(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_the_schemas_of_a_policy_with_every_kind_of_input():
    own = policy_contract.schemas(compile_policy(TYPES).meta)
    inputs = own["input"]
    assert inputs["required"] == ["valor", "parcelas", "cpf", "porte"] and inputs["additionalProperties"] is False
    assert inputs["properties"]["porte"] == {"type": "string", "enum": ["mei", "me", "epp"]}
    assert inputs["properties"]["taxa"]["default"] == "2%" and inputs["properties"]["prazo"]["default"] == "30 days"
    assert inputs["properties"]["vencimentos"]["items"] == {"type": "string", "format": "date"}
    assert own["output"]["properties"]["dobro"]["pattern"] == r"^-?\d+\.\d{2}$"


@pytest.mark.parametrize("data, accepted", [
    ({"valor": "1234.56", "parcelas": 3, "cpf": "529.982.247-25", "porte": "me"}, True),
    ({"valor": 1234.5, "parcelas": 3, "cpf": "52998224725", "porte": "epp", "taxa": "1.5%"}, True),
    ({"valor": "1234.56", "parcelas": 3, "cpf": "529.982.247-25", "porte": "grande"}, False),
    ({"valor": "1234.56", "parcelas": "três", "cpf": "529.982.247-25", "porte": "me"}, False),
    ({"valor": "1234.56", "parcelas": 3, "cpf": "529.982.247-25", "porte": "me", "extra": 1}, False),
    ({"valor": "mil", "parcelas": 3, "cpf": "529.982.247-25", "porte": "me"}, False),
    ({"valor": "1234.56", "parcelas": 3, "porte": "me"}, False),
    ({"valor": "1234.56", "parcelas": 3, "cpf": "529.982.247-25", "porte": "me", "vencimentos": ["2026-13-01"]}, False),
])
def test_the_input_schema_and_the_engine_agree(data, accepted):
    policy = compile_policy(TYPES)
    schema_ok = _validator(policy_contract.schemas(policy.meta)["input"]).is_valid(data)
    try:
        policy.evaluate(data)
        engine_ok = True
    except InvalidInput:
        engine_ok = False
    assert schema_ok == engine_ok == accepted


def test_a_real_decision_fits_the_output_schema():
    policy = compile_file(ROOT / "policies" / "credito_b2b.regua")
    decision = policy.evaluate(ORDER, connectors=Connectors({"bureau.serasa": Fixture(BUREAU["bureau.serasa"])}))
    own = policy_contract.schemas(policy.meta)
    _validator(own["input"]).validate(ORDER)
    _validator(own["output"]).validate(decision.to_dict()["outputs"])
    assert input_schema(policy.meta.input_type) == own["input"]


def test_over_http_the_schema_and_a_typed_openapi_per_policy(tmp_path):
    with ThreadedServer(sandbox_settings(tmp_path)) as server, server.client() as client:
        schema = client.get("/policies/credito_b2b/schema")
        assert schema.status_code == 200
        body = schema.json()
        assert body["policy"]["name"] == "credito_b2b" and body["input"]["properties"]["cnpj"]["pattern"]
        assert client.get("/policies/nenhuma/schema").json()["code"] == "UNKNOWN_POLICY"
        document = client.get("/policies/credito_b2b/openapi.json").json()
        decision = client.post("/evaluate/credito_b2b", json={"input": ORDER}).json()
        assert client.get("/policies/credito_b2b/schema", headers={"Authorization": "Bearer x"}).status_code == 401
    components = document["components"]["schemas"]
    assert document["openapi"] == "3.1.0" and list(document["paths"]) == ["/evaluate/credito_b2b"]
    request = components["CreditoB2bEvaluateRequest"]
    assert request["properties"]["input"] == {"$ref": "#/components/schemas/CreditoB2bInput"}
    assert components["CreditoB2bEvaluateResponse"]["properties"]["outputs"] == \
        {"$ref": "#/components/schemas/CreditoB2bOutput"}
    resolver = {"$defs": components}  # every $ref resolves, and a real request and answer fit
    for name, value in (("CreditoB2bEvaluateRequest", {"input": ORDER}), ("CreditoB2bEvaluateResponse", decision)):
        schema = json.loads(json.dumps({**resolver, "$ref": f"#/$defs/{name}"}).replace("#/components/schemas/",
                                                                                          "#/$defs/"))
        _validator(schema).validate(value)
