"""Shadow challengers evaluated in a child process (server.shadow_process, `server.shadow_process`
on by default): the same decisions as the engine makes on the recorded answers, the arm and the
shadow rows linked by decision id, the metrics counted by the server, and a child that dies costs
its batch (counted as failed) and nothing else: the next batch starts another.

The real app over a socket on a real SQLite store; the child is a real process, killed for real.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import time
from contextlib import closing

import pytest
from server_harness import B2B, LOOSE, ThreadedServer, b2b_order, fresh_document, metric, sandbox_settings, scrape

from regua.engine import compile_policy
from regua.engine.recorded import RecordedConnectors

TODAY = dt.date(2026, 11, 22)


@pytest.fixture()
def server(tmp_path):
    with ThreadedServer(sandbox_settings(tmp_path), today=lambda: TODAY) as srv:
        yield srv


def start_shadow(client) -> None:
    created = client.post("/experiments", json={"name": "sombra", "policy": "credito_b2b",
                                                "challengers": [{"name": "folgada", "source": LOOSE, "share": 0}]})
    assert created.status_code == 201, created.text


def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def test_the_child_process_evaluates_each_shadow_as_the_engine_does(server):
    worker = server.services.evaluator.experiments.worker
    with server.client() as client:
        start_shadow(client)
        until(lambda: worker.process.ready)  # started when the experiment appeared, before any request
        assert worker.process.pid != os.getpid()
        loose = compile_policy(LOOSE, "loose.regua")
        answers = []
        for amount in ("1000.00", "60000.00", "90000.00", "400000.00"):  # the gate at 100%, 150% and beyond
            order = b2b_order(fresh_document("clean"), valor_pedido=amount)
            answer = client.post("/evaluate/credito_b2b", json={"input": order}).json()
            answers.append((order, answer))
        assert worker.wait_idle(10)
        assert worker.sent >= 1  # in the child's hands, not evaluated on the server's thread
        outcomes = set()
        for order, answer in answers:
            record = client.get(f"/decisions/{answer['decision_id']}").json()
            assert record["experiment"]["arm"] == "champion"
            stored = server.services.store.decision(answer["decision_id"])
            replay = RecordedConnectors(["bureau.serasa", "portfolio.customer"])
            replay.load(stored["connector_answers"])
            expected = loose.evaluate(order, connectors=replay, as_of=TODAY)
            [shadow] = record["experiment"]["shadows"]
            assert (shadow["arm"], shadow["outcome"], shadow["reason_codes"]) == \
                ("folgada", expected.outcome, expected.reason_codes)
            assert shadow["agrees"] == (expected.outcome == answer["outcome"])
            outcomes.add((answer["outcome"], expected.outcome))
        assert len(outcomes) > 1  # the orders reached different outcomes: not one case four times
        after = scrape(client)
    completed = metric(after, "regua_shadow_jobs_completed_total", experiment="sombra")
    assert completed == metric(after, "regua_shadow_jobs_queued_total", experiment="sombra") >= 4
    assert metric(after, "regua_shadow_evaluation_seconds_count", experiment="sombra", arm="folgada") == completed
    assert metric(after, "regua_shadow_lag_seconds_count", experiment="sombra") == completed


def test_a_child_that_dies_costs_its_shadows_only_and_the_next_batch_starts_another(server):
    worker = server.services.evaluator.experiments.worker
    with server.client() as client:
        start_shadow(client)
        until(lambda: worker.process.ready)
        first = worker.process.pid
        # The child cannot write while another connection holds the store's write lock: its batch
        # waits in its hands, and it is killed there.
        with closing(sqlite3.connect(server.services.store.path, isolation_level=None)) as lock:
            lock.execute("begin immediate")
            doomed = client.post("/evaluate/credito_b2b", json={"input": b2b_order(fresh_document("clean"))})
            assert doomed.status_code == 200  # the answer never waits for its shadow
            until(lambda: worker.sent >= 1)
            os.kill(first, signal.SIGKILL)
            until(lambda: worker.process.pid != first)
            lock.execute("rollback")
        until(lambda: worker.backlog == 0)
        failed = metric(scrape(client), "regua_shadow_jobs_failed_total", experiment="sombra")
        assert failed == 1
        until(lambda: worker.process.ready)  # another child
        assert worker.process.pid not in (None, first) and worker.process.starts == 2
        later = client.post("/evaluate/credito_b2b", json={"input": b2b_order(fresh_document("clean"))}).json()
        assert worker.wait_idle(10)
        after = scrape(client)
        record = client.get(f"/decisions/{later['decision_id']}").json()
    assert [s["arm"] for s in record["experiment"]["shadows"]] == ["folgada"]
    assert metric(after, "regua_shadow_jobs_failed_total", experiment="sombra") == 1
    assert metric(after, "regua_shadow_jobs_completed_total", experiment="sombra") >= 1
    rows = server.services.evaluator.experiments.store.decisions("sombra")
    # the doomed decision keeps its arm (recorded by the server); its shadow died with the child
    assert [(r["arm"], r["shadow"]) for r in rows if r["decision_id"] == doomed.json()["decision_id"]] == \
        [("champion", 0)]


def test_with_the_setting_off_shadows_run_on_the_worker_thread(tmp_path):
    settings = sandbox_settings(tmp_path, server={"shadow_process": False})
    with ThreadedServer(settings, today=lambda: TODAY) as server, server.client() as client:
        worker = server.services.evaluator.experiments.worker
        assert worker.process is None
        start_shadow(client)
        answer = client.post("/evaluate/credito_b2b", json={"input": b2b_order(fresh_document("clean"))}).json()
        assert worker.wait_idle(10)
        record = client.get(f"/decisions/{answer['decision_id']}").json()
    assert [s["arm"] for s in record["experiment"]["shadows"]] == ["folgada"]
    assert worker.sent == 0


def test_the_child_writes_the_deciding_arm_from_the_answer_as_a_shadow_of_the_same_source_would_be(server):
    # The deciding arm's row is read from the answer's body in the child, a shadow's from its
    # Decision: a shadow that is the champion's own source writes the very same reasons, outputs
    # (as the answer wrote them: money with two decimals, "21 days") and fired rules.
    worker = server.services.evaluator.experiments.worker
    same = B2B.replace('version "2026.11.1"', 'version "2026.12-same"')
    with server.client() as client:
        created = client.post("/experiments", json={"name": "igual", "policy": "credito_b2b",
                                                    "challengers": [{"name": "mesma", "source": same, "share": 0}]})
        assert created.status_code == 201, created.text
        until(lambda: worker.process.ready)
        answers = [client.post("/evaluate/credito_b2b", json={"input": b2b_order(fresh_document(profile),
                                                                                 valor_pedido=amount)}).json()
                   for profile, amount in (("clean", "1000.00"), ("clean", "400000.00"), ("restricted", "5000.00"))]
        assert worker.wait_idle(10)
    assert worker.sent >= 1
    rows = server.services.evaluator.experiments.store.decisions("igual")
    assert len({a["outcome"] for a in answers}) > 1  # not one case three times
    for answer in answers:
        decided, shadow = sorted((r for r in rows if r["decision_id"] == answer["decision_id"]),
                                 key=lambda r: r["shadow"])
        assert (decided["arm"], decided["shadow"], shadow["arm"], shadow["shadow"]) == ("champion", 0, "mesma", 1)
        assert decided["outcome"] == shadow["outcome"] == answer["outcome"]
        assert json.loads(decided["outputs"]) == answer["outputs"]
        assert json.loads(decided["reasons"]) == [r["code"] for r in answer["reasons"] if r["code"]]
        assert json.loads(decided["rules"]) == sorted({r["rule"] for r in answer["reasons"] if r["rule"]})
        for column in ("reasons", "outputs", "rules", "document_hash", "created_at"):
            assert decided[column] == shadow[column], column


def test_a_queued_decision_keeps_no_engine_object_for_the_child(server):
    # With a child process the request path queues strings only: the Decision and the validated
    # input die with the request instead of waiting for the worker in the garbage collector's view.
    worker = server.services.evaluator.experiments.worker
    held = []
    original = worker.submit

    def spy(*args, **kwargs):
        original(*args, **kwargs)
        held.append(worker._jobs[-1] if worker._jobs else None)

    worker.submit = spy
    with server.client() as client:
        start_shadow(client)
        until(lambda: worker.process.ready)
        answer = client.post("/evaluate/credito_b2b", json={"input": b2b_order(fresh_document("clean"))}).json()
        assert worker.wait_idle(10)
        record = client.get(f"/decisions/{answer['decision_id']}").json()
    queued = [job for job in held if job is not None]
    assert queued and all(job[2] is None and job[3] is None for job in queued)
    assert [s["arm"] for s in record["experiment"]["shadows"]] == ["folgada"]


def test_many_observations_at_once_count_as_one_by_one():
    from prometheus_client import CollectorRegistry, Histogram

    from regua.server.metrics import LATENCY_BUCKETS, observe_many

    values = [0.0, 1e-6, 0.0004, 0.001, 0.0011, 0.05, 0.05, 2.5, 1e9]
    registry = CollectorRegistry()
    one = Histogram("one", "one by one", buckets=LATENCY_BUCKETS, registry=registry)
    many = Histogram("many", "at once", buckets=LATENCY_BUCKETS, registry=registry)
    for value in values:
        one.observe(value)
    observe_many(many, values)
    observe_many(many, [])

    def samples(name):
        return [(s.name.removeprefix(name), s.labels, s.value) for s in registry.collect() if s.name == name
                for s in s.samples if not s.name.endswith("_created")]

    assert samples("many") == samples("one") and samples("one")
