"""The console's experiment pages and a decision's counterfactuals in a real browser: Playwright
driving Chromium against a real `regua serve` process, with the watch of test_console_browser.py
(no console error, no script from hostile text, no request to another host) and a screenshot of
each page in var/screenshots/console/."""

from __future__ import annotations

import pytest
from server_harness import LOOSE, STRICT, ProcessServer, b2b_order, copy_policies, fresh_document
from test_console_browser import Watched, chromium  # noqa: F401 — the browser fixture


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-browser-exp")
    with ProcessServer(tmp, policies=copy_policies(tmp / "policies")) as running:
        with running.client() as api:
            created = api.post("/experiments", json={
                "name": "teto", "policy": "credito_b2b",
                "challengers": [{"name": "rigido", "source": STRICT, "share": 50},
                                {"name": "sombra", "source": LOOSE, "share": 0}]})
            assert created.status_code == 201, created.text
            running.review = None
            for i in range(20):
                order = b2b_order(fresh_document("clean"), valor_pedido="100000.00" if i % 2 else "5000.00")
                answer = api.post("/evaluate/credito_b2b", json={"input": order}).json()
                if answer["outcome"] == "review":
                    running.review = answer["decision_id"]
            assert running.review is not None
        yield running


@pytest.fixture
def tab(chromium, server):  # noqa: F811 — the imported fixture
    watched = Watched(chromium, server.url)
    yield watched
    watched.context.close()


def test_the_experiment_page_draws_the_arms_with_their_intervals_and_pauses(tab):
    tab.sign_in("/console/experiments")
    assert "Experimentos" in tab.page.locator("header nav a").all_inner_texts()
    tab.shot("experiments")
    tab.page.click("#experiment-teto a")
    tab.page.wait_for_url("**/console/experiments/teto")
    intervals = tab.page.locator("#chart-arms g.interval")
    assert intervals.count() == 3  # champion, rigido and the shadow: an approval rate each
    for i in range(3):
        box = intervals.nth(i).bounding_box()
        assert box and box["height"] > 0 and box["width"] >= 8  # a whisker with its caps, drawn
    figure = tab.page.locator("#chart-arms svg").bounding_box()
    assert figure and figure["width"] > 200 and figure["height"] > 80
    assert "IC 95%" in intervals.first.locator("title").text_content()
    assert tab.page.locator("#matrix-sombra td").count() == 9
    tab.shot("experiment")
    tab.page.get_by_role("button", name="Pausar").click()
    tab.page.wait_for_load_state()
    assert tab.page.inner_text("#status") == "pausado"
    assert "console:sandbox" in tab.page.inner_text("#audit")
    tab.page.get_by_role("button", name="Retomar").click()
    tab.page.wait_for_load_state()
    assert tab.page.inner_text("#status") == "em andamento"
    tab.check()


def test_a_decision_shows_what_would_have_approved_it_and_its_arm(tab, server):
    tab.sign_in(f"/console/decisions/{server.review}")
    section = tab.page.locator("#counterfactuals")
    assert section.is_visible()
    assert tab.page.locator("#counterfactuals tr.alternative").count() >= 1
    assert "valor do pedido: R$ 100.000,00 → R$ " in section.inner_text()
    assert "Sua solicitação seria aprovada com " in tab.page.inner_text("#explanation")
    assert "experimento teto" in tab.page.inner_text("#experiment")
    tab.shot("decision-counterfactuals")
    tab.check()


@pytest.mark.parametrize("path", ["/console/experiments", "/console/experiments/teto"])
def test_experiment_pages_fit_a_phone_screen(chromium, server, path):  # noqa: F811
    watched = Watched(chromium, server.url)
    try:
        watched.page.set_viewport_size({"width": 390, "height": 844})
        watched.sign_in(path)
        overflow = watched.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
        watched.shot("phone" + path.replace("/", "-"))
        watched.check()
    finally:
        watched.context.close()
