"""Negativation services: the sandbox's lifecycle under an injected clock, the HTTP connector
against a real HTTP server on 127.0.0.1, and loading both through the plugin manager."""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
import socket
from decimal import Decimal

import msgspec
import pytest

from regua.engine.connectors import ConnectorError
from regua.plugins.builtin.negativation import (
    HTTPNegativation,
    ProviderError,
    SandboxNegativation,
    get_path,
    regua_negativation_services,
)
from regua.plugins.connectors import TransientError
from regua.plugins.contracts import Debt, NegativationRequest
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry
from regua.plugins.runtime import Resilient
from regua.plugins.testing import CREDITOR_CNPJ, KIT_CPF, ManualClock

UTC = dt.timezone.utc
START = dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, 12h in São Paulo
OTHER_CPF = "11144477735"


def Clock(start: dt.datetime = START) -> ManualClock:
    return ManualClock(start)


def request(action="include", *, contract="C-1", due=dt.date(2026, 1, 15), amount="150.00", document=KIT_CPF,
            protocol="", creditor=CREDITOR_CNPJ) -> NegativationRequest:
    return NegativationRequest(action=action, debtor_document=document, protocol=protocol, debt=Debt(
        contract=contract, amount=Decimal(amount), due_date=due, creditor_name="Credora Ltda",
        creditor_document=creditor))


def follow(record_request: NegativationRequest, action: str, protocol: str) -> NegativationRequest:
    return msgspec.structs.replace(record_request, action=action, protocol=protocol)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sandbox(clock):
    service = SandboxNegativation(clock)
    yield service
    service.close()


# ============================================================================================
# Sandbox
# ============================================================================================

def test_lifecycle_notice_waiting_included_removed_with_the_default_ten_days(sandbox, clock):
    include = request()
    record = sandbox.submit(include)
    assert record.status == "notice_sent"
    assert record.protocol == "SBX-00000001"
    assert record.notice_sent_at == START and record.included_at is None and record.removed_at is None

    clock.advance(days=1)
    assert sandbox.submit(follow(include, "status", record.protocol)).status == "waiting"
    clock.advance(days=8, hours=23, minutes=59)
    assert sandbox.submit(follow(include, "status", record.protocol)).status == "waiting"

    clock.advance(minutes=1)  # exactly 10 days after the notice
    included = sandbox.submit(follow(include, "status", record.protocol))
    assert included.status == "included"
    assert included.included_at == START + dt.timedelta(days=10)
    assert included.notice_sent_at == START

    clock.advance(days=30)
    removed = sandbox.submit(follow(include, "remove", record.protocol))
    assert removed.status == "removed"
    assert removed.removed_at == START + dt.timedelta(days=40)
    assert removed.included_at == START + dt.timedelta(days=10)

    clock.advance(days=1)
    assert sandbox.submit(follow(include, "status", record.protocol)) == removed
    assert sandbox.submit(follow(include, "remove", record.protocol)) == removed  # removing twice: harmless


def test_waiting_period_per_uf_and_per_bureau(clock):
    service = SandboxNegativation(clock, waiting_days=10, waiting_days_by_uf={"sp": 15})
    sp = service.submit(request(contract="SP-1"), uf="SP")
    rj = service.submit(request(contract="RJ-1"), uf="RJ")
    unknown = service.submit(request(contract="XX-1"))
    clock.advance(days=10)
    assert service.submit(follow(request(contract="SP-1"), "status", sp.protocol)).status == "waiting"
    assert service.submit(follow(request(contract="RJ-1"), "status", rj.protocol)).status == "included"
    assert service.submit(follow(request(contract="XX-1"), "status", unknown.protocol)).status == "included"
    clock.advance(days=5)
    sp_now = service.submit(follow(request(contract="SP-1"), "status", sp.protocol))
    assert sp_now.status == "included" and sp_now.included_at == START + dt.timedelta(days=15)
    assert service.waiting_period("sp") == dt.timedelta(days=15)

    bureau = SandboxNegativation(clock, waiting_days=5)
    record = bureau.submit(request())
    clock.advance(days=5)
    assert bureau.submit(follow(request(), "status", record.protocol)).status == "included"


