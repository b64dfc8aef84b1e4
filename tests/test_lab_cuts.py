"""`--by` on connector facts and in bands (issue 16): a replay cut by what the recorded bureau
answer said (its score band), a backtest by a connector column's field; bad entries are usage
errors naming them; bands hold their values (hypothesis)."""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from server_harness import ThreadedServer, assert_error, b2b_order, fresh_document, sandbox_settings

from regua.cli import main
from regua.lab.cuts import CutError, group_order, group_text, parse_cuts

ROOT = Path(__file__).resolve().parent.parent
CHAMPION = ROOT / "policies" / "credito_b2b.regua"
CANDIDATE = ROOT / "examples" / "credito_b2b_candidato.regua"
HISTORY = ROOT / "examples" / "historico_b2b.csv"


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _band(score, width=100) -> str:
    low = score // width * width
    return f"[{low}, {low + width})"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real server's decisions (sandbox bureau: scores by profile), flushed and closed."""
    tmp_path = tmp_path_factory.mktemp("cuts")
    settings = sandbox_settings(tmp_path)
    with ThreadedServer(settings) as server, server.client() as client:
        for i, profile in enumerate(["clean"] * 5 + ["low_score"] * 3 + ["negativated"] * 2 + ["down"] * 2):
            order = b2b_order(fresh_document(profile), valor_pedido=f"{5000 + 9000 * i}.00")
            assert client.post("/evaluate/credito_b2b", json={"input": order}).status_code == 200
    return settings, 12


def _recorded_scores(db) -> list:
    """Each decision's recorded bureau score (None: the bureau did not answer), read independently."""
    scores = []
    with sqlite3.connect(db) as conn:
        for (answers,) in conn.execute("select connector_answers from decisions"):
            entry = next((a for a in json.loads(answers or "[]") if a["connector"] == "bureau.serasa"
                          and "answer" in a), None)
            scores.append(entry["answer"]["score"]["value"] if entry else None)
    return scores


