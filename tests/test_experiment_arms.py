"""Which arm decided, as the answer, GET /decisions/{id} and the OpenAPI document say it; and the
shadow queue's metrics when the experiment worker falls behind.

The real app over a socket on a real SQLite store. The worker is made to fall behind by a real
write lock on the store's file (another connection holds BEGIN IMMEDIATE), so the shadow jobs pile
up exactly as they would behind a slow disk.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing

import pytest
from server_harness import LOOSE, STRICT, ThreadedServer, b2b_order, fresh_document, metric, sandbox_settings, scrape

from regua.dsl.values import normalize_cnpj
from regua.engine import compile_policy
from regua.engine.recorded import RecordedConnectors
from regua.server.experiments import bucket

TODAY = dt.date(2026, 11, 22)


@pytest.fixture()
def server(tmp_path):
    with ThreadedServer(sandbox_settings(tmp_path), today=lambda: TODAY) as srv:
        yield srv


def start(client, **extra) -> dict:
    created = client.post("/experiments", json={
        "name": "teto", "policy": "credito_b2b", "salt": "s1",
        "challengers": [{"name": "rigido", "source": STRICT, "share": 50},
                        {"name": "sombra", "source": LOOSE, "share": 0}], **extra})
    assert created.status_code == 201, created.text
    return created.json()


def arm_of(experiment: dict, document: str) -> str:
    b = bucket(experiment["salt"], normalize_cnpj(document))
    return next(a["arm"] for a in experiment["arms"] for s, e in a["buckets"] if s <= b < e)


def test_the_answer_and_the_decision_record_name_the_arm_and_its_shadows(server):
    with server.client() as client:
        before = client.post("/evaluate/credito_b2b", json={"input": b2b_order(fresh_document("clean"))}).json()
        assert "experiment" not in before  # no experiment: the answer is as it always was
        assert client.get(f"/decisions/{before['decision_id']}").json()["experiment"] is None

        start(client)
        experiment = server.services.evaluator.experiments.store.get("teto")
        loose = compile_policy(LOOSE, "loose.regua")
        roles = set()
        for _ in range(12):
            order = b2b_order(fresh_document("clean"), valor_pedido="60000.00")
            answer = client.post("/evaluate/credito_b2b", json={"input": order}).json()
            arm = arm_of(experiment, order["cnpj"])
            role = "champion" if arm == "champion" else "challenger"
            roles.add(role)
            assert answer["experiment"] == {"experiment": "teto", "arm": arm, "role": role}

            record = client.get(f"/decisions/{answer['decision_id']}").json()
            assert record["experiment"]["experiment"] == "teto"
            assert (record["experiment"]["arm"], record["experiment"]["role"]) == (arm, role)
            # the shadow's decision, as the engine makes it on the recorded answers
            stored = server.services.store.decision(answer["decision_id"])
            replay = RecordedConnectors(["bureau.serasa", "portfolio.customer"])
            replay.load(stored["connector_answers"])
            expected = loose.evaluate(order, connectors=replay, as_of=TODAY)
            [shadow] = record["experiment"]["shadows"]
            assert shadow["arm"] == "sombra" and shadow["outcome"] == expected.outcome
            assert shadow["reason_codes"] == expected.reason_codes
            assert shadow["agrees"] == (expected.outcome == answer["outcome"])
        assert roles == {"champion", "challenger"}

        # a dry run says which arm would decide, and records nothing
        dry = client.post("/evaluate/credito_b2b", json={"input": b2b_order(fresh_document("clean")),
                                                         "dry_run": True}).json()
        assert dry["decision_id"] is None and dry["experiment"]["experiment"] == "teto"


def test_the_openapi_document_types_the_arm(server):
    with server.client() as client:
        components = client.get("/schema/openapi.json").json()["components"]["schemas"]
    arm = components["ExperimentArmRef"]
    assert set(arm["required"]) == {"experiment", "arm", "role"}
    assert arm["properties"]["role"]["enum"] == ["champion", "challenger"]
    record = components["DecisionRecord"]["properties"]["experiment"]
    assert {"$ref": "#/components/schemas/DecisionExperiment"} in record["oneOf"]
    shadow = components["ShadowDecision"]
    assert set(shadow["required"]) >= {"arm", "outcome", "reason_codes", "agrees"}
    answer = components["EvaluateResponse"]
    assert "experiment" not in answer["required"] and "dry_run" in answer["required"]


def test_a_full_shadow_queue_drops_shadows_counts_them_and_keeps_every_arm(server):
    worker = server.services.evaluator.experiments.worker
    worker.max_backlog = 3
    with server.client() as client:
        start(client)
        worker.wait_idle()
        ids = []
        # Another connection holds the store's write lock: the worker cannot record, jobs pile up.
        with closing(sqlite3.connect(server.services.store.path, isolation_level=None)) as lock:
            lock.execute("begin immediate")
            for _ in range(12):
                answer = client.post("/evaluate/credito_b2b", json={"input": b2b_order(fresh_document("clean"))})
                ids.append(answer.json()["decision_id"])
            during = scrape(client)
            lock.execute("rollback")
        assert worker.wait_idle(10)
        after = scrape(client)

    dropped = metric(after, "regua_shadow_jobs_dropped_total", experiment="teto")
    queued = metric(after, "regua_shadow_jobs_queued_total", experiment="teto")
    completed = metric(after, "regua_shadow_jobs_completed_total", experiment="teto")
    failed = metric(after, "regua_shadow_jobs_failed_total", experiment="teto")
    assert metric(during, "regua_shadow_jobs_dropped_total", experiment="teto") == dropped >= 12 - 2 * 3
    assert metric(during, "regua_shadow_jobs_completed_total", experiment="teto") == 0
    assert queued + dropped == 12 and completed + failed == queued and failed == 0
    assert metric(after, "regua_shadow_backlog") == 0
    assert metric(after, "regua_shadow_evaluation_seconds_count", experiment="teto", arm="sombra") == completed
    assert metric(after, "regua_shadow_lag_seconds_count", experiment="teto") == completed
    # every decision keeps its arm; only the dropped ones lack a shadow decision
    rows = server.services.evaluator.experiments.store.decisions("teto")
    assert sorted(r["decision_id"] for r in rows if not r["shadow"]) == sorted(ids)
    assert sum(1 for r in rows if r["shadow"]) == completed


def test_every_scope_can_be_given_to_a_key(tmp_path):
    from regua.server.auth import hash_key
    from regua.server.scopes import SCOPES

    settings = sandbox_settings(tmp_path, auth={"keys": [{"name": "tudo", "hash": hash_key("rk_all_0123456789abcdef"),
                                                          "scopes": list(SCOPES)}]})
    assert list(settings.auth.keys[0].scopes) == list(SCOPES)
