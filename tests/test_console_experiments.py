"""The console's experiment pages and a decision page's counterfactuals and arm, over HTTP (the
real app on a socket, a real SQLite store): what they show is checked against the API's own
answers (GET /experiments/{name}/report, GET /decisions/{id}/counterfactuals), never against
numbers copied from a run; scopes, CSRF, security headers and escaping as for every console page.
What needs a browser (the chart drawn, the buttons) is in test_console_browser_experiments.py."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from console_data import HOSTILE_IMG, sign_in
from server_harness import LOOSE, STRICT, ThreadedServer, b2b_order, fresh_document, sandbox_settings
from test_console import ALLOWED_TAGS, Tags

from regua.server.auth import hash_key
from regua.server.console.render import brl

TODAY = dt.date(2026, 11, 22)
#: A policy whose actionable label is hostile text: the decision page must show it as text.
CF_DEMO = f"""\
policy cf_demo kind credit version "1"

input
  cpf: cpf
  valor: money

rule alto
  when valor > 1_000 BRL
  review "ALTO" "Valor alto"

default approve "OK" "Aprovado"

output teto = 1_000 BRL

actionable
  valor in 0.01 BRL..100_000 BRL "valor {HOSTILE_IMG}"
"""
READER_KEY = "rk_reader_0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-exp")
    settings = sandbox_settings(tmp)
    (tmp / "policies" / "cf_demo.regua").write_text(CF_DEMO, encoding="utf-8")
    with ThreadedServer(settings, today=lambda: TODAY) as running:
        with running.client() as api:
            created = api.post("/experiments", json={
                "name": "teto", "policy": "credito_b2b", "salt": "s1",
                "challengers": [{"name": "rigido", "source": STRICT, "share": 50},
                                {"name": "sombra", "source": LOOSE, "share": 0}]})
            assert created.status_code == 201, created.text
            running.decisions, running.orders = [], []
            for i in range(24):
                order = b2b_order(fresh_document("clean"), valor_pedido="100000.00" if i % 3 else "5000.00")
                running.orders.append(order)
                answer = api.post("/evaluate/credito_b2b", json={"input": order})
                assert answer.status_code == 200, answer.text
                running.decisions.append(answer.json())
            cf = api.post("/evaluate/cf_demo", json={"input": {"cpf": "529.982.247-25", "valor": "5000.00"}})
            running.cf_decision = cf.json()["decision_id"]
        yield running


@pytest.fixture
def browser(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.csrf = sign_in(client)
        yield client


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize("path", ["/console/experiments", "/console/experiments/teto", "decision", "cf"])
def test_pages_have_security_headers_no_inline_script_and_escape_hostile_text(server, browser, path):
    path = {"decision": f"/console/decisions/{server.decisions[1]['decision_id']}",
            "cf": f"/console/decisions/{server.cf_decision}"}.get(path, path)
    response = browser.get(path)
    assert response.status_code == 200, response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    tags = Tags()
    tags.feed(response.text)
    assert [t for t in tags.found if t[0] == "script" and "src" not in t[1]] == []
    assert [t for t in tags.found if any(name.startswith("on") or name == "style" for name in t[1])] == []
    assert {t[0] for t in tags.found} <= ALLOWED_TAGS, {t[0] for t in tags.found} - ALLOWED_TAGS
    assert HOSTILE_IMG not in response.text


def test_the_list_shows_every_experiment_with_its_shares(browser):
    html = browser.get("/console/experiments").text
    row = re.search(r'<tr id="experiment-teto">(.*?)</tr>', html, re.S).group(1)
    assert 'href="/console/experiments/teto"' in row and "credito_b2b" in row and "em andamento" in row
    assert "champion 50,00%" in text_of(row) and "rigido 50,00%" in text_of(row) and "sombra (sombra)" in text_of(row)
    assert 'href="/console/experiments"' in browser.get("/console/").text  # in the navigation


def test_the_experiment_page_shows_the_report_the_api_gives(server, browser):
    with server.client() as api:
        report = api.get("/experiments/teto/report").json()
    html = browser.get("/console/experiments/teto").text
    assert f"{report['decisions']} decisões" in text_of(html)
    for arm in report["arms"]:
        row = text_of(re.search(rf'<tr id="report-{arm["arm"]}">(.*?)</tr>', html, re.S).group(1))
        assert row.split()[1 if not arm["shadow"] else 2] == str(arm["decisions"]), row
        approve = arm["outcomes"]["approve"]
        if approve["rate"] is not None:
            shown = f"{approve['rate'] * 100:.1f}%".replace(".", ",")
            assert shown in row
            assert f"({approve['ci'][0] * 100:.1f}% a {approve['ci'][1] * 100:.1f}%)".replace(".", ",") in row
        if arm["average_limit"]:
            assert brl(arm["average_limit"]["mean"]) in row
    shadow = next(a for a in report["arms"] if a["shadow"])
    matrix = re.search(r'<table class="data matrix" id="matrix-sombra">(.*?)</table>', html, re.S).group(1)
    cells = [int(n) for n in re.findall(r"<td>(\d+)</td>", matrix)]
    assert cells == [shadow["disagreement"]["matrix"][o][p] for o in ("approve", "review", "deny")
                     for p in ("approve", "review", "deny")]
    # the chart: one approval interval per arm, whiskers within the plot
    chart = re.search(r'<figure id="chart-arms">(.*?)</figure>', html, re.S).group(1)
    assert chart.count('<g class="interval s0">') == len([a for a in report["arms"] if a["decisions"]])
    assert '<g class="interval s1">' not in chart  # no payments known yet: no bad-rate series
    audit = text_of(re.search(r'<table class="data" id="audit">(.*?)</table>', html, re.S).group(1))
    assert "sandbox create" in audit


def test_bad_rates_appear_in_the_table_and_the_chart_once_payments_are_known(server, browser):
    # Every customer owes a receivable due 2026-08-01; the even ones paid it, the odd ones never did.
    count = len(server.orders)
    records = {
        "customers": [{"id": f"c{i}", "document": o["cnpj"], "name": f"Cliente {i}", "uf": "SP",
                       "email": f"c{i}@example.com", "channels": ["email"]} for i, o in enumerate(server.orders)],
        "receivables": [{"id": f"t{i}", "customer_id": f"c{i}", "amount": "100.00", "issue_date": "2026-07-01",
                         "due_date": "2026-08-01"} for i in range(count)],
        "payments": [{"id": f"p{i}", "receivable_id": f"t{i}", "amount": "100.00", "paid_on": "2026-08-01"}
                     for i in range(0, count, 2)]}
    with server.client() as api:
        for kind, rows in records.items():
            response = api.post(f"/portfolio/{kind}", json=rows)
            assert response.status_code == 200, response.text
        report = api.get("/experiments/teto/report").json()
    html = browser.get("/console/experiments/teto").text
    chart = re.search(r'<figure id="chart-arms">(.*?)</figure>', html, re.S).group(1)
    with_bad = [a for a in report["arms"] if a.get("bad_rate") and a["bad_rate"]["rate"] is not None]
    assert len(with_bad) == 2 and chart.count('<g class="interval s1">') == 2  # champion and rigido
    assert sum(a["bad_rate"]["bad"] for a in with_bad) == count // 2
    for arm in with_bad:
        row = text_of(re.search(rf'<tr id="report-{arm["arm"]}">(.*?)</tr>', html, re.S).group(1))
        assert f"{arm['bad_rate']['bad']} de {arm['bad_rate']['customers']} clientes" in row
        low, high = arm["bad_rate"]["ci"]
        assert f"({low * 100:.1f}% a {high * 100:.1f}%)".replace(".", ",") in row
    assert "inadimplência (60 dias)" in text_of(html)


def test_actions_need_the_csrf_token_and_are_audited_as_the_console_key(server, browser):
    refused = browser.post("/console/experiments/teto/action", data={"do": "pause"})
    assert refused.status_code == 403
    assert server.services.evaluator.experiments.store.get("teto")["status"] == "running"
    paused = browser.post("/console/experiments/teto/action", data={"do": "pause", "csrf": browser.csrf})
    assert paused.status_code == 303 and paused.headers["location"] == "/console/experiments/teto"
    assert server.services.evaluator.experiments.store.get("teto")["status"] == "paused"
    wrong = browser.post("/console/experiments/teto/action", data={"do": "pause", "csrf": browser.csrf})
    assert wrong.status_code == 409 and "EXPERIMENT_STATE" in wrong.text
    assert browser.post("/console/experiments/teto/action", data={"do": "resume", "csrf": browser.csrf}).status_code == 303
    unknown = browser.post("/console/experiments/nenhum/action", data={"do": "stop", "csrf": browser.csrf})
    assert unknown.status_code == 404
    audit = server.services.evaluator.experiments.store.audit("teto")
    assert [(a["action"], a["by"]) for a in audit[-2:]] == [("pause", "console:sandbox"), ("resume", "console:sandbox")]


def test_a_decision_page_shows_its_arm_and_shadow(server, browser):
    decision = server.decisions[1]
    with server.client() as api:
        record = api.get(f"/decisions/{decision['decision_id']}").json()["experiment"]
    html = browser.get(f"/console/decisions/{decision['decision_id']}").text
    section = text_of(re.search(r'<section class="card" id="experiment">(.*?)</section>', html, re.S).group(1))
    assert f"braço {record['arm']}" in section and "experimento teto" in section
    [shadow] = record["shadows"]
    assert f"sombra {shadow['outcome']}" in section and ("sim" if shadow["agrees"] else "não") in section


def test_a_decision_page_shows_the_counterfactuals_the_api_finds(server, browser):
    assert sorted({d["outcome"] for d in server.decisions}) == ["approve", "review"]
    review = next(d for d in server.decisions if d["outcome"] == "review")
    with server.client() as api:
        found = api.get(f"/decisions/{review['decision_id']}/counterfactuals").json()
    html = browser.get(f"/console/decisions/{review['decision_id']}").text
    assert found["sentence"] in text_of(html)  # in the customer's explanation
    section = re.search(r'<section class="card" id="counterfactuals">(.*?)</section>', html, re.S).group(1)
    rows = re.findall(r'<tr class="alternative">(.*?)</tr>', section, re.S)
    assert len(rows) == len(found["alternatives"]) >= 1
    first = found["alternatives"][0]["changes"][0]
    assert f"{first['label']}: {brl(first['from'])} → {brl(first['to'])}" in text_of(rows[0])
    # a hostile label from the policy is text
    hostile = browser.get(f"/console/decisions/{server.cf_decision}").text
    assert "valor &lt;img src=x onerror=&#39;window.__pwned=1&#39;&gt;: R$ 5.000,00 → R$ 1.000,00" in text_of(hostile)


def test_experiment_pages_need_the_experiments_scope(tmp_path):
    settings = sandbox_settings(tmp_path, auth={"keys": [
        {"name": "leitor", "hash": hash_key(READER_KEY), "scopes": ["decisions:read"]},
        {"name": "admin", "hash": hash_key("rk_admin_0123456789abcdef"), "scopes": ["evaluate", "experiments",
                                                                               "decisions:read"]}]})
    with ThreadedServer(settings, today=lambda: TODAY) as running, httpx.Client(base_url=running.url) as client:
        admin = {"Authorization": "Bearer rk_admin_0123456789abcdef"}
        assert httpx.post(running.url + "/experiments", headers=admin, json={
            "name": "teto", "policy": "credito_b2b",
            "challengers": [{"name": "rigido", "source": STRICT, "share": 50}]}).status_code == 201
        answer = httpx.post(running.url + "/evaluate/credito_b2b", headers=admin,
                            json={"input": b2b_order(fresh_document("clean"))}).json()
        csrf = sign_in(client, READER_KEY)
        assert "/console/experiments" not in client.get("/console/").text
        assert client.get("/console/experiments").status_code == 403
        assert client.get("/console/experiments/teto").status_code == 403
        assert client.post("/console/experiments/teto/action", data={"do": "stop", "csrf": csrf}).status_code == 403
        assert running.services.evaluator.experiments.store.get("teto")["status"] == "running"
        # the decision page still names the arm, without a link to a page the key cannot open
        page = client.get(f"/console/decisions/{answer['decision_id']}").text
        assert "experimento teto" in text_of(page) and 'href="/console/experiments/teto"' not in page
