"""The replay pages in a real browser (Playwright, Chromium) against a real `regua serve`: from the
list to a job's report, masked, with nothing run or fetched that should not be; then deleted.
Screenshots go to var/screenshots/console/ like the other console pages'."""

from __future__ import annotations

import pytest
from console_data import CPF, DEMO_POLICY, NAME
from server_harness import ProcessServer, copy_policies
from test_console_browser import Watched, chromium  # noqa: F401 — the module's browser fixture
from test_console_replays import seed_replay


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-replays-browser")
    policies = copy_policies(tmp / "policies")
    (policies / "console_demo.regua").write_text(DEMO_POLICY, encoding="utf-8")
    with ProcessServer(tmp, policies=policies) as running:
        with running.client() as api:
            running.job = seed_replay(api)
        yield running


@pytest.fixture
def tab(chromium, server):  # noqa: F811 — chromium is the imported fixture
    watched = Watched(chromium, server.url)
    yield watched
    watched.context.close()


def test_from_the_list_to_a_report_then_deleted(tab, server):
    job_id = server.job["id"]
    tab.sign_in("/console/replays")
    assert "Replays" in tab.page.locator("header nav a").all_inner_texts()
    tab.page.locator(f"#replay-{job_id} a").click()
    tab.page.wait_for_url(f"**/console/replays/{job_id}")
    assert tab.page.inner_text("#changed") == "3"
    transitions = tab.page.locator("#transitions tbody tr")
    assert transitions.nth(0).inner_text().split() == ["approve", "1", "3"]  # 1 stays, 3 go to review
    text = tab.page.inner_text("main")
    assert "Maria" not in text and NAME not in text and CPF not in text
    assert tab.page.locator("#top-changes tbody tr").count() == 3
    tab.shot("replay")
    tab.page.get_by_role("button", name="Apagar este replay").click()
    tab.page.wait_for_url("**/console/replays")
    assert tab.page.locator(f"#replay-{job_id}").count() == 0
    tab.shot("replays")
    tab.check()
