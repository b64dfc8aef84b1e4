"""Sampled shadow challengers (`sample` < 1) and the report's disagreement rules, end to end: the
real app over a socket on a real SQLite store.

Which decisions a sampled shadow sees is checked against the sampling rule itself (sha256 of the
experiment's salt + ":sample" and the decision id into 10,000 buckets, below sample × 10,000), and
the disagreement rules against what the LOOSE challenger changes (the order gate at 150% of the
limit), never against numbers copied from a run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from server_harness import B2B, LOOSE, ThreadedServer, b2b_order, fresh_document, sandbox_settings

from regua.server.experiment_store import BUCKETS
from regua.server.experiments import bucket

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 22)
REGUA = Path(sys.executable).with_name("regua")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("sample")), today=lambda: TODAY) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def state(server) -> tuple[int, int, list]:
    """(experiments, audit entries, every experiment's arms): what a rejected change must leave as it was."""
    db = server.services.store.db
    store = server.services.evaluator.experiments.store
    return (db.execute("select count(*) from experiments").fetchone()[0],
            db.execute("select count(*) from experiment_audit").fetchone()[0],
            [store.get(n)["arms"] for n in store.names()])


def test_bad_samples_are_invalid_sample_and_change_nothing(server, client):
    before = state(server)
    b2c = (ROOT / "policies" / "credito_b2c.regua").read_text(encoding="utf-8")
    shadow = b2c.replace('version "2026.11.1"', 'version "2026.12-s"')
    for sample in (-0.5, 0, 1.5, 1e300):
        response = client.post("/experiments", json={
            "name": "amostra_ruim", "policy": "credito_b2c",
            "challengers": [{"name": "sombra", "source": shadow, "share": 0, "sample": sample}]})
        body = response.json()
        assert (response.status_code, body["code"]) == (400, "INVALID_SAMPLE"), (sample, response.text)
        assert [e["location"] for e in body["errors"]] == ["challengers[0].sample"]
    # a sample given to a challenger that takes traffic is checked too (it used to be a schema error)
    response = client.post("/experiments", json={
        "name": "amostra_ruim", "policy": "credito_b2c",
        "challengers": [{"name": "novo", "source": shadow, "share": 10, "sample": 2}]})
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_SAMPLE"), response.text
    # not a number at all: the request does not match its schema, and says where
    for sample in ("metade", True, [0.5]):
        response = client.post("/experiments", json={
            "name": "amostra_ruim", "policy": "credito_b2c",
            "challengers": [{"name": "sombra", "source": shadow, "share": 0, "sample": sample}]})
        body = response.json()
        assert (response.status_code, body["code"]) == (400, "INVALID_REQUEST"), (sample, response.text)
        assert [(e["code"], e["location"]) for e in body["errors"]] == [("TYPE", "challengers[0].sample")]
    assert state(server) == before

    # changing a sample later: the same code, nothing changed
    created = client.post("/experiments", json={
        "name": "amostra_b2c", "policy": "credito_b2c", "challengers": [{"name": "sombra", "source": shadow}]})
    assert created.status_code == 201, created.text
    assert [a["sample"] for a in created.json()["arms"]] == [None, 1.0]  # a shadow sees everything by default
    before = state(server)
    for sample in (0, -1, 1.01):
        response = client.put("/experiments/amostra_b2c/shares", json={"samples": {"sombra": sample}})
        assert (response.status_code, response.json()["code"]) == (400, "INVALID_SAMPLE"), (sample, response.text)
    response = client.put("/experiments/amostra_b2c/shares", json={"samples": {"sombra": "metade"}})
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST")
    assert state(server) == before
    changed = client.put("/experiments/amostra_b2c/shares", json={"samples": {"sombra": 0.25}})
    assert changed.status_code == 200, changed.text
    assert [a["sample"] for a in changed.json()["arms"]] == [None, 0.25]
    assert client.get("/experiments/amostra_b2c").json()["audit"][-1]["action"] == "shares"

    # the command line refuses them before touching the store, with a clear error
    file = server.services.settings.store.path + ".shadow.regua"
    Path(file).write_text(shadow, encoding="utf-8")
    before = state(server)
    for sample in ("0", "-0.5", "1.5", "metade"):
        made = subprocess.run([str(REGUA), "experiments", "create", "amostra_cli", "--policy", "credito_b2c",
                               "--shadow", "sombra", file, "--sample", sample,
                               "--db", server.services.settings.store.path],
                              capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
        assert made.returncode == 2, (sample, made.stdout, made.stderr)
        assert "Invalid value for '--sample'" in made.stderr and sample in made.stderr, made.stderr
    assert state(server) == before
    assert client.post("/experiments/amostra_b2c/stop").status_code == 200


def test_a_sampled_shadow_sees_about_half_the_decisions_chosen_by_decision_id(server, client):
    salt = "amostra"
    created = client.post("/experiments", json={
        "name": "amostra", "policy": "credito_b2b", "salt": salt,
        "challengers": [{"name": "folgada", "source": LOOSE, "share": 0, "sample": 0.5}]})
    assert created.status_code == 201, created.text
    assert [(a["arm"], a["shadow"], a["sample"]) for a in created.json()["arms"]] == [
        ("champion", False, None), ("folgada", True, 0.5)]

    # Every other order is above the champion's limit (saldo 50k + 60k > 80k: review) but within
    # LOOSE's 150% of it (120k: approve); the others are small and approved by both.
    answers = []
    for i in range(200):
        order = b2b_order(fresh_document("clean"), valor_pedido="60000.00" if i % 2 else "1000.00",
                          ciclos_sem_atraso=0)
        response = client.post("/evaluate/credito_b2b", json={"input": order})
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert {(a["outcome"], tuple(r["code"] for r in a["reasons"])) for a in answers[1::2]} == {
        ("review", ("ACIMA_DO_LIMITE",))}
    assert {a["outcome"] for a in answers[0::2]} == {"approve"}

    server.services.evaluator.experiments.worker.wait_idle(30)
    rows = server.services.evaluator.experiments.store.decisions("amostra")
    ids = [a["decision_id"] for a in answers]
    assert sorted(r["decision_id"] for r in rows if not r["shadow"]) == sorted(ids)  # every arm is recorded
    shadowed = {r["decision_id"] for r in rows if r["shadow"]}
    assert all(r["arm"] == "folgada" for r in rows if r["shadow"]) and len(shadowed) == sum(r["shadow"] for r in rows)
    assert 60 <= len(shadowed) <= 140  # about half (binomial: 100 ± 7)
    # Reproducible: the decision id alone chooses, by the experiment's salt; recomputed here.
    assert shadowed == {i for i in ids if bucket(salt + ":sample", i) < 0.5 * BUCKETS}
    unsampled = next(i for i in ids if i not in shadowed)
    sampled = next(i for i in ids if i in shadowed)
    assert client.get(f"/decisions/{unsampled}").json()["experiment"]["shadows"] == []
    assert [s["arm"] for s in client.get(f"/decisions/{sampled}").json()["experiment"]["shadows"]] == ["folgada"]

    # The report: the shadow's decisions are the sampled ones; its disagreements come from the
    # order gate only, which fired in the champion's decision and not in the shadow's.
    report = client.get("/experiments/amostra/report").json()
    by_arm = {a["arm"]: a for a in report["arms"]}
    assert by_arm["champion"]["decisions"] == 200 == report["decisions"]
    folgada = by_arm["folgada"]
    assert folgada["shadow"] and folgada["sample"] == 0.5 and folgada["decisions"] == len(shadowed)
    high = {a["decision_id"] for a in answers[1::2]} & shadowed
    low = {a["decision_id"] for a in answers[0::2]} & shadowed
    assert high and low
    disagreement = folgada["disagreement"]
    assert disagreement["paired"] == len(shadowed) and disagreement["disagreements"] == len(high)
    assert disagreement["matrix"]["review"]["approve"] == len(high)
    assert disagreement["matrix"]["approve"]["approve"] == len(low)
    assert disagreement["rules"] == [{"rule": "acima_do_limite", "fired_only_in": "decided", "count": len(high)}]
    assert client.post("/experiments/amostra/stop").status_code == 200


def test_regua_explain_an_input_file_with_counterfactuals(tmp_path):
    """`regua explain POLICY --input FILE --counterfactual`: an order above the limit is reviewed and
    the alternatives printed each reach approval when the policy evaluates them."""
    policy = tmp_path / "credito_b2b.regua"
    policy.write_text(B2B, encoding="utf-8")
    # Score 850, 4 clean cycles: limit min(40k × 3, 15% of 2M) = 120k; saldo 50k + 400k is above it.
    order = b2b_order("11.222.333/0001-81", valor_pedido="400000.00")
    fixtures = {"bureau.serasa": {"score": {"value": 850}, "registration_status": "active"},
                "portfolio.customer": {"known": False}}

    def explain(data: dict, answers: dict, *flags: str) -> dict:
        (tmp_path / "input.json").write_text(json.dumps(data), encoding="utf-8")
        (tmp_path / "fixtures.json").write_text(json.dumps(answers), encoding="utf-8")
        result = subprocess.run([str(REGUA), "explain", str(policy), "--input", str(tmp_path / "input.json"),
                                 "--fixtures", str(tmp_path / "fixtures.json"), "--as-of", TODAY.isoformat(),
                                 *flags], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    printed = explain(order, fixtures, "--counterfactual")
    assert printed["policy"]["name"] == "credito_b2b" and printed["outcome"] == "review"
    assert [r["code"] for r in printed["reasons"]] == ["ACIMA_DO_LIMITE"]
    found = printed["counterfactuals"]
    assert found["target"] == "approve" and found["status"] == "found" and found["alternatives"]
    # fewest changes first: the order itself, down to what the limit leaves (120k - 50k), to the cent
    first = found["alternatives"][0]
    assert [(c["fact"], c["from"], c["to"], c["direction"]) for c in first["changes"]] == [
        ("valor_pedido", "400000.00", "70000.00", "down")]
    assert printed["sentence"].startswith("Sua solicitação seria aprovada com ") and "70.000,00" in printed["sentence"]
    actionable = {"valor_pedido", "saldo_em_aberto", "ciclos_sem_atraso", "bureau.serasa.score.value"}
    for alternative in found["alternatives"]:
        assert alternative["outcome"] == "approve"
        changed, answers = dict(order), json.loads(json.dumps(fixtures))
        for change in alternative["changes"]:
            assert change["fact"] in actionable
            if change["fact"] == "bureau.serasa.score.value":
                answers["bureau.serasa"]["score"]["value"] = change["to"]
            else:
                changed[change["fact"]] = change["to"]
        assert explain(changed, answers)["outcome"] == "approve", alternative
    # one cent more than the alternative allows is still reviewed: the change is the smallest
    assert explain({**order, "valor_pedido": "70000.01"}, fixtures)["outcome"] == "review"
    assert "11.222.333/0001-81" not in json.dumps(found)
