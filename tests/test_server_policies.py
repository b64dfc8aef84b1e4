"""Policies on a running server: publish, rollback, atomic swaps, hot reload, restarts, several workers.

Real servers over sockets (ThreadedServer, or `regua serve` as a subprocess), real stores (every
test runs on a SQLite file, then on a PostgreSQL database: the `backend` fixture), real policy files
edited on disk. The bundled credito_b2b is version 1; version 2 changes one
table so that the example order (saldo 50k + pedido 30k, ticket 40k) flips from approve to review.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from server_harness import ROOT, SANDBOX_HEADERS, ProcessServer, ThreadedServer, free_port, sandbox_settings

ORDER = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
V1 = (ROOT / "policies" / "credito_b2b.regua").read_text(encoding="utf-8")
# Version 2: the purchase cycles table gives 1 cycle instead of 3, so the limit drops from 120k to 40k.
V2 = V1.replace('version "2026.11.1"', 'version "2026.12.1"').replace(">= 3 -> 3", ">= 3 -> 1")
SYNTAX_ERROR = V2.replace("rule protesto\n", "rule protesto\n  when (\n")
TYPE_ERROR = V2.replace("when protestos > 0", 'when protestos > "x"')
# What each version decides on ORDER: (version, outcome, reason codes, limite).
BEHAVIOUR = {"2026.11.1": ("approve", ["DENTRO_DO_LIMITE"], "120000.00"),
             "2026.12.1": ("review", ["ACIMA_DO_LIMITE"], "40000.00")}
LOCATION = re.compile(r"^.+:\d+:\d+$")  # file:line:col
pytestmark = pytest.mark.usefixtures("backend")


def test_the_versions_differ_as_the_tests_assume():
    assert V2 != V1 and SYNTAX_ERROR != V2 and TYPE_ERROR != V2


def decide(client: httpx.Client, policy: str = "credito_b2b") -> tuple:
    """(revision, version, outcome, reason codes, limite) of one evaluation of ORDER."""
    response = client.post(f"/evaluate/{policy}", json={"input": ORDER})
    assert response.status_code == 200, response.text
    body = response.json()
    return (body["policy"]["revision"], body["policy"]["version"], body["outcome"],
            [r["code"] for r in body["reasons"]], body["outputs"]["limite"])


def behaves_as(decision: tuple, version: str) -> bool:
    return decision[1] == version and tuple(decision[2:]) == BEHAVIOUR[version]


def eventually(check, timeout: float = 5.0, interval: float = 0.05):
    """Poll `check` until it returns something truthy; fail with its last answer after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"not within {timeout}s: {value!r}"
            return value
        time.sleep(interval)


def restarted(settings):
    """The same store and policies folder, on a new port: a restart."""
    return msgspec.structs.replace(settings, server=msgspec.structs.replace(settings.server, port=free_port()))


# ---- publishing over HTTP ----
def test_publish_activates_a_new_revision_and_identical_source_is_not_a_new_one(tmp_path):
    with ThreadedServer(sandbox_settings(tmp_path)) as server, server.client() as client:
        assert behaves_as(decide(client), "2026.11.1") and decide(client)[0] == 1

        response = client.post("/policies", json={"source": V2})
        assert response.status_code == 201, response.text
        assert response.json() == {"name": "credito_b2b", "version": "2026.12.1", "revision": 2, "created": True}
        decision = decide(client)
        assert decision[0] == 2 and behaves_as(decision, "2026.12.1")

        same = client.post("/policies", json={"source": V2})
        again = same.json()
        assert same.status_code == 200 and again["revision"] == 2 and again["created"] is False
        put = client.put("/policies/credito_b2b", json={"source": V2})
        assert put.status_code == 200 and put.json()["created"] is False and put.json()["revision"] == 2
        assert [v["revision"] for v in client.get("/policies/credito_b2b").json()["versions"]] == [1, 2]

        v3 = V1.replace('version "2026.11.1"', 'version "2026.11.3"')
        put = client.put("/policies/credito_b2b", json={"source": v3})
        assert put.status_code == 200 and put.json() == {"name": "credito_b2b", "version": "2026.11.3",
                                                        "revision": 3, "created": True}
        decision = decide(client)
        assert decision[:2] == (3, "2026.11.3") and tuple(decision[2:]) == BEHAVIOUR["2026.11.1"]


