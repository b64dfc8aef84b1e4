"""The built-in HTTP monitoring source against a real HTTP server on 127.0.0.1: paging with the
cursor, auth, the strict contract (BAD_ANSWER with the field path, no document in messages),
status codes, timeouts, retries through the runtime, configuration, and the registry."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from loopback import LoopbackHTTP

from regua.engine.connectors import ConnectorError
from regua.plugins.builtin.monitoring_source import HTTPMonitoringSource
from regua.plugins.connectors import MonitoringSource, TransientError
from regua.plugins.contracts import AlertBatch, MonitoringAlert
from regua.plugins.manager import PluginSettings, get_plugin_manager
from regua.plugins.registry import Registry
from regua.plugins.runtime import Resilient

CPF = "52998224725"
CNPJ = "11222333000181"
TOKEN = "m0nit0r-s3cr3t-for-tests"
JSON = msgspec.json.Encoder(decimal_format="number")


def alert(n: int, **fields) -> dict:
    base = {"id": f"evt-{n}", "kind": "negativation", "bureau": "serasa", "document": CNPJ if n % 2 else CPF,
            "occurred_at": f"2026-11-{n:02d}T10:00:00-03:00", "amount": Decimal("1234.56"), "creditor": "Banco X"}
    base.update(fields)
    return base


class Feed:
    """A bureau's alert feed: alerts after `cursor` (an index), `limit` at a time. `script` queues
    (status, body, delay) answers that take precedence, one per request."""

    def __init__(self):
        self.alerts = [alert(1), alert(2, bureau="", kind="score_change", amount=None, creditor="",
                                     score_before=700, score_after=540), alert(3, kind="protest")]
        self.script: list[tuple[int, bytes | dict, float]] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.base_url = ""

    def answer(self, path: str, headers: dict):
        url = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append({"path": url.path, "query": query, "headers": headers})
            if self.script:
                return self.script.pop(0)
        if url.path != "/v1/alertas":
            return 404, {"erro": "não encontrado"}, 0.0
        start = int(query.get("cursor", "0"))
        page = self.alerts[start:start + int(query["limit"])]
        return 200, {"alerts": page, "cursor": str(start + len(page))}, 0.0


def _handler(feed: Feed):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, payload, delay = feed.answer(self.path, dict(self.headers))
            if delay:
                feed.release.wait(delay)
            data = payload if isinstance(payload, bytes) else JSON.encode(payload)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def feed():
    state = Feed()
    with LoopbackHTTP(_handler(state), "fake-monitoring") as http:
        state.base_url = http.base_url
        try:
            yield state
        finally:
            state.release.set()  # handlers told to hang let go before the server stops


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("SERASA_MONITOR_TOKEN", TOKEN)


def settings(feed: Feed, **overrides) -> dict:
    config = {"name": "serasa", "base_url": feed.base_url, "path": "/v1/alertas", "page_size": 2,
              "auth": {"header": "Authorization", "prefix": "Bearer ", "env": "SERASA_MONITOR_TOKEN"},
              "timeout": 2, "retries": 2, "backoff": 0.01, "interval_minutes": 5}
    config.update(overrides)
    return config


def source(feed: Feed, **overrides) -> HTTPMonitoringSource:
    return HTTPMonitoringSource(**settings(feed, **overrides))


def failure(call, *args) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        call(*args)
    return caught.value


# ---------------------------------------------------------------------------------------------
# Polling.


def test_pages_through_the_feed_with_the_cursor(feed):
    monitor = source(feed)
    first = monitor.poll(None)
    assert isinstance(first, AlertBatch) and [a.id for a in first.alerts] == ["evt-1", "evt-2"]
    assert first.cursor == "2"
    second = monitor.poll(first.cursor)
    assert [a.id for a in second.alerts] == ["evt-3"] and second.cursor == "3"
    assert monitor.poll(second.cursor).alerts == []
    assert [r["query"] for r in feed.requests] == [{"limit": "2"}, {"cursor": "2", "limit": "2"},
                                                   {"cursor": "3", "limit": "2"}]
    assert {r["path"] for r in feed.requests} == {"/v1/alertas"}


def test_alerts_are_the_contract_exactly(feed):
    [negativation, score_change] = source(feed).poll(None).alerts
    assert isinstance(negativation, MonitoringAlert)
    assert negativation.amount == Decimal("1234.56") and isinstance(negativation.amount, Decimal)
    assert negativation.occurred_at == dt.datetime(2026, 11, 1, 13, 0, tzinfo=dt.timezone.utc)
    assert negativation.document == CNPJ and negativation.creditor == "Banco X"
    assert (score_change.kind, score_change.score_before, score_change.score_after) == ("score_change", 700, 540)


def test_an_empty_bureau_is_the_source_name_and_a_given_one_is_kept(feed):
    feed.alerts = [alert(1, bureau="spc"), alert(2, bureau="")]
    alerts = source(feed, name="boavista").poll(None).alerts
    assert [a.bureau for a in alerts] == ["spc", "boavista"]


def test_a_missing_cursor_keeps_the_one_polled_with(feed):
    feed.script += [(200, {"alerts": []}, 0), (200, {"alerts": [], "cursor": None}, 0)]
    monitor = source(feed)
    assert monitor.poll("abc").cursor == "abc"
    assert monitor.poll(None).cursor is None


def test_sends_the_auth_header_from_an_environment_variable_or_a_value(feed, monkeypatch):
    source(feed, headers={"X-Cliente": "regua"}).poll(None)
    headers = feed.requests[-1]["headers"]
    assert headers["Authorization"] == f"Bearer {TOKEN}" and headers["X-Cliente"] == "regua"
    assert headers["Accept"] == "application/json"
    source(feed, auth={"header": "X-Api-Key", "value": "k-123"}).poll(None)
    assert feed.requests[-1]["headers"]["X-Api-Key"] == "k-123"
    monkeypatch.delenv("SERASA_MONITOR_TOKEN")
    error = failure(source(feed).poll, None)
    assert error.code == "MISCONFIGURED" and "SERASA_MONITOR_TOKEN" in str(error)


def test_the_secret_never_shows_in_repr_or_logs(feed, caplog):
    caplog.set_level(logging.DEBUG)
    monitor = source(feed)
    monitor.poll(None)
    assert "HTTP Request" in caplog.text
    assert TOKEN not in repr(monitor) and TOKEN not in caplog.text
    assert "k-123" not in repr(source(feed, auth={"header": "X-Api-Key", "value": "k-123"}))
    assert CPF not in caplog.text and CNPJ not in caplog.text


# ---------------------------------------------------------------------------------------------
# Bad answers, statuses and the runtime.

BAD_ANSWERS = {
    "not json": (b"<html>erro</html>", "not valid JSON"),
    "truncated json": (b'{"alerts": [', "not valid JSON"),
    "a json list": (b"[]", "at `$`"),
    "alerts not a list": ({"alerts": {"id": "1"}}, "at `$.alerts`"),
    "a document as the kind": ({"alerts": [alert(1, kind=CPF)]}, "at `$.alerts[0].kind`"),
    "document not a string": ({"alerts": [alert(1), alert(2, document=int(CPF))]}, "at `$.alerts[1].document`"),
    "amount not a number": ({"alerts": [alert(1, amount=CNPJ + "x")]}, "at `$.alerts[0].amount`"),
    "a bad instant": ({"alerts": [alert(1, occurred_at="2026-13-45T00:00:00Z")]}, "at `$.alerts[0].occurred_at`"),
    "a naive instant": ({"alerts": [alert(1, occurred_at="2026-11-01T10:00:00")]}, "at `$.alerts[0].occurred_at`"),
    "bureau missing": ({"alerts": [{k: v for k, v in alert(1).items() if k != "bureau"}]}, "`bureau`"),
    "a document as an unknown field": ({"alerts": [alert(1, **{CPF: "x"})]}, "unknown field"),
    "cursor not a string": ({"alerts": [], "cursor": 7}, "at `$.cursor`"),
}


@pytest.mark.parametrize("body, where", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_a_bad_answer_names_the_field_without_the_document(feed, body, where):
    feed.script.append((200, body, 0))
    monitor = source(feed, retries=2)
    error = failure(Resilient(monitor, monitor.poll), None)
    assert error.code == "BAD_ANSWER" and not isinstance(error, TransientError)
    assert where in str(error) and str(error).startswith("serasa: ")
    assert CPF not in str(error) and CNPJ not in str(error)
    assert len(feed.requests) == 1  # a bad answer is not retried


def test_5xx_is_transient_and_retried_by_the_runtime(feed):
    feed.script += [(500, b"oops", 0), (503, {"erro": "x"}, 0)]
    monitor = source(feed)
    assert isinstance(failure(monitor.poll, None), TransientError)
    call = Resilient(monitor, monitor.poll)
    assert [a.id for a in call(None).alerts] == ["evt-1", "evt-2"]
    assert call.attempts == 2 and call.breaker.state == "closed"


def test_5xx_exhausting_the_retries_fails_with_its_status(feed):
    feed.script += [(502, b"", 0)] * 3
    monitor = source(feed, retries=2)
    error = failure(Resilient(monitor, monitor.poll), None)
    assert isinstance(error, TransientError) and error.code == "HTTP_502"
    assert len(feed.requests) == 3


def test_429_is_transient(feed):
    feed.script.append((429, {"erro": "limite"}, 0))
    monitor = source(feed, retries=1)
    assert len(Resilient(monitor, monitor.poll)(None).alerts) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_final_with_their_status(feed, status):
    feed.script.append((status, {"erro": "x"}, 0))
    monitor = source(feed, retries=3)
    error = failure(Resilient(monitor, monitor.poll), None)
    assert error.code == f"HTTP_{status}" and not isinstance(error, TransientError)
    assert len(feed.requests) == 1


def test_a_wrong_path_is_http_404(feed):
    assert failure(source(feed, path="/nao-existe").poll, None).code == "HTTP_404"


def test_a_slow_feed_times_out(feed):
    feed.script.append((200, {"alerts": []}, 5.0))
    monitor = source(feed, timeout=0.3, retries=0)
    started = time.perf_counter()
    error = failure(Resilient(monitor, monitor.poll), None)
    assert error.code == "TIMEOUT" and isinstance(error, TransientError)
    assert time.perf_counter() - started < 1.5


def test_a_refused_connection_is_transient(feed):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = failure(source(feed, base_url=f"http://127.0.0.1:{port}").poll, None)
    assert error.code == "CONNECTION" and isinstance(error, TransientError)


# ---------------------------------------------------------------------------------------------
# Configuration and the plugin system.


def plugin_settings(*sources: dict) -> PluginSettings:
    return PluginSettings(config={"monitoring_sources": {"sources": list(sources)}})


def test_no_source_unless_configured():
    registry = Registry.load()
    assert registry.pm.infos["monitoring_sources"].hooks == ["regua_monitoring_sources"]
    assert registry.monitoring_sources == {}


def test_the_registry_exposes_each_configured_source(feed):
    minimal = {"name": "spc", "base_url": feed.base_url + "/"}  # every other setting by default
    registry = Registry.load(plugin_settings(settings(feed), minimal))
    assert set(registry.monitoring_sources) == {"serasa", "spc"}
    serasa = registry.monitoring_sources["serasa"]
    assert isinstance(serasa, MonitoringSource) and isinstance(serasa, HTTPMonitoringSource)
    assert (serasa.interval_minutes, serasa.page_size, serasa.timeout, serasa.retries) == (5, 2, 2.0, 2)
    spc = registry.monitoring_sources["spc"]
    assert (spc.base_url, spc.path, spc.interval_minutes, spc.page_size, spc.auth) == (
        feed.base_url, "/alerts", MonitoringSource.interval_minutes, 100, None)
    assert [a.id for a in serasa.poll(None).alerts] == ["evt-1", "evt-2"]


def test_the_hook_called_directly(feed):
    pm = get_plugin_manager(PluginSettings(allow=["monitoring_sources"]))
    config = {"monitoring_sources": {"sources": [settings(feed)]}}
    [provided] = pm.hook.regua_monitoring_sources(config=config)
    assert [s.name for s in provided] == ["serasa"]
    assert pm.hook.regua_monitoring_sources(config={}) == [[]]


def test_denied_it_provides_nothing(feed):
    settings_ = PluginSettings(deny=["monitoring_sources"], config=plugin_settings(settings(feed)).config)
    assert Registry.load(settings_).monitoring_sources == {}


@pytest.mark.parametrize("overrides, message", [
    ({"name": "not an identifier"}, "name"),
    ({"name": ""}, "name"),
    ({"base_url": "ftp://x"}, "base_url"),
    ({"page_size": 0}, "page_size"),
    ({"page_size": "muitos"}, "page_size"),
    ({"interval_minutes": 0}, "interval_minutes"),
    ({"timeout": 0}, "timeout"),
    ({"auth": {"header": "Authorization"}}, "auth"),
    ({"auth": {"header": "Authorization", "value": "x", "env": "Y"}}, "auth"),
    ({"unknown_setting": 1}, "unknown_setting"),
])
def test_a_bad_configuration_fails_when_loading(feed, overrides, message):
    with pytest.raises(ValueError, match=message) as raised:
        Registry.load(plugin_settings(settings(feed, **overrides)))
    assert "monitoring_sources" in str(raised.value)


@pytest.mark.parametrize("config, message", [
    ({"monitoring_sources": {"sources": {"name": "serasa"}}}, "must be a list"),
    ({"monitoring_sources": {"sources": ["serasa"]}}, "dict of settings"),
    ({"monitoring_sources": ["serasa"]}, "must be a dict"),
])
def test_a_badly_shaped_section_fails_when_loading(config, message):
    with pytest.raises(ValueError, match=message):
        Registry.load(PluginSettings(config=config))


def test_duplicate_names_are_refused(feed):
    from regua.plugins.registry import RegistryError

    with pytest.raises(RegistryError, match="two monitoring sources are called 'serasa'"):
        Registry.load(plugin_settings(settings(feed), settings(feed)))
