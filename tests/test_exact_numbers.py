"""Issue 15 point 4: a JSON number is read from its text, never through a binary float, and money
is taken only in whole centavos — over HTTP (/evaluate, /evaluate/batch), in `regua eval --input`,
in policy defaults and test values. A real server over a socket."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_harness import assert_error, ndjson, server_with_policies

from regua.cli import main
from regua.dsl.diagnostics import PolicyError
from regua.engine.compiler import compile_policy
from regua.engine.prepared import InvalidInput
from regua.server.bodies import decode_body
from regua.server.errors import ApiError
from regua.server.schemas import BatchRequest, EvaluateRequest

# `bruto` is the amount divided by 1 BRL: a decimal output, printed with every digit the policy saw.
ECO = """policy eco kind credit
record parcela
  valor: money
input
  valor: money
  taxa: percent = 0%
  fator: decimal = 0
  parcelas: list of parcela = []
rule sempre
  when valor >= 0 BRL or valor < 0 BRL
  review "OK" "ok"
default approve
output valor, bruto = valor / 1 BRL, taxa, fator
"""

# Every amount a caller can send: below 10^18, whole centavos.
AMOUNTS = st.decimals(min_value=Decimal("-999999999999999999.99"), max_value=Decimal("999999999999999999.99"),
                      places=2, allow_nan=False, allow_infinity=False)


def json_spellings(amount: Decimal) -> st.SearchStrategy[str]:
    """The ways a JSON encoder may write this amount as a number: 30000.5, 30000.50, 3000050e-2."""
    plain = format(amount, "f")
    digits = format(amount.scaleb(2).to_integral_value(), "f")
    return st.sampled_from([plain, format(amount.normalize(), "f"), f"{digits}e-2", f"{digits}E-2"])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with server_with_policies(tmp_path_factory.mktemp("exact"), eco=ECO) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def post_raw(client, path: str, text: str):
    return client.post(path, content=text.encode(), headers={"content-type": "application/json"})


# ---- the property: what the caller wrote is what the decision sees ----
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), amount=AMOUNTS)
def test_money_written_as_a_json_number_reaches_the_decision_exactly(client, data, amount):
    written = data.draw(json_spellings(amount))
    response = post_raw(client, "/evaluate/eco", f'{{"input": {{"valor": {written}}}, "dry_run": true}}')
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    # A float would have turned 12345678901234567.89 into 12345678901234568.
    assert Decimal(outputs["bruto"]) == amount and outputs["valor"] == format(amount.quantize(Decimal("0.01")), "f")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cents=st.integers(-10**17, 10**17), extra=st.integers(1, 9), places=st.integers(3, 6))
def test_money_with_more_than_two_places_is_refused_naming_the_field(client, cents, extra, places):
    # cents plus a nonzero fraction of a centavo: never a whole number of centavos.
    amount = Decimal(cents).scaleb(-2) + Decimal(extra).scaleb(-places)
    response = post_raw(client, "/evaluate/eco", f'{{"input": {{"valor": {amount}}}, "dry_run": true}}')
    body = assert_error(response, 422, "INVALID_INPUT")
    assert [(e["code"], e["location"]) for e in body["errors"]] == [("MONEY_PRECISION", "input.valor")], body


def test_decode_body_keeps_the_number_text():
    request = decode_body(b'{"policy": "eco", "input": {"valor": 30000.5, "n": 3, "l": [0.1, 1e2]}}',
                          EvaluateRequest)
    assert request.input == {"valor": Decimal("30000.5"), "n": 3, "l": [Decimal("0.1"), Decimal("1E+2")]}
    assert type(request.input["n"]) is int
    batch = decode_body(b'{"items": [{"input": {"valor": 0.07}}]}', BatchRequest)
    assert batch.items[0].input["valor"] == Decimal("0.07")


@pytest.mark.parametrize("body,status,code,location", [
    (b"", 400, "EMPTY_BODY", ""),
    (b'{"input": {', 400, "MALFORMED_JSON", None),
    (b'{"input": {}, "policy": "eco", "colour": 1}', 400, "INVALID_REQUEST", "colour"),
    (b'{"input": {}}', 400, "INVALID_REQUEST", "policy"),
    (b'{"input": {}, "policy": "eco", "dry_run": 0}', 400, "INVALID_REQUEST", "dry_run"),
])
def test_decode_body_refuses_with_a_stable_code_and_the_field(body, status, code, location):
    with pytest.raises(ApiError) as info:
        decode_body(body, EvaluateRequest)
    assert (info.value.status, info.value.code) == (status, code)
    if location is not None:
        assert info.value.errors[0]["location"] == location


def test_trailing_zeros_are_whole_centavos(client):
    for written in ("10.500", "10.5000000", "1e3", "-0.10"):
        response = post_raw(client, "/evaluate/eco", f'{{"input": {{"valor": {written}}}, "dry_run": true}}')
        assert response.status_code == 200, (written, response.text)
        assert Decimal(response.json()["outputs"]["bruto"]) == Decimal(written)


def test_money_as_text_follows_the_same_rule(client):
    body = assert_error(client.post("/evaluate/eco", json={"input": {"valor": "30000.555"}, "dry_run": True}),
                        422, "INVALID_INPUT")
    assert [(e["code"], e["location"]) for e in body["errors"]] == [("MONEY_PRECISION", "input.valor")]
    assert "30000.555" in body["errors"][0]["message"]


def test_nested_money_is_named_by_its_path(client):
    text = '{"input": {"valor": 1, "parcelas": [{"valor": 2.5}, {"valor": 3.001}]}, "dry_run": true}'
    body = assert_error(post_raw(client, "/evaluate/eco", text), 422, "INVALID_INPUT")
    assert [(e["code"], e["location"]) for e in body["errors"]] == [("MONEY_PRECISION", "input.parcelas[1].valor")]


def test_percent_and_decimal_numbers_are_exact(client):
    # A percent number is percentage points (2.5 is 2.5%), a decimal keeps every digit: no float rounding.
    text = '{"input": {"valor": 1, "taxa": 2.123456789012345678, "fator": 123456789012345.678}, "dry_run": true}'
    outputs = post_raw(client, "/evaluate/eco", text).json()["outputs"]
    assert (outputs["taxa"], outputs["fator"]) == ("2.123456789012345678%", "123456789012345.678")


def test_batch_items_are_held_to_the_same_rule(client):
    text = ('{"policy": "eco", "dry_run": true, "items": [{"input": {"valor": 12345678901234567.89}},'
            ' {"input": {"valor": 0.001}}]}')
    lines = ndjson(post_raw(client, "/evaluate/batch", text))
    assert lines[0]["decision"]["outputs"]["bruto"] == "12345678901234567.89"
    assert lines[1]["error"]["errors"][0]["code"] == "MONEY_PRECISION"
    assert lines[1]["error"]["errors"][0]["location"] == "input.valor"


def test_the_decision_log_keeps_the_numbers_as_sent(client):
    text = '{"input": {"valor": 30000.5, "taxa": 2.5}}'
    decision_id = post_raw(client, "/evaluate/eco", text).json()["decision_id"]
    stored = client.get(f"/decisions/{decision_id}").json()
    assert stored["input"] == {"valor": 30000.5, "taxa": 2.5}  # numbers, not texts: a replay reads them again


# ---- regua eval --input reads numbers the same way ----
def test_regua_eval_reads_numbers_exactly(tmp_path):
    policy_file = tmp_path / "eco.regua"
    policy_file.write_text(ECO, encoding="utf-8")
    runner = CliRunner()
    good = runner.invoke(main, ["eval", str(policy_file), "--input", "-"], input='{"valor": 12345678901234567.89}')
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["outputs"]["bruto"] == "12345678901234567.89"
    bad = runner.invoke(main, ["eval", str(policy_file), "--input", "-"], input='{"valor": 30000.555}')
    assert bad.exit_code == 2
    error = json.loads(bad.stderr)
    assert error["code"] == "INVALID_INPUT"
    assert [(e["code"], e["location"]) for e in error["errors"]] == [("MONEY_PRECISION", "input.valor")]


# ---- defaults and test values stand for inputs: the same rule, caught when the policy is checked ----
def test_a_money_default_with_fractions_of_a_centavo_is_a_check_error():
    with pytest.raises(PolicyError) as info:
        compile_policy(ECO.replace("  fator: decimal = 0", "  fator: decimal = 0\n  piso: money = 10.005 BRL"))
    assert [d.code for d in info.value.diagnostics] == ["E204"]
    assert "centavos" in info.value.diagnostics[0].message


def test_a_test_value_with_fractions_of_a_centavo_is_a_check_error():
    text = ECO + 'test "centavo"\n  given\n    valor = 1.001 BRL\n  expect review\n'
    with pytest.raises(PolicyError) as info:
        compile_policy(text)
    assert [d.code for d in info.value.diagnostics] == ["E501"]


def test_python_callers_are_held_to_the_same_rule():
    prepared = compile_policy(ECO)
    assert prepared.evaluate({"valor": Decimal("0.07")}).outputs["valor"] == Decimal("0.07")
    with pytest.raises(InvalidInput) as info:
        prepared.evaluate({"valor": Decimal("0.075")})
    assert [(e.code, e.path) for e in info.value.errors] == [("MONEY_PRECISION", "input.valor")]