@pytest.mark.parametrize("source, code", [(SYNTAX_ERROR, "E001"), (TYPE_ERROR, "E201")], ids=["syntax", "type"])
def test_a_rejected_publish_changes_nothing(tmp_path, source, code):
    with ThreadedServer(sandbox_settings(tmp_path)) as server, server.client() as client:
        client.post("/policies", json={"source": V2}).raise_for_status()
        before = decide(client)
        for response in (client.post("/policies", json={"source": source}),
                         client.put("/policies/credito_b2b", json={"source": source})):
            assert response.status_code == 422, response.text
            body = response.json()
            assert body["code"] == "POLICY_REJECTED"
            assert body["errors"] and body["errors"][0]["code"] == code
            for error in body["errors"]:
                assert error["code"] and error["message"] and LOCATION.match(error["location"]), error
        assert decide(client) == before
        versions = client.get("/policies/credito_b2b").json()["versions"]
        assert [v["revision"] for v in versions] == [1, 2]  # nothing half-stored


def test_put_with_another_policy_name_is_rejected(tmp_path):
    with ThreadedServer(sandbox_settings(tmp_path)) as server, server.client() as client:
        response = client.put("/policies/credito_b2c", json={"source": V2})
        assert response.status_code == 422 and response.json()["code"] == "POLICY_NAME_MISMATCH"
        listing = {p["name"]: p for p in client.get("/policies").json()["policies"]}
        assert listing["credito_b2b"]["revision"] == 1 and listing["credito_b2c"]["revision"] == 1
        assert behaves_as(decide(client), "2026.11.1")


# ---- rollback and history ----
def test_rollback_restores_an_earlier_revision_and_the_history_shows_it(tmp_path):
    with ThreadedServer(sandbox_settings(tmp_path)) as server, server.client() as client:
        client.post("/policies", json={"source": V2}).raise_for_status()
        response = client.post("/policies/credito_b2b/rollback", json={"revision": 1})
        assert response.status_code == 200, response.text
        assert response.json()["revision"] == 1 and response.json()["version"] == "2026.11.1"
        decision = decide(client)
        assert decision[0] == 1 and behaves_as(decision, "2026.11.1")

        unknown = client.post("/policies/credito_b2b/rollback", json={"revision": 9})
        assert unknown.status_code == 404 and unknown.json()["code"] == "UNKNOWN_REVISION"
        assert decide(client)[0] == 1

        detail = client.get("/policies/credito_b2b").json()
        assert detail["revision"] == 1 and detail["version"] == "2026.11.1" and detail["source"] == V1
        assert [(v["revision"], v["version"], v["active"]) for v in detail["versions"]] == [
            (1, "2026.11.1", True), (2, "2026.12.1", False)]
        assert detail["versions"][1]["origin"].startswith("api:")
        history = [(a["revision"], a["reason"]) for a in detail["activations"]]
        assert [revision for revision, _ in history] == [1, 2, 1]
        assert "publish" in history[1][1] and "rollback" in history[2][1]
        assert history[0][1]  # the first activation (from the file) says why too
        node_ids = {node["id"] for node in detail["graph"]["nodes"]}
        assert "input:cnpj" in node_ids and detail["graph"].get("edges")


