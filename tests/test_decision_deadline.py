"""One connector deadline per decision: every lookup of a decision, the wait for a free lookup
thread included, shares one budget (server.connector_budget), whatever each connector's own
timeout, retries and backoff would allow.

The bureaus here are real HTTP servers on 127.0.0.1 that accept the connection and never answer.
Their own timeout (60 s, 2 retries) is far beyond the decision's budget (1 s): a decision that
answers at all within the client's 20 s has been cut by the decision's deadline, and its outcome
is the policy's `on error`.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from loopback import LoopbackHTTP
from server_harness import SANDBOX_HEADERS, ThreadedServer, sandbox_settings

from regua.engine import compile_policy
from regua.engine.evaluation import _PREFETCH_POOL
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry

CNPJ = "11.222.333/0001-81"
POLICY = """policy dois_birôs kind credit

input
  cnpj: cnpj

let serasa = bureau.serasa(cnpj)
let spc = bureau.spc(cnpj)

rule serasa_baixo
  when serasa.score.value < 300
  deny "SERASA" "baixo"

rule spc_baixo
  when spc.score.value < 300
  deny "SPC" "baixo"

default approve
on error review "SEM_BIRO" "Birô sem resposta; análise manual"
"""


class Silent:
    """A bureau that accepts every request and never answers (until the test ends)."""

    def __init__(self):
        self.release = threading.Event()
        self.requests = 0
        self.lock = threading.Lock()
        silent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with silent.lock:
                    silent.requests += 1
                silent.release.wait(120)

            def log_message(self, *args):
                pass

        self.handler = Handler


@pytest.fixture
def silent_bureau():
    silent = Silent()
    with LoopbackHTTP(silent.handler, "silent-bureau") as http:
        silent.url = http.base_url
        try:
            yield silent
        finally:
            silent.release.set()


def bureaus(url: str) -> dict:
    # Each lookup alone could take 3 attempts x 60 s: only the decision's budget ends it sooner.
    common = {"base_url": url, "path": "/{document}", "timeout": 60, "retries": 2, "backoff": 0.05,
              "budget": 300, "ttl": 0, "failure_threshold": 1000}
    return {"http_bureau": {"bureaus": [{"name": "serasa", **common}, {"name": "spc", **common}]}}


def test_the_wait_for_a_free_lookup_thread_counts_against_the_decision_deadline(silent_bureau):
    """Every prefetch thread is busy: the decision still ends at its deadline, its lookups unavailable."""
    registry = Registry.load(PluginSettings(config=bureaus(silent_bureau.url)))
    policy = compile_policy(POLICY, env=registry.environment())
    connectors = registry.engine_connectors()
    hold = threading.Event()
    blockers = [_PREFETCH_POOL.submit(hold.wait, 60) for _ in range(_PREFETCH_POOL._max_workers)]
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as caller:
            future = caller.submit(policy.evaluate, {"cnpj": CNPJ}, connectors=connectors,
                                   deadline=time.monotonic() + 0.5)
            decision = future.result(timeout=20)  # without the deadline: until a blocker ends (60 s)
    finally:
        hold.set()
        concurrent.futures.wait(blockers)
    assert decision.outcome == "review" and set(decision.reason_codes) == {"SEM_BIRO"}
    assert [(c.connector, c.status, c.error) for c in decision.connector_calls] == \
        [("bureau.serasa", "failed", "CONNECTOR_TIMEOUT"), ("bureau.spc", "failed", "CONNECTOR_TIMEOUT")]
    assert silent_bureau.requests == 0  # never started: the deadline passed while they queued


def test_a_lookup_started_after_the_deadline_is_not_made(silent_bureau):
    registry = Registry.load(PluginSettings(config=bureaus(silent_bureau.url)))
    policy = compile_policy(POLICY, env=registry.environment())
    decision = policy.evaluate({"cnpj": CNPJ}, connectors=registry.engine_connectors(),
                               deadline=time.monotonic() - 1)
    assert decision.outcome == "review"
    assert {c.error for c in decision.connector_calls} == {"CONNECTOR_TIMEOUT"}
    assert silent_bureau.requests == 0


def test_concurrent_decisions_over_http_each_end_within_the_decision_budget(tmp_path, silent_bureau):
    """24 concurrent requests, 2 silent bureaus each (48 lookups for 8 prefetch threads): every
    decision answers, through `on error`, long before any single lookup's own timeout."""
    settings = sandbox_settings(tmp_path, server={"connector_budget": 1.0},
                                plugins={"config": bureaus(silent_bureau.url)})
    (tmp_path / "policies" / "dois_biros.regua").write_text(POLICY, encoding="utf-8")
    with ThreadedServer(settings) as server:
        def evaluate(_):
            with httpx.Client(base_url=server.url, headers=SANDBOX_HEADERS, timeout=20) as client:
                return client.post("/evaluate/dois_birôs", json={"input": {"cnpj": CNPJ}, "dry_run": True})

        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            responses = list(pool.map(evaluate, range(24)))
    assert [r.status_code for r in responses] == [200] * 24
    for response in responses:
        body = response.json()
        assert body["outcome"] == "review" and {r["code"] for r in body["reasons"]} == {"SEM_BIRO"}
        assert {(c["connector"], c["error"]) for c in body["connector_calls"]} == \
            {("bureau.serasa", "CONNECTOR_TIMEOUT"), ("bureau.spc", "CONNECTOR_TIMEOUT")}


def test_the_connector_budget_must_be_positive(tmp_path):
    from regua.server.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="server.connector_budget"):
        load_settings(environ={"REGUA_SERVER__CONNECTOR_BUDGET": "0"})
