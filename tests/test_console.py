"""The web console over HTTP (the real app on a socket): sign-in and session cookie, CSRF, scopes,
security headers, escaping of hostile text, masking of personal data, the review task list and
decision search. What needs a browser (scripts, charts, highlighting) is in test_console_browser.py."""

from __future__ import annotations

import contextlib
import re
from html.parser import HTMLParser

import httpx
import pytest
from console_data import (
    CPF,
    DEMO_POLICY,
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    UNREAD_LET_LINE,
    evaluate,
    seed,
    sign_in,
)
from server_harness import SANDBOX_HEADERS, ThreadedServer, sandbox_settings

from regua import dialect
from regua.server.auth import hash_key


@contextlib.contextmanager
def stored(server):
    """A connection to the server's store, whichever the backend (regua.dialect)."""
    db = dialect.connect(server.services.store.location)
    try:
        yield db
    finally:
        db.conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_backend):
    """One server per store backend (module_backend: a SQLite file, then PostgreSQL)."""
    tmp = tmp_path_factory.mktemp("console")
    settings = sandbox_settings(tmp, store=module_backend)
    (tmp / "policies" / "console_demo.regua").write_text(DEMO_POLICY, encoding="utf-8")
    with ThreadedServer(settings) as running:
        with running.client() as api:
            running.seeded = seed(api)
        yield running


@pytest.fixture
def browser(server):
    """A client with a console session (its own cookie jar), no API key header."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.csrf = sign_in(client)
        yield client


# ---- sign-in and session ----

def test_pages_send_a_visitor_without_a_session_to_sign_in(server):
    response = httpx.get(server.url + "/console/decisions?policy=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=%2Fconsole%2Fdecisions%3Fpolicy%3Dx"
    # An API key header is not a console session.
    assert httpx.get(server.url + "/console/decisions", headers=SANDBOX_HEADERS).status_code == 303


def test_sign_in_sets_a_strict_http_only_cookie_and_refuses_unknown_keys(server):
    refused = httpx.post(server.url + "/console/login", data={"key": "rk_wrong", "next": "/console/"})
    assert refused.status_code == 200 and "Chave de API desconhecida" in refused.text
    assert "set-cookie" not in refused.headers
    accepted = httpx.post(server.url + "/console/login", data={"key": "regua-sandbox", "next": "/console/reviews"})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/console/reviews"
    cookie = accepted.headers["set-cookie"]
    assert re.match(r"regua_console=[\w-]{40,};", cookie)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "regua-sandbox" not in cookie
    # Plain http is allowed on loopback only (local development); anywhere else the cookie is Secure.
    proxied = httpx.post(server.url + "/console/login", data={"key": "regua-sandbox"},
                         headers={"Host": "console.example.com"})
    assert "Secure" in proxied.headers["set-cookie"]


def test_the_session_is_stored_hashed_never_the_cookie(server):
    response = httpx.post(server.url + "/console/login", data={"key": "regua-sandbox"})
    token = response.cookies["regua_console"]
    with stored(server) as db:
        hashes = [row[0] for row in db.execute("select id_hash from console_sessions")]
    assert token not in hashes and len(hashes) >= 1


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/schema", "/console\\@evil"])
def test_sign_in_never_redirects_off_the_console(server, target):
    response = httpx.post(server.url + "/console/login", data={"key": "regua-sandbox", "next": target})
    assert response.headers["location"] == "/console/"


def test_forms_without_the_session_csrf_token_are_refused(server, browser):
    refused = browser.post("/console/logout", data={"csrf": "forged"})
    assert refused.status_code == 403 and "código de segurança" in refused.text
    assert browser.get("/console/").status_code == 200  # still signed in
    signed_out = browser.post("/console/logout", data={"csrf": browser.csrf})
    assert signed_out.status_code == 303
    assert browser.get("/console/").status_code == 303


def test_pages_follow_the_keys_scopes(tmp_path):
    key = "rk_only_evaluate_0123456789"
    settings = sandbox_settings(tmp_path, auth={"keys": [{"name": "caixa", "hash": hash_key(key), "scopes": ["evaluate"]}]})
    with ThreadedServer(settings) as running, httpx.Client(base_url=running.url) as client:
        refused = client.post("/console/login", data={"key": "regua-sandbox"})  # keys configured: no sandbox key
        assert "Chave de API desconhecida" in refused.text and "set-cookie" not in refused.headers
        sign_in(client, key)
        home = client.get("/console/").text
        assert "/console/playground" in home and "/console/decisions" not in home
        forbidden = client.get("/console/decisions")
        assert forbidden.status_code == 403 and "decisions:read" in forbidden.text
        assert client.get("/console/policies").status_code == 200


# ---- what every page carries ----

class Tags(HTMLParser):
    """Every start tag of a page with its attributes: what the browser would build."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