def test_debts_older_than_five_years_are_rejected_with_a_reason(sandbox):
    old = sandbox.submit(request(due=dt.date(2021, 3, 1)))  # 5 years and a day before 2026-03-02
    assert old.status == "rejected"
    assert "5 years" in old.reason and "2021-03-01" in old.reason
    assert old.notice_sent_at is None

    # the limit would pass during the waiting period: the record would never go public
    closing = sandbox.submit(request(contract="C-2", due=dt.date(2021, 3, 8)))
    assert closing.status == "rejected" and "waiting period" in closing.reason

    # the status of a rejected protocol stays rejected; removing it is an invalid transition
    assert sandbox.submit(follow(request(due=dt.date(2021, 3, 1)), "status", old.protocol)).status == "rejected"
    with pytest.raises(ConnectorError) as error:
        sandbox.submit(follow(request(due=dt.date(2021, 3, 1)), "remove", old.protocol))
    assert error.value.code == "INVALID_TRANSITION"


def test_a_record_reaching_the_five_year_limit_is_removed_by_itself(sandbox, clock):
    include = request(due=dt.date(2021, 4, 1))  # limit 2026-04-01 00:00 in São Paulo
    record = sandbox.submit(include)
    assert record.status == "notice_sent"
    clock.advance(days=20)
    assert sandbox.submit(follow(include, "status", record.protocol)).status == "included"
    clock.advance(days=20)
    expired = sandbox.submit(follow(include, "status", record.protocol))
    assert expired.status == "removed"
    assert expired.removed_at == dt.datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
    assert "5-year limit" in expired.reason
    # including it again is rejected, not re-opened
    assert sandbox.submit(include).status == "rejected"


def test_include_is_idempotent_for_the_same_debt(sandbox, clock):
    first = sandbox.submit(request())
    clock.advance(days=3)
    again = sandbox.submit(request())
    assert again.protocol == first.protocol and again.status == "waiting"
    assert again.notice_sent_at == first.notice_sent_at  # no second notice, no new waiting period
    other = sandbox.submit(request(contract="C-2"))
    assert other.protocol == "SBX-00000002"
    # the same contract number from another creditor is another debt
    assert sandbox.submit(request(creditor="11222333000181")).protocol == "SBX-00000003"


def test_invalid_transitions_are_explicit(sandbox, clock):
    def code_of(req, **kwargs):
        with pytest.raises(ConnectorError) as error:
            sandbox.submit(req, **kwargs)
        return error.value.code

    record = sandbox.submit(request())
    assert code_of(follow(request(), "remove", "SBX-99999999")) == "NOT_FOUND"
    assert code_of(follow(request(), "status", "")) == "MISSING_PROTOCOL"
    assert code_of(request(document=OTHER_CPF)) == "CONFLICT"  # same contract, another debtor
    assert code_of(follow(request(contract="C-9"), "status", record.protocol)) == "CONFLICT"
    assert code_of(follow(request(document=OTHER_CPF), "status", record.protocol)) == "CONFLICT"
    sandbox.submit(follow(request(), "remove", record.protocol))
    assert code_of(request()) == "ALREADY_REMOVED"  # a paid debt is not negativated again


def test_removing_during_the_waiting_period_cancels_the_notice(sandbox, clock):
    record = sandbox.submit(request())
    clock.advance(days=4)
    removed = sandbox.submit(follow(request(), "remove", record.protocol))
    assert removed.status == "removed" and removed.included_at is None
    assert removed.removed_at == START + dt.timedelta(days=4)
    clock.advance(days=30)
    assert sandbox.submit(follow(request(), "status", record.protocol)).status == "removed"


def test_debts_not_due_or_without_amount_are_rejected(sandbox):
    assert sandbox.submit(request(due=dt.date(2026, 3, 2))).reason == "the debt is not yet due"
    assert sandbox.submit(request(contract="C-2", amount="0")).status == "rejected"