def test_requests_during_publish_and_rollback_see_one_version_or_the_other(tmp_path):
    """While one thread evaluates non-stop, another publishes v2 then rolls back and forth: every
    answer pairs a revision with exactly that revision's behaviour, and none fails."""
    with ThreadedServer(sandbox_settings(tmp_path)) as server:
        answers, failures, done = [], [], threading.Event()

        def hammer():
            with server.client() as client:
                while not done.is_set():
                    try:
                        answers.append(decide(client))
                    except Exception as error:  # noqa: BLE001 — collected and asserted below
                        failures.append(repr(error))

        hammers = [threading.Thread(target=hammer) for _ in range(2)]
        for thread in hammers:
            thread.start()
        try:
            with server.client() as admin:
                time.sleep(0.1)
                assert admin.post("/policies", json={"source": V2}).status_code == 201
                for revision in [1, 2] * 6:
                    time.sleep(0.03)
                    assert admin.post("/policies/credito_b2b/rollback", json={"revision": revision}).status_code == 200
                time.sleep(0.1)
        finally:
            done.set()
            for thread in hammers:
                thread.join(30)
        assert not failures, failures[:3]
        expected = {1: "2026.11.1", 2: "2026.12.1"}
        incoherent = [a for a in answers if a[0] not in expected or not behaves_as(a, expected[a[0]])]
        assert not incoherent, incoherent[:3]
        seen = {a[0] for a in answers}
        assert seen == {1, 2}, f"{len(answers)} answers saw only {seen}"


# ---- hot reload ----
def problems(client: httpx.Client) -> dict:
    return {p["file"]: p["errors"] for p in client.get("/policies").json()["problems"]}


def test_hot_reload_publishes_edits_and_keeps_serving_through_broken_ones(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="regua.policies")
    settings = sandbox_settings(tmp_path)
    path = Path(settings.policies.folder) / "credito_b2b.regua"
    with ThreadedServer(settings) as server, server.client() as client:
        path.write_text(V2, encoding="utf-8")
        decision = eventually(lambda: (d := decide(client))[0] == 2 and d)
        assert behaves_as(decision, "2026.12.1")

        for broken, code in ((SYNTAX_ERROR, "E001"), (TYPE_ERROR, "E201")):
            caplog.clear()
            path.write_text(broken, encoding="utf-8")
            errors = eventually(lambda: (p := problems(client)).get(str(path)) and p[str(path)][0]["code"] == code  # noqa: B023
                                and p[str(path)])
            assert all(LOCATION.match(e["location"]) and e["location"].startswith(str(path)) for e in errors)
            assert decide(client) == decision  # the running version keeps serving
            warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert any(str(path) in w and code in w and "keeps serving" in w for w in warnings), warnings

        path.write_text(V1, encoding="utf-8")  # fixed (back to version 1's text): a new revision
        eventually(lambda: not problems(client))
        decision = eventually(lambda: (d := decide(client))[0] == 3 and d)
        assert behaves_as(decision, "2026.11.1")

        b2c = (ROOT / "policies" / "credito_b2c.regua").read_text(encoding="utf-8")
        (path.parent / "novo.regua").write_text(b2c.replace("policy credito_b2c", "policy credito_novo"),
                                                encoding="utf-8")
        names = eventually(lambda: "credito_novo" in (n := [p["name"] for p in client.get("/policies").json()
                                                            ["policies"]]) and n)
        assert [n for n in names if n.startswith("credito")] == ["credito_b2b", "credito_b2c", "credito_novo"]
        person = {"cpf": "529.982.247-25", "data_nascimento": "1985-04-12", "renda_mensal": "6000.00",
                  "valor_compra": "3000.00", "parcelas": 6}
        response = client.post("/evaluate/credito_novo", json={"input": person})
        assert response.status_code == 200 and response.json()["policy"]["revision"] == 1

        (path.parent / "novo.regua").unlink()  # a removed file: its last version keeps serving
        eventually(lambda: any("novo.regua was removed" in r.getMessage() for r in caplog.records))
        assert client.post("/evaluate/credito_novo", json={"input": person}).status_code == 200