#: The markup the console's templates write; a hostile string that became markup would add another
#: tag (img, b, script without src...).
ALLOWED_TAGS = {"html", "head", "meta", "title", "link", "script", "body", "header", "nav", "a", "form", "input",
                "span", "button", "main", "section", "h1", "h2", "h3", "p", "ul", "ol", "li", "table", "thead",
                "tbody", "tr", "th", "td", "code", "div", "strong", "em", "label", "select", "option", "textarea",
                "small", "dl", "dt", "dd", "figure", "figcaption", "svg", "line", "text", "polyline", "circle",
                "rect", "pre", "br", "g", "fieldset", "legend"}


PAGES = ["/console/", "/console/policies", "/console/policies/console_demo", "/console/policies/console_demo/tests",
         "/console/playground/console_demo?run=1&cpf=529.982.247-25&nome=x&valor=5.000,00", "/console/decisions",
         "/console/reviews", "/console/collection", "/console/collection/debtors/maria", "/console/kpis",
         "/console/customers/maria/limit"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_security_headers_and_no_inline_script(browser, path):
    response = browser.get(path)
    assert response.status_code == 200, response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    tags = Tags()
    tags.feed(html)
    assert [t for t in tags.found if t[0] == "script" and "src" not in t[1]] == [], "inline script"
    assert [t for t in tags.found if any(name.startswith("on") or name == "style" for name in t[1])] == []
    assert [t for t in tags.found if re.match(r"https?:|//", t[1].get("src") or t[1].get("href") or "")] == []
    assert {t[0] for t in tags.found} <= ALLOWED_TAGS, {t[0] for t in tags.found} - ALLOWED_TAGS
    # Hostile text from policies, reasons, names and notes arrives escaped, never as markup.
    assert HOSTILE_SCRIPT not in html and HOSTILE_IMG not in html and "<b>sem</b>" not in html
    assert "<script>x</script>" not in html


def test_hostile_text_is_shown_escaped(browser, server):
    html = browser.get("/console/policies").text
    assert "Demonstração &lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    decision = browser.get(f"/console/decisions/{server.seeded['review']}").text
    assert "&lt;img src=x onerror=&#39;window.__pwned=1&#39;&gt;Valor alto" in decision


# ---- pages ----

def test_a_policy_shows_its_diagnostics_on_their_lines(browser):
    html = browser.get("/console/policies/console_demo").text
    line = re.search(rf'<li id="L{UNREAD_LET_LINE}"[^>]*>(.*?)</li>', html, re.S).group(1)
    assert "W602" in line and "nunca_lida" in line
    assert "3 aviso(s)" in html
    # The rule graph, drawn on the server: the rule between its input and the outcome.
    graph = re.search(r'<div class="graph-box" id="rule-graph">(.*?)</div>', html, re.S).group(1)
    assert '<g class="node rule"><rect' in graph and ">valor_alto: review VALOR_ALTO<" in graph


def test_a_refused_policy_file_shows_its_error_in_place(server, browser, tmp_path):
    broken = browser.get("/console/policies/problem", params={"file": "/etc/passwd"})
    assert broken.status_code == 404  # only files the server reported
    path = server.services.policies.folder / "quebrada.regua"
    path.write_text('policy quebrada kind credit version "1"\n\nrule r\n  when valor_inexistente > 1\n  deny "X" "x"\n',
                    encoding="utf-8")
    try:
        server.services.policies.sync_file(path)
        listed = browser.get("/console/policies").text
        assert "quebrada.regua" in listed
        page = browser.get("/console/policies/problem", params={"file": str(path.resolve())}).text
        line4 = re.search(r'<li id="L4"[^>]*>(.*?)</li>', page, re.S).group(1)
        assert "E1" in line4 and "valor_inexistente" in line4
    finally:
        path.unlink()
        server.services.policies.forget_file(path)


def test_the_playground_evaluates_from_the_url_and_names_bad_fields(browser):
    page = browser.get("/console/playground/console_demo",
                       params={"run": "1", "cpf": CPF, "nome": "Ana", "valor": "5.000,00"}).text
    assert 'id="outcome">review<' in page and "VALOR_ALTO" in page
    assert "R$ 5.000,00" in page  # the money output in Brazilian format
    assert re.search(r'<li id="L11" class="fired', page)
    bad = browser.get("/console/playground/console_demo", params={"run": "1", "cpf": "111.111.111-12", "valor": "abc"}).text
    assert 'class="field invalid"' in bad and "valor em formato inesperado" in bad


def test_a_decision_page_masks_personal_data_until_revealed_and_audits_the_reveal(browser, server):
    decision_id = server.seeded["approved"]
    page = browser.get(f"/console/decisions/{decision_id}").text
    assert CPF not in page and "52998224725" not in page and "Souza" not in page
    assert "Sua solicitação foi aprovada em" in page  # the customer's explanation, pt-BR
    revealed = browser.get(f"/console/decisions/{decision_id}", params={"reveal": "true"}).text
    assert CPF in revealed and "Maria &lt;b&gt;Souza&lt;/b&gt;" in revealed
    with stored(server) as db:
        assert db.execute("select actor, action from console_audit where target = ?", [decision_id]).fetchall() == [
            ("console:sandbox", "reveal")]


def test_decisions_are_found_by_id_and_filters_and_paged_by_id(server, browser):
    with server.client() as api:
        for i in range(55):
            evaluate(api, "100.00" if i % 2 else "2000.00")
    server.services.decision_log.wait_flushed()
    found = browser.get("/console/decisions", params={"id": server.seeded["review"]})
    assert found.status_code == 303 and found.headers["location"] == f"/console/decisions/{server.seeded['review']}"
    assert "Nenhuma decisão com este id" in browser.get("/console/decisions", params={"id": "nada"}).text
    first = browser.get("/console/decisions", params={"policy": "console_demo"}).text
    ids = re.findall(r'href="/console/decisions/(\w{26})"', first)
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    following = re.search(r'href="/console/decisions\?([^"]+)">Mais antigas', first).group(1).replace("&amp;", "&")
    second = re.findall(r'href="/console/decisions/(\w{26})"', browser.get("/console/decisions?" + following).text)
    assert second and max(second) < min(ids)
    reviews = browser.get("/console/decisions", params={"reason": "VALOR_ALTO"}).text
    outcomes = re.findall(r'<span class="outcome (\w+)">', reviews)
    assert len(outcomes) == 29 and set(outcomes) == {"review"}  # the seeded review and 28 of the 55
    by_document = browser.get("/console/decisions", params={"document": "52998224725", "outcome": "approve"}).text
    assert len(re.findall(r'href="/console/decisions/\w{26}"', by_document)) >= 1
    assert "não é um CPF ou CNPJ válido" in browser.get("/console/decisions", params={"document": "123"}).text


def test_a_review_is_taken_then_approved_with_a_note_and_audited(server, browser):
    decision_id = server.seeded["review"]
    listed = browser.get("/console/reviews").text
    assert f'id="task-{decision_id}"' in listed
    assert browser.post(f"/console/reviews/{decision_id}/take", data={}).status_code == 403  # no CSRF token
    assert browser.post(f"/console/reviews/{decision_id}/take", data={"csrf": browser.csrf}).status_code == 303
    refused = browser.post(f"/console/reviews/{decision_id}/resolve",
                           data={"csrf": browser.csrf, "verdict": "approve", "note": " "})
    assert refused.status_code == 400
    done = browser.post(f"/console/reviews/{decision_id}/resolve",
                        data={"csrf": browser.csrf, "verdict": "approve", "note": "renda comprovada <b>ok</b>"})
    assert done.status_code == 303
    assert f'id="task-{decision_id}"' not in browser.get("/console/reviews").text
    resolved = browser.get("/console/reviews", params={"done": "true"}).text
    assert "aprovada" in resolved and "renda comprovada &lt;b&gt;ok&lt;/b&gt;" in resolved
    with stored(server) as db:
        assert db.execute("select action, detail from console_audit where target = ? order by id",
                          [decision_id]).fetchall() == [("take", ""), ("approve", "renda comprovada <b>ok</b>")]
    assert browser.post("/console/reviews/01ZZZZZZZZZZZZZZZZZZZZZZZZ/take",
                        data={"csrf": browser.csrf}).status_code == 404


def test_collection_pages_show_the_queue_the_timeline_and_the_limit_history(browser):
    timeline = browser.get("/console/collection/debtors/maria").text
    assert "lembrete" in timeline or "vencimento" in timeline
    limit = browser.get("/console/customers/maria/limit").text
    assert 'id="current-limit">R$ 32.000,00<' in limit
    assert limit.count("<polyline") == 1 and "R$ 12.000,00" in limit
    kpis = browser.get("/console/kpis").text
    assert kpis.count('<svg class="chart"') == 3


def test_the_api_docs_page_loads_its_assets_from_this_server(server):
    page = httpx.get(server.url + "/schema")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/schema/assets/swagger-ui-bundle.js" in assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert httpx.get(server.url + asset).status_code == 200, asset


def test_the_docs_scope_table_matches_the_pages(server):
    """docs/console.md says which scope opens which page: check each row against the app."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "console.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| [^|]+ \| `(/console/[^`]*)` \| (.+) \|$", doc, re.M)
    assert len(rows) == 9
    routes = {route.path.replace("{customer_id:str}", "{id}").rstrip("/") or "/": route for route in server.app.routes}
    for path, scopes in rows:
        route = routes[path.rstrip("/")]
        declared = {h.opt["console"] for h in route.route_handlers if "GET" in h.http_methods}
        assert declared == {tuple(re.findall(r"`([a-z:]+)`", scopes))}, (path, declared, scopes)


def test_the_playground_takes_connector_answers_as_fixtures(browser):
    order = {"run": "1", "cpf": CPF, "data_nascimento": "1985-04-12", "renda_mensal": "6.000,00",
             "valor_compra": "3000", "parcelas": "6"}
    sandbox = browser.get("/console/playground/credito_b2c", params=order).text
    assert 'id="outcome">approve<' in sandbox  # the sandbox bureau's answer
    low_score = browser.get("/console/playground/credito_b2c", params={
        **order, "fixture:bureau.boavista": '{"score": {"value": 200}, "restrictions": []}'}).text
    assert 'id="outcome">deny<' in low_score and "SCORE_BAIXO" in low_score
    assert "&#34;score&#34;: {&#34;value&#34;: 200}" in low_score  # kept in the form (and the URL)
    bad = browser.get("/console/playground/credito_b2c", params={**order, "fixture:bureau.boavista": "[1]"}).text
    assert "resposta em JSON (um objeto) esperada" in bad and 'id="outcome"' not in bad


def test_a_monitoring_review_is_a_task_too_and_resolving_it_closes_it(server, browser):
    decision_id = "01MONITORAMENTO00000000000"
    with stored(server) as db:
        db.execute("insert into monitoring_reviews (customer_id, decision_id, opened_at, reasons) values "
                   "('maria', ?, '2026-11-20T12:00:00+00:00', '[\"SCORE_CAIU\"]')", [decision_id])
    row = re.search(rf'<tr id="task-{decision_id}">(.*?)</tr>', browser.get("/console/reviews").text, re.S).group(1)
    assert "monitoramento" in row and "SCORE_CAIU" in row
    done = browser.post(f"/console/reviews/{decision_id}/resolve",
                        data={"csrf": browser.csrf, "verdict": "deny", "note": "manter o limite"})
    assert done.status_code == 303
    with stored(server) as db:
        assert db.execute("select closed_by from monitoring_reviews where decision_id = ?",
                          [decision_id]).fetchone() == ("console:sandbox",)


def test_an_unknown_console_address_is_a_page_not_an_api_error(browser):
    response = browser.get("/console/nada/aqui")
    assert response.status_code == 404 and "Esta página não existe" in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert httpx.get(str(browser.base_url) + "/console/nada").status_code == 303  # sign in first