def test_the_clock_must_be_timezone_aware():
    service = SandboxNegativation(lambda: dt.datetime(2026, 3, 2, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        service.submit(request())


def test_settings_are_validated():
    with pytest.raises(ValueError):
        SandboxNegativation(waiting_days=-1)
    with pytest.raises(ValueError, match="unknown settings"):
        SandboxNegativation.from_config({"waiting_dais": 10})


def test_state_in_a_sqlite_file_survives_restarts_without_documents_in_clear(tmp_path, clock):
    path = str(tmp_path / "negativation.db")
    first = SandboxNegativation(clock, path=path)
    record = first.submit(request())
    first.close()

    second = SandboxNegativation(clock, path=path)
    clock.advance(days=10)
    assert second.submit(follow(request(), "status", record.protocol)).status == "included"
    assert second.submit(request(contract="C-2")).protocol == "SBX-00000002"
    second.close()
    raw = pathlib.Path(path).read_bytes()
    assert KIT_CPF.encode() not in raw and b"C-1" not in raw


def test_runs_through_the_resilient_runtime(sandbox):
    call = Resilient(sandbox, sandbox.submit)
    record = call(request())
    assert record.status == "notice_sent"
    assert call(follow(request(), "status", record.protocol)).protocol == record.protocol
    with pytest.raises(ConnectorError) as error:
        call(follow(request(), "remove", "SBX-12345678"))
    assert error.value.code == "NOT_FOUND" and call.attempts == 3


# ============================================================================================
# HTTP connector, against a real HTTP server on 127.0.0.1
# ============================================================================================

@pytest.fixture
def provider(regua_negativation_provider):
    regua_negativation_provider.now = START
    return regua_negativation_provider


@pytest.fixture
def http(provider):
    connector = provider.connector()
    yield connector
    connector.close()


def test_http_lifecycle_maps_requests_and_answers(http, provider):
    include = request()
    record = http.submit(include)
    assert record.status == "notice_sent" and record.protocol == "NEG-00000001"
    assert record.notice_sent_at == START
    method, path, headers = provider.calls[-1]
    assert (method, path) == ("POST", "/v1/negativacoes")
    assert headers["Authorization"] == provider.token
    body = msgspec.json.decode(provider.bodies[-1])
    assert body == {"devedor": {"documento": KIT_CPF},
                    "divida": {"contrato": "C-1", "valor": "150.00", "vencimento": "2026-01-15",
                               "credor": "Credora Ltda", "cnpj_credor": CREDITOR_CNPJ}}

    provider.advance(days=2)
    assert http.submit(follow(include, "status", record.protocol)).status == "waiting"
    provider.advance(days=8)
    included = http.submit(follow(include, "status", record.protocol))
    assert included.status == "included" and included.included_at == START + dt.timedelta(days=10)
    assert provider.calls[-1][:2] == ("GET", "/v1/negativacoes/NEG-00000001")

    removed = http.submit(follow(include, "remove", record.protocol))
    assert removed.status == "removed" and removed.removed_at == START + dt.timedelta(days=10)
    assert provider.calls[-1][:2] == ("DELETE", "/v1/negativacoes/NEG-00000001")
    assert all(KIT_CPF not in path for _, path, _ in provider.calls)  # documents never in URLs


def test_default_body_is_the_request_itself(provider):
    connector = provider.connector(request_fields={})
    provider.script(201, {"dados": {"protocolo": "P-1", "situacao": "NOTIFICADO",
                                    "notificado_em": "2026-03-02T12:00:00-03:00"}})
    record = connector.submit(request())
    assert record.notice_sent_at == START
    body = msgspec.json.decode(provider.bodies[-1])
    assert body["action"] == "include" and body["debt"]["amount"] == "150.00"
    connector.close()


def test_503_is_retried_through_resilient(http, provider):
    provider.script(503, {"erro": "manutenção"}, times=2)
    call = Resilient(http, http.submit, sleep=lambda seconds: None)
    record = call(request())
    assert record.status == "notice_sent"
    assert call.attempts == 3 and len(provider.calls) == 3


def test_503_until_the_retries_run_out_is_a_transient_error(http, provider):
    provider.script(503, times=3)
    call = Resilient(http, http.submit, sleep=lambda seconds: None)
    with pytest.raises(TransientError) as error:
        call(request())
    assert error.value.code == "HTTP_503" and call.attempts == 3


def test_429_is_transient(http, provider):
    provider.script(429)
    with pytest.raises(TransientError):
        http.submit(request())


def test_a_slow_provider_times_out_as_transient(provider):
    connector = provider.connector(timeout=0.2, retries=0)
    provider.script(201, {}, delay=1.0)
    with pytest.raises(TransientError) as error:
        connector.submit(request())
    assert error.value.code == "TIMEOUT"
    connector.close()


def test_connection_refused_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = HTTPNegativation("closed", f"http://127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(TransientError) as error:
        connector.submit(request())
    assert error.value.code == "CONNECTION"
    connector.close()


def test_4xx_are_connector_errors_with_codes_and_are_not_retried(http, provider):
    call = Resilient(http, http.submit, sleep=lambda seconds: None)
    bad_document = "12345678900"
    with pytest.raises(ProviderError) as error:
        call(request(document=bad_document))
    assert error.value.code == "HTTP_422" and error.value.provider_code == "DOCUMENTO_INVALIDO"
    assert bad_document not in str(error.value)  # the provider echoed it; we don't
    assert call.attempts == 1

    with pytest.raises(ProviderError) as error:
        http.submit(follow(request(), "status", "NEG-404"))
    assert error.value.code == "HTTP_404" and error.value.provider_code == "PROTOCOLO_INEXISTENTE"

    unauthorised = provider.connector(auth_value="Bearer wrong")
    with pytest.raises(ConnectorError) as error:
        unauthorised.submit(request())
    assert error.value.code == "HTTP_401"
    unauthorised.close()

    record = http.submit(request())
    http.submit(follow(request(), "remove", record.protocol))
    with pytest.raises(ProviderError) as error:
        http.submit(request())
    assert error.value.code == "HTTP_409" and error.value.provider_code == "ALREADY_REMOVED"


def test_an_echoed_document_is_scrubbed_from_provider_codes(http, provider):
    provider.script(400, {"erro": {"codigo": f"CPF {KIT_CPF} BLOQUEADO"}})
    with pytest.raises(ProviderError) as error:
        http.submit(request())
    assert KIT_CPF not in error.value.provider_code and KIT_CPF not in str(error.value)


@pytest.mark.parametrize("answer", [
    pytest.param((200, "<html>oops</html>", "text/html"), id="not-json"),
    pytest.param((200, "{\"dados\": ", "application/json"), id="truncated-json"),
    pytest.param((201, {"dados": {"situacao": "NOTIFICADO"}}, "application/json"), id="no-protocol"),
    pytest.param((201, {"dados": {"protocolo": "P-1"}}, "application/json"), id="no-status"),
    pytest.param((201, {"dados": {"protocolo": "P-1", "situacao": "SUMIU"}}, "application/json"),
                 id="unknown-status"),
    pytest.param((201, {"dados": {"protocolo": ["P-1"], "situacao": "NOTIFICADO"}}, "application/json"),
                 id="protocol-not-text"),
    pytest.param((201, {"dados": {"protocolo": "P-1", "situacao": "NOTIFICADO", "notificado_em": "ontem"}},
                  "application/json"), id="bad-timestamp"),
    pytest.param((201, {"dados": {"protocolo": "P-1", "situacao": "NOTIFICADO",
                                  "notificado_em": "2026-03-02T12:00:00"}}, "application/json"),
                 id="naive-timestamp"),
    pytest.param((302, "", "text/plain"), id="redirect"),
    pytest.param((201, ["P-1"], "application/json"), id="json-list"),
])
def test_malformed_answers_are_bad_answer(http, provider, answer):
    status, body, content_type = answer
    provider.script(status, body if not isinstance(body, list) else msgspec.json.encode(body),
                    content_type=content_type)
    with pytest.raises(ConnectorError) as error:
        http.submit(request())
    assert error.value.code == "BAD_ANSWER"
    assert not isinstance(error.value, TransientError)


def test_an_answer_about_another_protocol_is_bad(http, provider):
    provider.script(200, {"dados": {"protocolo": "NEG-2", "situacao": "INCLUIDO"}})
    with pytest.raises(ConnectorError) as error:
        http.submit(follow(request(), "status", "NEG-1"))
    assert error.value.code == "BAD_ANSWER"


def test_a_protocol_carrying_the_document_is_refused(http, provider):
    provider.script(201, {"dados": {"protocolo": f"NEG-{KIT_CPF[:3]}.{KIT_CPF[3:6]}.{KIT_CPF[6:9]}-{KIT_CPF[9:]}",
                                    "situacao": "NOTIFICADO", "notificado_em": "2026-03-02T15:00:00Z"}})
    with pytest.raises(ConnectorError) as error:
        http.submit(request())
    assert error.value.code == "BAD_ANSWER" and KIT_CPF not in str(error.value)


def test_naive_timestamps_with_an_assumed_timezone_and_numeric_protocols(provider):
    connector = provider.connector(assume_timezone="America/Sao_Paulo")
    provider.script(201, {"dados": {"protocolo": 12345, "situacao": "NOTIFICADO",
                                    "notificado_em": "2026-03-02T12:00:00"}})
    record = connector.submit(request())
    assert record.protocol == "12345" and record.notice_sent_at == START
    # a remove answer without a protocol is about the protocol asked for
    provider.script(200, {"dados": {"situacao": "BAIXADO", "baixado_em": "2026-03-05T12:00:00Z"}})
    removed = connector.submit(follow(request(), "remove", "12345"))
    assert removed.protocol == "12345" and removed.status == "removed"
    connector.close()


def test_configuration_is_validated_and_secrets_stay_out_of_repr(monkeypatch):
    with pytest.raises(ValueError, match="status_map"):
        HTTPNegativation("x", "http://127.0.0.1:1", status_map={"OK": "done"})
    with pytest.raises(ValueError, match="endpoint"):
        HTTPNegativation("x", "http://127.0.0.1:1", endpoints={"include": "negativacoes"})
    with pytest.raises(ValueError, match="unknown action"):
        HTTPNegativation("x", "http://127.0.0.1:1", endpoints={"delete": "DELETE /x"})
    with pytest.raises(ValueError, match="base_url"):
        HTTPNegativation.from_config({"name": "x", "base_url": "ftp://example"})
    with pytest.raises(ValueError, match="bad settings"):
        HTTPNegativation.from_config({"name": "x"})
    monkeypatch.setenv("REGUA_TEST_NEG_TOKEN", "Bearer s3cr3t")
    connector = HTTPNegativation.from_config({"name": "x", "base_url": "http://127.0.0.1:1",
                                              "auth_header": "X-Api-Key", "auth_value_env": "REGUA_TEST_NEG_TOKEN"})
    assert connector.client.headers["X-Api-Key"] == "Bearer s3cr3t"
    assert "s3cr3t" not in repr(connector)
    connector.close()


def test_missing_protocol_is_refused_before_calling(http, provider):
    with pytest.raises(ConnectorError) as error:
        http.submit(follow(request(), "status", ""))
    assert error.value.code == "MISSING_PROTOCOL" and provider.calls == []


def test_get_path():
    data = {"dados": {"itens": [{"situacao": "INCLUIDO"}]}}
    assert get_path(data, "dados.itens.0.situacao") == "INCLUIDO"
    assert get_path(data, "dados.itens.3.situacao", None) is None
    assert get_path(data, "dados.nada", "x") == "x"


def test_documents_never_reach_the_logs(http, provider, sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    for service in (http, sandbox):
        record = service.submit(request())
        service.submit(follow(request(), "status", record.protocol))
        service.submit(follow(request(), "remove", record.protocol))
    assert caplog.records  # something was logged…
    assert KIT_CPF not in caplog.text  # …but never the document


# ============================================================================================
# Loading through the plugin manager
# ============================================================================================

def test_the_plugin_provides_the_sandbox_by_default():
    registry = Registry.load(PluginSettings(allow=["negativation"]))
    assert list(registry.negativators) == ["sandbox"]
    assert isinstance(registry.negativators["sandbox"], SandboxNegativation)
    assert "sandbox" not in Registry.load(PluginSettings(deny=["negativation"])).negativators


def test_configured_sandbox_and_http_providers_are_loaded(regua_registry, provider):
    config = {"negativation": {"sandbox": {"waiting_days_by_uf": {"SP": 15}},
                               "http": [provider.connector_config(name="serasa_pefin")]}}
    registry = regua_registry(config=config)
    assert {"sandbox", "serasa_pefin"} <= set(registry.negativators)
    assert registry.negativators["sandbox"].waiting_period("SP") == dt.timedelta(days=15)
    serasa = registry.negativators["serasa_pefin"]
    assert serasa.submit(request()).status == "notice_sent"
    serasa.close()


def test_the_hook_alone():
    services = regua_negativation_services({})
    assert [service.name for service in services] == ["sandbox"]
    with pytest.raises(ValueError):
        regua_negativation_services({"negativation": {"http": [{"base_url": "http://127.0.0.1:1"}]}})
