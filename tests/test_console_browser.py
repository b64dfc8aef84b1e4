"""The console in a real browser: Playwright driving Chromium against a real `regua serve` process.

Each test opens its pages in a fresh browser context that records console errors, uncaught page
errors and every request; requests to anything but this machine are aborted and make the test
fail (the console must work on an air-gapped network). Screenshots of each page go to
var/screenshots/console/ (git-ignored) for a person to look at.

These tests are never skipped. They need the `playwright` package (in the `test` extra) and a
Chromium: the system's (`apt-get install -y chromium`, which `.ci/run` does), another one named by
REGUA_CHROMIUM=/path/to/chrome, or Playwright's own download (`playwright install chromium`) where
that download is reachable. Without any of them the tests fail saying what to install.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from console_data import CPF, DEMO_POLICY, RULE_LINE, UNREAD_LET_LINE, seed
from server_harness import ROOT, ProcessServer, copy_policies

SCREENSHOTS = ROOT / "var" / "screenshots" / "console"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
INSTALL_HINT = ("the console's browser tests need Chromium: `apt-get install -y chromium` (Debian/Ubuntu), or set "
                "REGUA_CHROMIUM=/path/to/chromium, or `playwright install chromium` where Playwright's download is "
                "reachable")


def chromium_path() -> str | None:
    """The browser to drive: REGUA_CHROMIUM, else a system Chromium, else None (Playwright's own)."""
    named = os.environ.get("REGUA_CHROMIUM")
    if named:
        if not Path(named).is_file():
            pytest.fail(f"REGUA_CHROMIUM={named} is not a file; {INSTALL_HINT}", pytrace=False)
        return named
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.fail("the console's browser tests need the playwright package: pip install -e '.[test]'", pytrace=False)
    executable = chromium_path()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Error as error:
            pytest.fail(f"could not start Chromium ({str(error).splitlines()[0]}); {INSTALL_HINT}", pytrace=False)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-browser")
    policies = copy_policies(tmp / "policies")
    (policies / "console_demo.regua").write_text(DEMO_POLICY, encoding="utf-8")
    with ProcessServer(tmp, policies=policies) as running:
        with running.client() as api:
            running.seeded = seed(api)
        yield running


class Watched:
    """A page in its own context, with what it logged and what it asked for."""

    def __init__(self, browser, base_url: str):
        self.context = browser.new_context(base_url=base_url, locale="pt-BR", viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def _route(self, route):
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith("data:") or host in LOOPBACK:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def sign_in(self, target: str = "/console/") -> None:
        self.page.goto(target)
        self.page.fill("#key", "regua-sandbox")
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def check(self) -> None:
        """Nothing executed that should not have; no error logged; nothing asked of another host."""
        assert self.page.evaluate("() => window.__pwned") is None, "hostile text ran as script"
        assert self.errors == []
        assert self.foreign == []


@pytest.fixture
def tab(chromium, server):
    watched = Watched(chromium, server.url)
    yield watched
    watched.context.close()


def test_sign_in_then_the_pages_of_the_keys_scopes(tab, server):
    assert f"Console: {server.url}/console/ (sign in with an API key)" in server.stdout()  # what regua serve prints
    tab.page.goto("/console/policies")
    assert tab.page.url.endswith("/console/login?next=%2Fconsole%2Fpolicies")
    tab.shot("login")
    tab.page.fill("#key", "chave-errada")
    tab.page.click("button[type=submit]")
    assert "Chave de API desconhecida" in tab.page.inner_text("main")
    tab.page.fill("#key", "regua-sandbox")
    tab.page.click("button[type=submit]")
    tab.page.wait_for_url("**/console/policies")
    assert tab.page.locator("h1").inner_text() == "Políticas"
    assert tab.page.locator("header nav a").all_inner_texts() == [
        "Políticas", "Playground", "Decisões", "Revisões", "Cobrança", "Indicadores", "Replays"]
    # The session cookie is out of the page's reach.
    assert "regua_console" not in tab.page.evaluate("() => document.cookie")
    tab.shot("policies")
    tab.check()


def test_a_policy_shows_a_diagnostic_in_place(tab):
    tab.sign_in("/console/policies/console_demo")
    diagnostic = tab.page.locator(f"#L{UNREAD_LET_LINE} .diag")
    assert diagnostic.is_visible()
    assert "W602" in diagnostic.inner_text() and "nunca_lida" in diagnostic.inner_text()
    # The hostile description is shown as text.
    tab.page.goto("/console/policies")
    assert "Demonstração <script>window.__pwned=1</script>" in tab.page.inner_text("main")
    tab.shot("policy-source")
    tab.check()


def test_the_playground_highlights_the_rule_that_fired_and_shares_by_url(tab):
    tab.sign_in("/console/playground/console_demo")
    tab.page.locator("#f-cpf").press_sequentially("52998224725")
    assert tab.page.input_value("#f-cpf") == CPF  # masked as typed
    tab.page.fill("#f-nome", "Ana")
    tab.page.fill("#f-valor", "5.000,00")
    tab.page.click("#playground-form button[type=submit]")
    tab.page.wait_for_selector("#outcome")
    assert tab.page.inner_text("#outcome") == "review"
    fired = tab.page.locator("ol.lines li.fired")
    assert [fired.nth(i).get_attribute("id") for i in range(fired.count())] == [
        f"L{RULE_LINE}", f"L{RULE_LINE + 1}", f"L{RULE_LINE + 2}"]  # the rule, its condition and its outcome
    assert "VALOR_ALTO" in tab.page.inner_text(".reasons")
    assert "R$ 5.000,00" in tab.page.inner_text(".outputs")
    tab.shot("playground")
    shared = tab.page.url
    assert "valor=5.000%2C00" in shared
    tab.page.goto("/console/")
    tab.page.goto(shared)
    assert tab.page.inner_text("#outcome") == "review"
    tab.check()


def test_a_decision_found_by_id_shows_its_explanation(tab, server):
    decision_id = server.seeded["review"]
    tab.sign_in("/console/decisions")
    tab.page.fill("input[name=id]", decision_id)
    tab.page.click("form.filters button[type=submit]")
    tab.page.wait_for_url(f"**/console/decisions/{decision_id}")
    explanation = tab.page.inner_text("#explanation")
    assert explanation.startswith("Sua solicitação foi encaminhada para análise de um especialista em ")
    assert "<img src=x onerror='window.__pwned=1'>Valor alto" in explanation  # text, not an image
    assert tab.page.locator("main img").count() == 0
    assert CPF not in tab.page.inner_text("#input")
    tab.shot("decision")
    tab.check()


def test_a_review_is_taken_and_approved(tab, server):
    decision_id = server.seeded["review"]
    tab.sign_in("/console/reviews")
    row = tab.page.locator(f"#task-{decision_id}")
    row.get_by_role("button", name="Assumir").click()
    tab.page.wait_for_load_state()
    row = tab.page.locator(f"#task-{decision_id}")
    assert "console:sandbox" in row.inner_text()
    row.locator("input[name=note]").fill("Renda confirmada por telefone")
    tab.shot("review")
    row.get_by_role("button", name="Aprovar").click()
    tab.page.wait_for_load_state()
    assert tab.page.locator(f"#task-{decision_id}").count() == 0
    tab.page.goto("/console/reviews?done=true")
    assert "aprovada por console:sandbox: Renda confirmada por telefone" in tab.page.locator(f"#task-{decision_id}").inner_text()
    tab.check()


def test_kpi_and_limit_history_charts(tab):
    tab.sign_in("/console/kpis")
    charts = tab.page.locator("svg.chart")
    assert charts.count() == 3
    for figure in ("#chart-dso", "#chart-aging", "#chart-recovery"):
        box = tab.page.locator(f"{figure} svg").bounding_box()
        assert box and box["width"] > 200 and box["height"] > 80
    tab.shot("kpis")
    tab.page.goto("/console/customers/maria/limit")
    assert tab.page.inner_text("#current-limit") == "R$ 32.000,00"
    assert tab.page.locator("#chart-limit polyline").count() == 1
    assert tab.page.locator("#chart-limit circle").count() == 2
    assert re.search(r"\d{2}/\d{2}/\d{4}", tab.page.inner_text("#chart-limit"))  # Brazilian dates on the axis
    tab.shot("limit-history")
    tab.page.goto("/console/collection/debtors/maria")
    assert tab.page.locator("ol.timeline li").count() >= 1
    tab.shot("debtor-timeline")
    tab.check()


def test_the_api_docs_work_offline(tab):
    tab.page.goto("/schema")
    tab.page.wait_for_selector(".swagger-ui .info .title")
    assert "Régua" in tab.page.inner_text(".swagger-ui .info .title")
    tab.shot("api-docs")
    tab.check()


@pytest.mark.parametrize("path", ["/console/", "/console/policies", "/console/playground/console_demo",
                                  "/console/decisions", "/console/reviews", "/console/kpis",
                                  "/console/customers/maria/limit"])
def test_pages_fit_a_phone_screen(chromium, server, path):
    watched = Watched(chromium, server.url)
    try:
        watched.page.set_viewport_size({"width": 390, "height": 844})
        watched.sign_in(path)
        overflow = watched.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
        watched.shot("phone" + path.replace("/", "-").rstrip("-"))
        watched.check()
    finally:
        watched.context.close()
