"""Console pages of the policy lab's replays (scope `lab`): the jobs and a job's report, masked
like every console page (a name cut by shows no letter of it, a CPF its last two digits), escaped,
with the security headers; deleting a job takes the session's CSRF token and is audited."""

from __future__ import annotations

import re
import time

import httpx
import pytest
import test_console as console
from console_data import CPF, DEMO_POLICY, NAME, evaluate, sign_in
from server_harness import SANDBOX_HEADERS, ThreadedServer, sandbox_settings

from regua.server.auth import hash_key

#: console_demo with a lower threshold: the decisions between R$ 400 and R$ 1.000 go to review.
CANDIDATE = DEMO_POLICY.replace("when valor > 1_000 BRL", "when valor > 400 BRL")


def start_replay(api: httpx.Client, by: list[str]) -> dict:
    started = api.post("/replays", json={"candidate": CANDIDATE, "by": by})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 120
    while (job := api.get(started.headers["location"]).json())["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["status"] == "done", job
    return job


def seed_replay(api: httpx.Client) -> dict:
    for valor in ("300.00", "500.00", "700.00", "900.00", "5000.00"):
        evaluate(api, valor)
    return start_replay(api, ["nome", "cpf", "valor:1000"])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-replays")
    settings = sandbox_settings(tmp)
    (tmp / "policies" / "console_demo.regua").write_text(DEMO_POLICY, encoding="utf-8")
    with ThreadedServer(settings) as running:
        with running.client(SANDBOX_HEADERS) as api:
            running.job = seed_replay(api)
        yield running


@pytest.fixture
def browser(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.csrf = sign_in(client)
        yield client


def test_the_list_shows_the_jobs_newest_first(browser, server):
    html = browser.get("/console/replays").text
    job = server.job
    assert f'id="replay-{job["id"]}"' in html and "concluído" in html and "5 de 5" in html
    assert '<a href="/console/replays" aria-current="page">Replays</a>' in html


def test_a_job_shows_its_report_masked(browser, server):
    job = server.job
    report = job["report"]
    assert report["changed"] == 3  # R$ 500, 700 and 900 now go to review
    html = browser.get(f"/console/replays/{job['id']}").text
    assert re.search(r"<dd id=\"changed\">3</dd>", html)
    assert "approve>review" not in html and "antes \\ depois" in html
    assert NAME not in html and "Maria" not in html and "Souza" not in html  # a name: no letter of it
    assert CPF not in html and "52998224725" not in html and "*********25" in html  # a document: its last digits
    assert "[0, 1000)" in html and "[1000, 2000)" not in html and "[5000, 6000)" in html
    for change in report["top_changes"]:
        assert f'href="/console/decisions/{change["id"]}"' in html


@pytest.mark.parametrize("path", ["/console/replays", "/console/replays/{id}"])
def test_replay_pages_have_the_security_headers_and_no_inline_script(browser, server, path):
    response = browser.get(path.format(id=server.job["id"]))
    assert response.status_code == 200, response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    tags = console.Tags()
    tags.feed(response.text)
    assert [t for t in tags.found if t[0] == "script" and "src" not in t[1]] == []
    assert [t for t in tags.found if any(name.startswith("on") or name == "style" for name in t[1])] == []
    assert {t[0] for t in tags.found} <= console.ALLOWED_TAGS
    assert "<b>" not in response.text and "<script>window" not in response.text


def test_deleting_a_job_takes_the_csrf_token_and_is_audited(browser, server):
    with server.client(SANDBOX_HEADERS) as api:
        job = start_replay(api, [])
    refused = browser.post(f"/console/replays/{job['id']}/delete", data={"csrf": "forged"})
    assert refused.status_code == 403 and browser.get(f"/console/replays/{job['id']}").status_code == 200
    done = browser.post(f"/console/replays/{job['id']}/delete", data={"csrf": browser.csrf})
    assert done.status_code == 303 and done.headers["location"] == "/console/replays"
    assert browser.get(f"/console/replays/{job['id']}").status_code == 404
    assert browser.post(f"/console/replays/{job['id']}/delete", data={"csrf": browser.csrf}).status_code == 404
    rows = server.services.store.query("select actor, action, target from console_audit where action = 'delete-replay'")
    assert rows == [{"actor": "console:sandbox", "action": "delete-replay", "target": job["id"]}]


def test_the_pages_need_the_lab_scope(tmp_path):
    key = "rk_only_decisions_0123456789"
    settings = sandbox_settings(tmp_path, auth={"keys": [{"name": "ana", "hash": hash_key(key),
                                                          "scopes": ["decisions:read"]}]})
    with ThreadedServer(settings) as running, httpx.Client(base_url=running.url) as client:
        sign_in(client, key)
        assert "/console/replays" not in client.get("/console/").text
        forbidden = client.get("/console/replays")
        assert forbidden.status_code == 403 and "lab" in forbidden.text
