"""Champion/challenger experiments end to end: the real app over a socket, a real SQLite store.

Arms are checked against the assignment rule itself (sha256 of salt and key into 10,000 buckets,
the experiment's own ranges), shadow decisions against the engine evaluating the shadow policy,
never against numbers copied from a run.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from server_harness import LOOSE, STRICT, ThreadedServer, b2b_order, fresh_document, sandbox_settings

from regua.dsl.values import normalize_cnpj
from regua.server.experiment_store import BUCKETS, initial_buckets, rebalance, size
from regua.server.experiments import bucket

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 22)


# ---- buckets -------------------------------------------------------------------------------------

@st.composite
def share_changes(draw):
    arms = draw(st.integers(2, 5))

    def split():
        cuts = sorted(draw(st.lists(st.integers(0, BUCKETS), min_size=arms - 1, max_size=arms - 1)))
        return [b - a for a, b in zip([0] + cuts, cuts + [BUCKETS])]

    return split(), split()


@settings(max_examples=200, deadline=None)
@given(share_changes())
def test_changing_shares_moves_only_the_buckets_it_must(case):
    before, after = case
    old = initial_buckets(before)
    new = rebalance(old, after)
    assert [size(r) for r in new] == after
    owner_before = {b: i for i, ranges in enumerate(old) for s, e in ranges for b in range(s, e)}
    owner_after = {b: i for i, ranges in enumerate(new) for s, e in ranges for b in range(s, e)}
    assert len(owner_after) == BUCKETS  # every bucket has exactly one arm
    moved = sum(owner_before[b] != owner_after[b] for b in range(BUCKETS))
    assert moved == sum(abs(a - b) for a, b in zip(before, after)) // 2  # the minimum


def test_ninety_ten_to_eighty_twenty_moves_the_tenth_next_to_the_boundary():
    assert rebalance(initial_buckets([9000, 1000]), [8000, 2000]) == [[[0, 8000]], [[8000, 10000]]]


# ---- the server ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, module_backend):
    """One server per store backend (module_backend: a SQLite file, then PostgreSQL)."""
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("exp"), store=module_backend),
                        today=lambda: TODAY) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def evaluate(client, order: dict) -> dict:
    response = client.post("/evaluate/credito_b2b", json={"input": order})
    assert response.status_code == 200, response.text
    return response.json()


def arm_of(experiment: dict, document: str) -> str:
    b = bucket(experiment["salt"], normalize_cnpj(document))
    return next(a["arm"] for a in experiment["arms"] for s, e in a["buckets"] if s <= b < e)


def rows(server, name: str) -> list[dict]:
    server.services.evaluator.experiments.worker.wait_idle()
    server.services.decision_log.wait_flushed()  # the decisions themselves, for the tests that read them
    return server.services.evaluator.experiments.store.decisions(name)


def test_bad_requests_change_nothing(server, client):
    def count():
        db = server.services.store.db
        return (db.execute("select count(*) from experiments").fetchone()[0],
                db.execute("select count(*) from policy_versions").fetchone()[0])

    before = count()
    other_inputs = STRICT.replace("  ciclos_sem_atraso: int = 0\n", "  ciclos_sem_atraso: int = 0\n  canal: text = \"loja\"\n")
    cases = [
        ({"challengers": [{"name": "b", "source": STRICT, "share": 30}], "champion_share": 60}, 400, "INVALID_SHARES"),
        ({"challengers": [{"name": "b", "source": other_inputs, "share": 10}]}, 400, "CHALLENGER_INPUTS"),
        ({"challengers": [{"name": "b", "source": STRICT.replace("score <= 500", "scor <= 500"), "share": 10}]},
         422, "CHALLENGER_REJECTED"),
        ({"challengers": [{"name": "b", "revision": 999, "share": 10}]}, 400, "UNKNOWN_REVISION"),
        ({"challengers": [{"name": "b", "source": STRICT, "share": 10}], "key": "cpf"}, 400, "INVALID_KEY"),
        ({"challengers": [{"name": "b", "source": STRICT, "share": 10}], "policy": "nenhuma"}, 404, "UNKNOWN_POLICY"),
        ({"challengers": [{"name": "b", "source": STRICT, "share": 10}, {"name": "b", "source": LOOSE}]}, 400,
         "DUPLICATE_ARM"),
        ({"challengers": [{"name": "b", "source": STRICT, "share": 10.123}]}, 400, "INVALID_SHARES"),
        ({"challengers": [{"name": "b", "source": STRICT, "share": 150}]}, 400, "INVALID_SHARES"),
        ({"challengers": [{"name": "b", "source": STRICT, "share": -5}]}, 400, "INVALID_SHARES"),
        ({"challengers": [{"name": "b", "source": STRICT, "share": 10}], "champion_share": 120}, 400, "INVALID_SHARES"),
        ({"challengers": [], "policy": "credito_b2b"}, 400, "INVALID_REQUEST"),
    ]
    for extra, status, code in cases:
        body = {"name": "ruim", "policy": "credito_b2b", **extra}
        response = client.post("/experiments", json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), (extra, response.text)
    assert count() == before
    assert client.get("/experiments").json()["items"] == []


def test_experiment_lifecycle(server, client):
    created = client.post("/experiments", json={
        "name": "teto", "policy": "credito_b2b", "salt": "s1",
        "challengers": [{"name": "rigido", "source": STRICT, "share": 50},
                        {"name": "sombra", "source": LOOSE, "share": 0}]})
    assert created.status_code == 201, created.text
    experiment = created.json()
    assert [(a["arm"], a["share"], a["shadow"]) for a in experiment["arms"]] == [
        ("champion", 50, False), ("rigido", 50, False), ("sombra", 0, True)]
    stored = server.services.evaluator.experiments.store.get("teto")
    revisions = {a["arm"]: a["revision"] for a in stored["arms"]}
    active_before = server.services.policies.get("credito_b2b").revision
    assert revisions["rigido"] > active_before  # stored, not activated

    again = client.post("/experiments", json={"name": "outro", "policy": "credito_b2b",
                                              "challengers": [{"name": "b", "source": STRICT, "share": 10}]})
    assert (again.status_code, again.json()["code"]) == (409, "EXPERIMENT_ON_POLICY")

    orders = [b2b_order(fresh_document("clean"), valor_pedido="60000.00", ciclos_sem_atraso=0) for _ in range(30)]
    decisions = [evaluate(client, order) for order in orders]
    recorded = rows(server, "teto")
    decided = {r["decision_id"]: r for r in recorded if not r["shadow"]}
    shadows = {r["decision_id"]: r for r in recorded if r["shadow"]}
    assert set(decided) == set(shadows) == {d["decision_id"] for d in decisions}
    from regua.engine import compile_policy

    loose = compile_policy(LOOSE, "loose.regua")
    for order, decision in zip(orders, decisions):
        arm = arm_of(stored, order["cnpj"])
        row = decided[decision["decision_id"]]
        assert row["arm"] == arm and row["outcome"] == decision["outcome"]
        assert decision["policy"]["revision"] == (revisions["rigido"] if arm == "rigido" else active_before)
        assert decision["policy"]["version"] == ("2026.12-strict" if arm == "rigido" else "2026.11.1")
        # the shadow saw the same bureau answer: one lookup in the decision, replayed for the shadow
        assert [c["connector"] for c in decision["connector_calls"]].count("bureau.serasa") == 1
        answer = server.services.store.decision(decision["decision_id"])
        from regua.engine.recorded import RecordedConnectors

        replay = RecordedConnectors(["bureau.serasa", "portfolio.customer"])
        replay.load(answer["connector_answers"])
        expected = loose.evaluate(order, connectors=replay, as_of=TODAY)
        assert shadows[decision["decision_id"]]["outcome"] == expected.outcome
    assert {r["arm"] for r in decided.values()} == {"champion", "rigido"}

    # shares: only the customers the new split must move change arm
    changed = client.put("/experiments/teto/shares", json={"shares": {"champion": 80, "rigido": 20}})
    assert changed.status_code == 200, changed.text
    after = server.services.evaluator.experiments.store.get("teto")
    moved = [o for o in orders if arm_of(stored, o["cnpj"]) != arm_of(after, o["cnpj"])]
    assert all(arm_of(stored, o["cnpj"]) == "rigido" and arm_of(after, o["cnpj"]) == "champion" for o in moved)
    for shares in ({"champion": 70}, {"champion": 101, "rigido": -1}, {"champion": 80.001, "rigido": 19.999}):
        bad = client.put("/experiments/teto/shares", json={"shares": shares})
        assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_SHARES"), shares
    assert server.services.evaluator.experiments.store.get("teto")["arms"] == after["arms"]

    # report
    report = client.get("/experiments/teto/report").json()
    by_arm = {a["arm"]: a for a in report["arms"]}
    assert by_arm["champion"]["decisions"] + by_arm["rigido"]["decisions"] == 30 == report["decisions"]
    assert by_arm["sombra"]["decisions"] == 30 and by_arm["sombra"]["shadow"]
    matrix = by_arm["sombra"]["disagreement"]["matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == 30
    for arm in ("champion", "rigido"):
        stats = by_arm[arm]
        assert sum(o["count"] for o in stats["outcomes"].values()) == stats["decisions"]
        for outcome in stats["outcomes"].values():
            if outcome["ci"]:
                assert outcome["ci"][0] <= outcome["rate"] <= outcome["ci"][1]
    assert report["limit_output"] == "limite"

    # pause: everyone meets the champion and nothing is recorded
    assert client.post("/experiments/teto/pause").json()["status"] == "paused"
    paused = evaluate(client, orders[0])
    assert paused["policy"]["revision"] == active_before
    assert paused["decision_id"] not in {r["decision_id"] for r in rows(server, "teto")}
    assert client.post("/experiments/teto/pause").json()["code"] == "EXPERIMENT_STATE"
    assert client.post("/experiments/teto/resume").json()["status"] == "running"

    # promote: the challenger becomes the active revision and the experiment ends, atomically
    wrong = client.post("/experiments/teto/promote", json={"arm": "champion"})
    assert (wrong.status_code, wrong.json()["code"]) == (409, "NOT_A_CHALLENGER")
    promoted = client.post("/experiments/teto/promote", json={"arm": "rigido"})
    assert promoted.status_code == 200 and promoted.json()["status"] == "promoted"
    assert server.services.policies.get("credito_b2b").revision == revisions["rigido"]
    assert evaluate(client, orders[0])["policy"]["version"] == "2026.12-strict"
    assert client.post("/experiments/teto/stop").json()["code"] == "EXPERIMENT_FINISHED"
    audit = client.get("/experiments/teto").json()["audit"]
    assert [a["action"] for a in audit] == ["create", "shares", "pause", "resume", "promote"]
    assert all(a["by"] == "sandbox" for a in audit)
    assert json.dumps(audit).count("rigido") >= 2


def test_experiments_need_their_scope(server):
    with server.client(headers={"Authorization": "Bearer nobody"}) as anonymous:
        assert anonymous.get("/experiments").status_code == 401


def test_command_line_manages_the_same_experiments(server, client, tmp_path):
    import subprocess
    import sys
    import time

    from server_harness import b2c_order

    regua = Path(sys.executable).with_name("regua")
    db = server.services.settings.store.location
    b2c = (ROOT / "policies" / "credito_b2c.regua").read_text(encoding="utf-8")
    strict = tmp_path / "b2c_strict.regua"
    strict.write_text(b2c.replace('version "2026.11.1"', 'version "2026.12"').replace("when score <= 300",
                                                                                     "when score <= 450"))

    def run(*args):
        import os

        return subprocess.run([str(regua), "experiments", *args, "--db", db], capture_output=True, text=True,
                              env={**os.environ, "COLUMNS": "200"})

    made = run("create", "crediario", "--policy", "credito_b2c", "--challenger", "novo", str(strict), "10",
               "--shadow", "sombra", str(strict), "--salt", "fixo")
    assert made.returncode == 0, made.stderr
    assert "crediario: credito_b2c [running] champion 90%, novo 10%, sombra 0% (shadow)" in made.stdout
    bad = run("shares", "crediario", "champion=95")
    assert bad.returncode == 2 and "INVALID_SHARES" in bad.stderr
    deadline = time.monotonic() + 10
    while "credito_b2c" not in server.services.evaluator.experiments.running and time.monotonic() < deadline:
        time.sleep(0.1)  # the server polls the store
    for _ in range(12):
        response = client.post("/evaluate/credito_b2c", json={"input": b2c_order(fresh_document("clean", "cpf"))})
        assert response.status_code == 200
    server.services.evaluator.experiments.worker.wait_idle()
    report = run("report", "crediario", "--json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    arms = {a["arm"]: a for a in data["arms"]}
    assert arms["champion"]["decisions"] + arms["novo"]["decisions"] == 12 == arms["sombra"]["decisions"]
    table = run("report", "crediario")
    assert table.returncode == 0 and "sombra (shadow)" in table.stdout and "decided \\ shadow" in table.stdout
    assert run("stop", "crediario").returncode == 0
    show = json.loads(run("show", "crediario").stdout)
    assert [a["action"] for a in show["audit"]] == ["create", "stop"] and show["audit"][0]["by"].startswith("cli")


def test_bad_rates_per_arm_come_from_the_portfolio(server, client):
    from server_harness import b2c_order

    b2c = (ROOT / "policies" / "credito_b2c.regua").read_text(encoding="utf-8")
    created = client.post("/experiments", json={
        "name": "inadimplencia", "policy": "credito_b2c", "salt": "bad",
        "challengers": [{"name": "novo", "share": 50,
                         "source": b2c.replace('version "2026.11.1"', 'version "2026.12-b"')}]})
    assert created.status_code == 201, created.text
    experiment = server.services.evaluator.experiments.store.get("inadimplencia")
    documents = [fresh_document("clean", "cpf") for _ in range(16)]
    for document in documents:
        assert client.post("/evaluate/credito_b2c", json={"input": b2c_order(document)}).status_code == 200
    # Half the customers paid their receivable, half still owe it 90 days after the due date.
    customers = [{"id": f"c{i}", "document": d, "name": f"Cliente {i}", "uf": "SP", "email": f"c{i}@example.com",
                  "channels": ["email"]} for i, d in enumerate(documents)]
    receivables = [{"id": f"t{i}", "customer_id": f"c{i}", "amount": "100.00", "issue_date": "2026-07-01",
                    "due_date": "2026-08-01"} for i in range(16)]
    payments = [{"id": f"p{i}", "receivable_id": f"t{i}", "amount": "100.00", "paid_on": "2026-08-01"}
                for i in range(0, 16, 2)]
    for kind, records in (("customers", customers), ("receivables", receivables), ("payments", payments)):
        response = client.post(f"/portfolio/{kind}", json=records)
        assert response.status_code == 200, response.text
    report = client.get("/experiments/inadimplencia/report", params={"bad_days": 60}).json()
    expected: dict[str, list[int]] = {}
    for i, document in enumerate(documents):
        b = bucket(experiment["salt"], document.replace(".", "").replace("-", ""))
        arm = next(a["arm"] for a in experiment["arms"] for s, e in a["buckets"] if s <= b < e)
        counts = expected.setdefault(arm, [0, 0])
        counts[0] += 1
        counts[1] += i % 2  # odd customers never paid
    for arm in report["arms"]:
        customers_known, bad = expected.get(arm["arm"], [0, 0])
        assert arm["bad_rate"]["customers"] == customers_known and arm["bad_rate"]["bad"] == bad, arm
    assert client.post("/experiments/inadimplencia/stop").status_code == 200