def test_restarts_keep_what_was_published_unless_the_file_changed(tmp_path):
    settings = sandbox_settings(tmp_path)
    path = Path(settings.policies.folder) / "credito_b2b.regua"
    only_http = V1.replace("policy credito_b2b", "policy credito_api")  # a policy with no file at all
    with ThreadedServer(settings) as server, server.client() as client:
        assert client.post("/policies", json={"source": V2}).json()["revision"] == 2
        assert client.post("/policies", json={"source": only_http}).json()["revision"] == 1

    # Unchanged file: the version published over HTTP stays active.
    with ThreadedServer(restarted(settings)) as server, server.client() as client:
        decision = decide(client)
        assert decision[0] == 2 and behaves_as(decision, "2026.12.1")
        assert len(client.get("/policies/credito_b2b").json()["versions"]) == 2
        assert decide(client, "credito_api")[:3] == (1, "2026.11.1", "approve")

    # Changed file: published as a new revision at start.
    v3 = V1.replace('version "2026.11.1"', 'version "2026.11.3"')
    path.write_text(v3, encoding="utf-8")
    with ThreadedServer(restarted(settings)) as server, server.client() as client:
        assert decide(client)[:3] == (3, "2026.11.3", "approve")
        detail = client.get("/policies/credito_b2b").json()
        assert detail["versions"][-1]["origin"] == f"file:{path}" and detail["versions"][-1]["active"]

    # Broken file at start: the stored version serves, the problem is listed.
    path.write_text(SYNTAX_ERROR, encoding="utf-8")
    with ThreadedServer(restarted(settings)) as server, server.client() as client:
        assert decide(client)[:2] == (3, "2026.11.3")
        assert LOCATION.match(problems(client)[str(path)][0]["location"])
        assert client.get("/ready").json()["problems"] == 1


def test_saving_a_file_without_changes_does_not_override_an_http_publish(tmp_path):
    settings = sandbox_settings(tmp_path)
    path = Path(settings.policies.folder) / "credito_b2b.regua"
    with ThreadedServer(settings) as server, server.client() as client:
        client.post("/policies", json={"source": V2}).raise_for_status()
        reloads = server.services.watcher.reloads
        path.write_text(V1, encoding="utf-8")  # same bytes as synced at start (an editor's "save")
        eventually(lambda: server.services.watcher.reloads > reloads)
        assert decide(client)[0] == 2


def test_restart_with_the_same_folder_spelled_differently_keeps_an_http_publish(tmp_path, monkeypatch):
    settings = sandbox_settings(tmp_path)
    with ThreadedServer(settings) as server, server.client() as client:
        client.post("/policies", json={"source": V2}).raise_for_status()
    monkeypatch.chdir(tmp_path)
    relative = msgspec.structs.replace(restarted(settings), policies=msgspec.structs.replace(
        settings.policies, folder="policies"))
    with ThreadedServer(relative) as server, server.client() as client:
        assert decide(client)[0] == 2


