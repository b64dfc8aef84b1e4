"""The HTTP JSON bureau through the plugin system, against a real HTTP server on 127.0.0.1
(tests/bureau_harness.py): configuration, the bundled B2B policy reaching the bureau, the SQLite
cache (hits, TTL, no document in clear) and the PostgreSQL one replicas share, record/replay."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import bureau_harness
import pytest
from bureau_harness import (
    AS_OF,
    B2B,
    B2B_INPUT,
    CNPJ,
    CNPJ_DIGITS,
    CNPJ_RESTRICTED,
    CNPJ_RESTRICTED_DIGITS,
    CNPJ_UNKNOWN,
    CNPJ_UNKNOWN_DIGITS,
    evaluate,
    plugin_settings,
    settings,
    stopped,
    summary,
)

from regua.engine.compiler import compile_file
from regua.engine.connectors import ConnectorError
from regua.plugins.builtin.http_bureau import HTTPJSONBureau
from regua.plugins.cache import BureauCache
from regua.plugins.connectors import BureauConnector, TransientError
from regua.plugins.contracts import BureauReport, Score
from regua.plugins.manager import PluginSettings, get_plugin_manager
from regua.plugins.recording import BureauPlugin, RecordingBureau, ReplayBureau, record, recording_path, replay
from regua.plugins.registry import Registry
from regua.plugins.runtime import Resilient

# The scripted provider, and its token in the environment for every test (fixtures).
provider, token = bureau_harness.provider, bureau_harness.token

# ---------------------------------------------------------------------------------------------
# Through the plugin system: configuration, the bundled policy, the cache.


def test_no_http_bureau_unless_configured():
    registry = Registry.load()
    assert "http_bureau" in registry.pm.infos
    assert not any(isinstance(c, HTTPJSONBureau) for c in registry.bureaus.values())


def test_one_connector_per_configured_bureau(provider):
    config = {"http_bureau": {"bureaus": [settings(provider), settings(provider, name="spc", cost="1.50")]}}
    registry = Registry.load(PluginSettings(config=config))
    assert isinstance(registry.bureaus["serasa"], HTTPJSONBureau)
    assert registry.bureaus["spc"].cost == "1.50" and registry.bureaus["spc"].ttl == 3600


@pytest.mark.parametrize("overrides, message", [
    ({"name": "not an identifier"}, "name"),
    ({"base_url": "ftp://x"}, "base_url"),
    ({"cost": "caro"}, "cost"),
    ({"auth": {"header": "Authorization"}}, "auth"),
    ({"mapping": {"score.valor": "x"}}, "score.valor"),
    ({"unknown_setting": 1}, "unknown_setting"),
])
def test_a_bad_configuration_fails_when_loading(provider, overrides, message):
    with pytest.raises(ValueError, match=message):
        Registry.load(plugin_settings(provider, **overrides))


def test_the_bundled_b2b_policy_reaches_the_bureau_through_the_plugin_system(provider):
    registry = Registry.load(plugin_settings(provider))
    prepared = compile_file(B2B, env=registry.environment())
    connectors = registry.engine_connectors()
    assert "bureau.serasa" in connectors.names()

    approved = prepared.evaluate(B2B_INPUT, connectors=connectors, as_of=AS_OF)
    assert approved.outcome == "approve" and approved.reason_codes == ["DENTRO_DO_LIMITE"]
    assert approved.outputs["limite"] == Decimal("120000")
    assert provider.requests[0]["path"] == f"/v1/relatorios/cnpj/{CNPJ_DIGITS}"

    denied = prepared.evaluate({**B2B_INPUT, "cnpj": CNPJ_RESTRICTED}, connectors=connectors, as_of=AS_OF)
    assert denied.outcome == "deny"
    assert denied.reason_codes == ["RESTRICOES", "PROTESTO"]  # 3500.10 + 2000.33 > 5000, and a protest
    unknown = prepared.evaluate({**B2B_INPUT, "cnpj": CNPJ_UNKNOWN}, connectors=connectors, as_of=AS_OF)
    assert unknown.reason_codes == ["BUREAU_INDISPONIVEL"]
    assert unknown.connector_calls[0].error == "CONNECTOR_NOT_FOUND"
    assert provider.hits == 3
    # The decision shows the document masked, never in clear.
    assert CNPJ_DIGITS not in json.dumps(approved.to_dict(), default=str)


def test_the_cache_answers_the_second_evaluation(provider, tmp_path):
    registry = Registry.load(plugin_settings(provider), cache_path=str(tmp_path / "c.db"))
    first, second = evaluate(registry), evaluate(registry)
    assert provider.hits == 1
    assert summary(first) == summary(second)
    miss, hit = first.connector_calls[0], second.connector_calls[0]
    assert (miss.cached, miss.cost) == (False, "3.90")
    assert (hit.cached, hit.cost) == (True, "0")
    assert second.to_dict()["connector_calls"][0]["cached"] is True
    # A new registry on the same file (another process, a restart) still hits the cache.
    assert evaluate(Registry.load(plugin_settings(provider), cache_path=str(tmp_path / "c.db"))).outcome == "approve"
    assert provider.hits == 1


def test_failures_are_not_cached(provider, tmp_path):
    provider.script.append((503, b"", 0))
    registry = Registry.load(plugin_settings(provider, retries=0), cache_path=str(tmp_path / "c.db"))
    assert evaluate(registry).reason_codes == ["BUREAU_INDISPONIVEL"]
    assert evaluate(registry).outcome == "approve"
    assert provider.hits == 2


def test_n_evaluations_with_and_without_the_cache(provider, tmp_path):
    uncached = Registry.load(plugin_settings(provider))
    for _ in range(5):
        evaluate(uncached)
    assert provider.hits == 5
    cached = Registry.load(plugin_settings(provider), cache_path=str(tmp_path / "c.db"))
    for _ in range(5):
        evaluate(cached)
    assert provider.hits == 6


def test_an_expired_answer_is_fetched_again(provider, tmp_path):
    now = [1_000_000.0]
    cache = BureauCache(str(tmp_path / "c.db"), clock=lambda: now[0])
    registry = Registry(get_plugin_manager(plugin_settings(provider, ttl=60)), cache)
    assert not evaluate(registry).connector_calls[0].cached
    now[0] += 59
    assert evaluate(registry).connector_calls[0].cached
    assert provider.hits == 1
    now[0] += 2  # 61 s after it was stored
    call = evaluate(registry).connector_calls[0]
    assert (call.cached, call.cost) == (False, "3.90")
    assert provider.hits == 2
    assert evaluate(registry).connector_calls[0].cached
    assert provider.hits == 2


def test_the_cache_never_holds_the_document_in_clear(provider, tmp_path):
    registry = Registry.load(plugin_settings(provider), cache_path=str(tmp_path / "c.db"))
    for cnpj in (CNPJ, CNPJ_RESTRICTED):
        evaluate(registry, {**B2B_INPUT, "cnpj": cnpj})
    registry.cache.db.conn.execute("pragma wal_checkpoint(FULL)")
    rows = list(registry.cache.db.query("select * from connector_cache"))
    assert len(rows) == 2
    files = list(tmp_path.glob("c.db*"))
    blob = b"".join(f.read_bytes() for f in files)
    assert b"Banco X" in blob  # the answers are there…
    for document in (CNPJ_DIGITS, CNPJ, CNPJ_RESTRICTED_DIGITS, CNPJ_RESTRICTED):
        assert document.encode() not in blob  # …but never the document (the provider echoed it)


# ---------------------------------------------------------------------------------------------
# Record, then replay with the provider gone.


def test_record_then_replay_gives_identical_decisions_with_the_server_stopped(provider, tmp_path):
    folder = tmp_path / "recordings"
    recorder = RecordingBureau(HTTPJSONBureau(**settings(provider)), folder)
    recording = Registry.load(extra=[BureauPlugin(recorder)])
    documents = (CNPJ, CNPJ_RESTRICTED, CNPJ_UNKNOWN)
    recorded = [evaluate(recording, {**B2B_INPUT, "cnpj": cnpj}) for cnpj in documents]
    assert [d.outcome for d in recorded] == ["approve", "deny", "review"]
    assert provider.hits == 3

    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(recording_path(folder, "serasa", d).name
                           for d in (CNPJ_DIGITS, CNPJ_RESTRICTED_DIGITS, CNPJ_UNKNOWN_DIGITS))
    for path in folder.iterdir():
        for document in (CNPJ_DIGITS, CNPJ_RESTRICTED_DIGITS, CNPJ_UNKNOWN_DIGITS):
            assert document not in path.name and document.encode() not in path.read_bytes()
    not_found = json.loads(recording_path(folder, "serasa", CNPJ_UNKNOWN_DIGITS).read_text())
    assert not_found["error"] == {"code": "NOT_FOUND", "transient": False}

    stopped(provider)
    replaying = Registry.load(extra=[BureauPlugin(ReplayBureau(folder, "serasa"), name="replay")])
    replayed = [evaluate(replaying, {**B2B_INPUT, "cnpj": cnpj}) for cnpj in documents]
    assert [summary(d) for d in replayed] == [summary(d) for d in recorded]
    assert provider.hits == 3
    assert replayed[1].outputs == recorded[1].outputs
    # Never recorded: a failure the policy handles, not a crash.
    other = evaluate(replaying, {**B2B_INPUT, "cnpj": "11.444.777/0001-61"})
    assert other.connector_calls[0].error == "CONNECTOR_NOT_RECORDED"
    assert other.reason_codes == ["BUREAU_INDISPONIVEL"]


def test_replay_returns_the_recorded_report_exactly(provider, tmp_path):
    inner = HTTPJSONBureau(**settings(provider))
    live = RecordingBureau(inner, tmp_path).fetch(CNPJ_RESTRICTED_DIGITS)
    replayed = ReplayBureau(tmp_path, "serasa").fetch(CNPJ_RESTRICTED_DIGITS)
    assert replayed == live
    assert replayed.restrictions[0].amount == Decimal("3500.10")


def test_record_and_replay_a_whole_registry(provider, tmp_path):
    live = Registry.load(plugin_settings(provider))
    record(live, tmp_path)
    assert isinstance(live.bureaus["serasa"], RecordingBureau)
    recorded = evaluate(live)
    assert provider.hits == 1 and recorded.connector_calls[0].cost == "3.90"  # the recorder keeps the settings

    offline = Registry.load(plugin_settings(provider))
    replay(offline, tmp_path)
    replayed = evaluate(offline)
    assert summary(replayed) == summary(recorded) and provider.hits == 1
    assert replayed.connector_calls[0].cost == "0"


def test_recording_an_async_connector_and_replaying_its_failures(tmp_path):
    class AsyncBureau(BureauConnector):
        name, retries = "quod", 0

        async def fetch(self, document):
            await asyncio.sleep(0)
            if document == CNPJ_UNKNOWN_DIGITS:
                raise TransientError("UNAVAILABLE", "down")
            return BureauReport(score=Score(value=640, bureau="quod"))

    recorder = RecordingBureau(AsyncBureau(), tmp_path)
    call = Resilient(recorder, recorder.fetch)
    assert call(CNPJ_DIGITS).score.value == 640
    with pytest.raises(TransientError):
        call(CNPJ_UNKNOWN_DIGITS)
    replayer = ReplayBureau(tmp_path, "quod")
    assert replayer.fetch(CNPJ_DIGITS) == BureauReport(score=Score(value=640, bureau="quod"))
    with pytest.raises(TransientError) as caught:
        replayer.fetch(CNPJ_UNKNOWN_DIGITS)
    assert caught.value.code == "UNAVAILABLE"
    with pytest.raises(ConnectorError) as caught:
        replayer.fetch(CNPJ_RESTRICTED_DIGITS)
    assert caught.value.code == "NOT_RECORDED"
    recording_path(tmp_path, "quod", CNPJ_DIGITS).write_bytes(b"{not json")
    with pytest.raises(ConnectorError) as caught:
        replayer.fetch(CNPJ_DIGITS)
    assert caught.value.code == "BAD_ANSWER"


def test_replicas_share_what_one_paid_for_through_the_postgresql_cache(provider, postgres_url):
    """Two replicas on one PostgreSQL (server.connector_cache, what the server uses there): the
    answer replica A paid for is served to B from the cache, for free, until its ttl runs out."""
    from regua import postgres
    from regua.server.connector_cache import PostgresBureauCache
    from regua.server.store import open_store

    store = open_store(postgres_url)  # the server's migrations create connector_cache
    now = [1_000_000.0]
    # B's own connection pool (another application_name): only the database is shared.
    url_b = postgres_url + ("&" if "?" in postgres_url else "?") + "application_name=replica-b"

    def replica(url: str) -> Registry:
        return Registry(get_plugin_manager(plugin_settings(provider, ttl=60)),
                        PostgresBureauCache(url, clock=lambda: now[0]))

    a, b = replica(postgres_url), replica(url_b)
    try:
        paid = evaluate(a).connector_calls[0]
        assert (paid.cached, paid.cost) == (False, "3.90")
        now[0] += 59
        served = evaluate(b)
        assert (served.connector_calls[0].cached, served.connector_calls[0].cost) == (True, "0")
        assert summary(served) == summary(evaluate(a))
        assert provider.hits == 1  # paid once, by A
        rows = store.query("select key, connector, cost from connector_cache")
        assert rows == [{"key": BureauCache.key("bureau.serasa", CNPJ_DIGITS), "connector": "bureau.serasa",
                         "cost": "3.90"}]

        now[0] += 2  # 61 s after A stored it: B pays again, and its answer is what A then reads
        expired = evaluate(b).connector_calls[0]
        assert (expired.cached, expired.cost) == (False, "3.90")
        assert provider.hits == 2
        assert evaluate(a).connector_calls[0].cached and provider.hits == 2
        assert len(store.query("select key from connector_cache")) == 1
    finally:
        postgres.close_pools(url_b)