def test_a_replay_cuts_by_the_recorded_bureau_score_band(served, tmp_path):
    settings, count = served
    db = settings.store.path
    result = _invoke("replay", CANDIDATE, "--db", db, "--by", "bureau.serasa.score.value:100,bureau.serasa.restrictions",
                     "--json", tmp_path / "r.json", "--csv", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    expected = Counter("" if s is None else _band(s) for s in _recorded_scores(db))
    bands = report["cuts"]["bureau.serasa.score.value:100"]
    assert {g["value"]: g["replayed"] for g in bands} == dict(expected) and len(expected) >= 3
    assert sum(g["replayed"] for g in bands) == report["replayed"] == count
    assert sum(g["changed"] for g in bands) == report["changed"]
    lows = [g["value"] for g in bands if g["value"]]
    assert lows == sorted(lows, key=lambda v: int(v[1:].split(",")[0]))  # bands in numeric order
    assert {g["value"] for g in report["cuts"]["bureau.serasa.restrictions"]} <= {"", "0", "1", "2", "3"}
    changes = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert len(changes) == report["changed"] and all(c["bureau.serasa.score.value:100"] in expected for c in changes)


def test_the_cuts_are_the_same_over_http(served):
    settings, count = served
    with ThreadedServer(settings) as server, server.client() as client:
        started = client.post("/replays", json={"candidate": CANDIDATE.read_text(encoding="utf-8"),
                                                "by": ["bureau.serasa.score.value:100"]})
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 120
        while (job := client.get(started.headers["location"]).json())["status"] == "running":
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["status"] == "done", job
        bands = job["report"]["cuts"]["bureau.serasa.score.value:100"]
        assert sum(g["replayed"] for g in bands) == count
        body = assert_error(client.post("/replays", json={"candidate": CANDIDATE.read_text(encoding="utf-8"),
                                                          "by": ["uf", "bureau.serasa"]}), 400, "INVALID_REQUEST")
        assert body["errors"][0]["location"] == "by[1]" and "bureau.serasa.score" in body["errors"][0]["message"]


def test_a_backtest_cuts_by_a_connector_column_field(tmp_path):
    result = _invoke("backtest", CHAMPION, "--data", HISTORY, "--by", "bureau.serasa.score.value:200,setor",
                     "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    with HISTORY.open(encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    expected = Counter(_band(json.loads(r["bureau.serasa"])["score"]["value"], 200) if r["bureau.serasa"] else ""
                       for r in rows)
    groups = report["cuts"]["bureau.serasa.score.value:200"]
    assert {g["value"]: sum(v for k, v in g.items() if k != "value") for g in groups} == dict(expected)
    assert sum(g.get("approve", 0) for g in groups) == report["result"]["outcomes"]["approve"]


@pytest.mark.parametrize("by, message", [
    ("bureau.serasa", "name a field of the connector's answer"),
    ("uf:0", "width is more than 0"),
    ("1; drop", "cut by an input field"),
])
def test_a_by_that_cannot_be_read_is_a_usage_error(served, by, message):
    settings, _ = served
    for args in (["replay", CANDIDATE, "--db", settings.store.path], ["backtest", CHAMPION, "--data", HISTORY]):
        result = CliRunner().invoke(main, [str(a) for a in args] + ["--by", by])
        assert result.exit_code == 2 and message in result.output and "--by" in result.output


def test_a_backtest_by_a_connector_without_a_column_is_a_usage_error():
    result = CliRunner().invoke(main, ["backtest", str(CHAMPION), "--data", str(HISTORY), "--by", "bureau.quod.score"])
    assert result.exit_code == 2 and "bureau.quod: the dataset has no such column" in result.output


def test_a_flattened_connector_column_is_neither_an_answer_nor_a_cut(tmp_path):
    """docs/lab.md: answers come from the connector's column (JSON or struct) only; a column
    `bureau.serasa.score.value` is ignored by the policy (as if the bureau did not answer) and
    does not serve `--by bureau.serasa.score.value`."""
    with HISTORY.open(encoding="utf-8") as source:
        rows = list(csv.DictReader(source))[:60]
    flat, unanswered = tmp_path / "flat.csv", tmp_path / "unanswered.csv"
    names = [n for n in rows[0] if n != "bureau.serasa"]
    for path, extra in ((flat, ["bureau.serasa.score.value"]), (unanswered, [])):
        with path.open("w", encoding="utf-8", newline="") as target:
            writer = csv.writer(target)
            writer.writerow(names + extra)
            for row in rows:
                score = [json.loads(row["bureau.serasa"])["score"]["value"]] if extra else []
                writer.writerow([row[n] for n in names] + score)
    reports = [json.loads(_invoke("backtest", CHAMPION, "--data", path, "--json", "-").output)["result"]
               for path in (flat, unanswered)]
    assert reports[0] == reports[1] and reports[0]["decisions"] == 60
    answered = tmp_path / "answered.csv"
    with answered.open("w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # the bureau's answer matters to these rows: read from its column, it changes the outcomes
    assert json.loads(_invoke("backtest", CHAMPION, "--data", answered, "--json", "-").output)["result"] != reports[0]
    result = CliRunner().invoke(main, ["backtest", str(CHAMPION), "--data", str(flat), "--by", "bureau.serasa.score.value"])
    assert result.exit_code == 2 and "bureau.serasa: the dataset has no such column" in result.output


@given(st.decimals(min_value=-10**9, max_value=10**9, places=2),
       st.sampled_from([Decimal("0.5"), Decimal(1), Decimal(7), Decimal(100), Decimal("2500.25")]))
def test_a_band_holds_its_value(value, width):
    low, high = (Decimal(part) for part in group_text(value, width)[1:-1].split(", "))
    assert low <= value < high and high - low == width and (low / width) == (low / width).to_integral_value()
    assert group_text(str(value), width) == group_text(value, width)


def test_values_that_are_not_numbers_or_scalars():
    assert group_text([1, 2, 3]) == "3" and group_text(True) == "true" and group_text(None) == ""
    assert group_text({"a": 1}) == "" and group_text("abc", Decimal(10)) == "" and group_text("NaN", Decimal(10)) == ""
    assert sorted(["[100, 200)", "", "SP", "[-100, 0)", "9", "10"], key=group_order) == \
        ["[-100, 0)", "9", "10", "[100, 200)", "", "SP"]
    cut = parse_cuts(["bureau.serasa.score.value"])[0]
    assert cut.value({}, {"bureau.serasa": {"score": {"value": 640}}}) == "640"
    assert cut.value({}, {"bureau.serasa": {"score": 640}}) == "" and cut.value({}, {}) == ""
    with pytest.raises(CutError):
        parse_cuts(["a.b.c:1e3"])