# ---- several workers ----
def decisions_by_worker(folder: Path, scratch: Path) -> dict[str, dict[str, float]]:
    """regua_decisions_total by outcome, per worker process (prometheus multiprocess files)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    result: dict[str, dict[str, float]] = {}
    for path in folder.glob("counter_*.db"):
        single = scratch / path.stem
        single.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, single / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(single))
        for metric in registry.collect():
            for sample in metric.samples:
                if sample.name == "regua_decisions_total" and sample.value:
                    result.setdefault(path.stem, {})[sample.labels["outcome"]] = sample.value
    return result


def test_a_version_published_through_one_worker_reaches_every_worker(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    with ProcessServer(tmp_path, "--workers", "2", env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)}) as server:
        def fresh() -> tuple:  # a new connection each time: either worker may take it
            with httpx.Client(base_url=server.url, headers=SANDBOX_HEADERS, timeout=30) as client:
                return decide(client)

        with server.client() as admin:
            assert admin.post("/policies", json={"source": V2}).json()["revision"] == 2
        # Wait on the condition, not on the clock (issue 15 #15): every worker has answered with
        # version 2 at least 3 times. How soon is the sync interval's business, measured by the
        # benchmarks; a loaded CI machine must not turn it into a failure here.
        def both_switched():
            fresh()
            workers = decisions_by_worker(metrics, tmp_path / "scratch")
            return len(workers) == 2 and all(w.get("review", 0) >= 3 for w in workers.values())

        eventually(both_switched, timeout=60, interval=0)
        # Both workers answered with version 2 (review); only version 1 approves this order.
        workers = decisions_by_worker(metrics, tmp_path / "scratch")
        assert len(workers) == 2 and all(w.get("review", 0) >= 3 for w in workers.values()), workers
        assert all(behaves_as(fresh(), "2026.12.1") for _ in range(20))


def test_concurrent_publishes_over_http_all_succeed(tmp_path):
    """20 clients publish valid sources at once: every answer is a success, none a bogus 422 or a 500
    (the parser used to share its indentation state between threads)."""
    sources = [V2.replace('version "2026.12.1"', f'version "2026.12.{i + 2}"') for i in range(20)]
    start = threading.Barrier(len(sources))
    answers: list = [None] * len(sources)

    with ThreadedServer(sandbox_settings(tmp_path)) as server:
        def publish(index: int) -> None:
            with server.client() as client:
                start.wait()
                response = client.put("/policies/credito_b2b", json={"source": sources[index]})
                answers[index] = (response.status_code, response.text[:300])

        threads = [threading.Thread(target=publish, args=(i,)) for i in range(len(sources))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a for a in answers if a is None or a[0] not in (200, 201)] == []
        with server.client() as client:
            revisions = {v["revision"] for v in client.get("/policies/credito_b2b").json()["versions"]}
            assert len(revisions) == 21  # the bundled version and the 20 published ones
            decision = decide(client)
            assert decision[1].startswith("2026.12.") and tuple(decision[2:]) == BEHAVIOUR["2026.12.1"]


def test_a_second_file_declaring_the_same_policy_is_a_problem_and_never_active(tmp_path):
    """Issue 13 item 8: two files with one policy name; the later used to become active silently."""
    settings = sandbox_settings(tmp_path)
    folder = Path(settings.policies.folder)
    first = folder / "credito_b2b.regua"
    copy = folder / "zz_copia.regua"  # sorts after credito_b2b.regua
    copy.write_text(V2, encoding="utf-8")
    policy_line = V2.splitlines().index(next(line for line in V2.splitlines() if line.startswith("policy "))) + 1
    with ThreadedServer(settings) as server, server.client() as client:
        assert behaves_as(decide(client), "2026.11.1")
        (error,) = problems(client)[str(copy.resolve())]
        assert error["code"] == "DUPLICATE_POLICY_NAME" and str(first.resolve()) in error["message"]
        assert LOCATION.match(error["location"]) and error["location"] == f"{copy.resolve()}:{policy_line}:1"
        assert client.get("/ready").json()["problems"] == 1

        # Hot reload: another file, and an edit of the duplicate, change nothing either.
        other = folder / "outro.regua"
        other.write_text(V2.replace('version "2026.12.1"', 'version "2026.12.9"'), encoding="utf-8")
        eventually(lambda: str(other.resolve()) in problems(client))
        copy.write_text(V2.replace('version "2026.12.1"', 'version "2026.12.5"'), encoding="utf-8")
        eventually(lambda: (p := problems(client).get(str(copy.resolve()))) and p[0]["code"] == "DUPLICATE_POLICY_NAME")
        time.sleep(0.5)
        assert behaves_as(decide(client), "2026.11.1") and decide(client)[0] == 1
        assert len(client.get("/policies/credito_b2b").json()["versions"]) == 1

        # The owner file keeps publishing its edits.
        first.write_text(V1.replace('version "2026.11.1"', 'version "2026.11.2"'), encoding="utf-8")
        eventually(lambda: decide(client)[1] == "2026.11.2")

    # A restart: the same ownership, the duplicates still listed.
    with ThreadedServer(restarted(settings)) as server, server.client() as client:
        assert decide(client)[1] == "2026.11.2"
        assert {p for p, e in problems(client).items() if e[0]["code"] == "DUPLICATE_POLICY_NAME"} == \
            {str(copy.resolve()), str(other.resolve())}

        # The duplicate goes away: its problem too. The owner goes away: the waiting file takes over.
        other.unlink()
        eventually(lambda: str(other.resolve()) not in problems(client))
        first.unlink()
        eventually(lambda: decide(client)[1] == "2026.12.5")
        assert not problems(client)
