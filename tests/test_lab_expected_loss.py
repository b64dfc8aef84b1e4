"""Expected loss in the backtest report (issue 16): the exposure of the bad applications (loss given
default 100%) among the approved and the declined, and its share of the labelled exposure; exact
decimals, the same whatever the chunks and processes; absent without a label, None without amounts."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from regua.cli import main
from regua.engine.compiler import compile_policy
from regua.lab.backtest import Backtester
from regua.lab.dataset import read_rows
from regua.lab.parallel import run

POLICY = """policy faixas kind credit
input
  score: int
rule baixo
  when score < 300
  deny "R1" "score baixo"
rule medio
  when score < 600
  review "R2" "score medio"
default approve
"""

# score, label, amount: an unlabelled row and rows without an amount stay out of the exposure
ROWS = [(700, "1", "1000.10"), (650, "0", "2000.00"), (800, "1", "300.05"), (900, "", "5000.00"),
        (750, "0", ""), (500, "1", "400.00"), (550, "0", "600.00"), (100, "1", "250.25"), (200, "1", ""),
        (250, "0", "749.70")]


def _outcome(score: int) -> str:
    return "deny" if score < 300 else "review" if score < 600 else "approve"


def _by_hand(outcomes: set[str]) -> dict:
    exposure = sum((Decimal(a) for s, label, a in ROWS if _outcome(s) in outcomes and label and a), Decimal(0))
    loss = sum((Decimal(a) for s, label, a in ROWS if _outcome(s) in outcomes and label == "1" and a), Decimal(0))
    return {"exposure": exposure, "expected_loss": loss, "expected_loss_rate": round(float(loss / exposure), 4)}


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "historico.csv"
    path.write_text("score,inadimplente,valor\n" + "".join(f"{s},{label},{a}\n" for s, label, a in ROWS),
                    encoding="utf-8")
    policy = tmp_path / "faixas.regua"
    policy.write_text(POLICY, encoding="utf-8")
    return policy, path


def _read(group: dict) -> dict:
    return {"exposure": Decimal(group["exposure"]), "expected_loss": Decimal(group["expected_loss"]),
            "expected_loss_rate": group["expected_loss_rate"]}


def test_expected_loss_is_the_bad_exposure_of_each_group(dataset):
    policy, path = dataset
    options = {"label": "inadimplente", "amount": "valor", "by": (), "as_of": None}
    prepared = compile_policy(POLICY, str(policy))
    report = run(Backtester, [(POLICY, str(policy))], read_rows(path), options, prepared=[prepared]).to_dict()
    losses = report["result"]["expected_loss"]
    assert _read(losses["approved"]) == _by_hand({"approve"})
    assert _read(losses["declined"]) == _by_hand({"review", "deny"})
    assert _read(losses["review"]) == _by_hand({"review"})
    assert _read(losses["deny"]) == _by_hand({"deny"})
    # the figures the hand computation gives, written out: 1000.10 + 300.05 of 3300.15 approved
    assert losses["approved"] == {"exposure": "3300.15", "expected_loss": "1300.15", "expected_loss_rate": 0.394}
    assert losses["declined"]["expected_loss"] == "650.25" and losses["declined"]["exposure"] == "1999.95"


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_expected_loss_merges_exactly_across_chunks_and_processes(dataset, chunk_size):
    policy, path = dataset
    options = {"label": "inadimplente", "amount": "valor", "by": (), "as_of": None}
    sources = [(POLICY, str(policy))]
    serial = run(Backtester, sources, read_rows(path), options, chunk_size=100).to_dict()
    chunked = run(Backtester, sources, read_rows(path), options, chunk_size=chunk_size).to_dict()
    parallel = run(Backtester, sources, read_rows(path), options, workers=2, chunk_size=chunk_size).to_dict()
    assert serial == chunked == parallel
    assert serial["result"]["expected_loss"]["approved"]["expected_loss"] == "1300.15"


def test_without_amounts_expected_loss_is_none_and_without_a_label_absent(dataset):
    policy, path = dataset
    sources = [(POLICY, str(policy))]
    counted = run(Backtester, sources, read_rows(path), {"label": "inadimplente"}).to_dict()["result"]
    assert counted["expected_loss"] == {"approved": None, "declined": None, "deny": None, "review": None}
    assert counted["bad_rate_approved"] == round(2 / 4, 4)  # the count-based figure stays
    unlabelled = run(Backtester, sources, read_rows(path), {"amount": "valor"}).to_dict()["result"]
    assert "expected_loss" not in unlabelled and "bad_rates" not in unlabelled


def test_the_table_and_the_html_show_expected_loss(dataset, tmp_path):
    policy, path = dataset
    html = tmp_path / "report.html"
    args = ["backtest", str(policy), "--against", str(policy), "--data", str(path), "--label", "inadimplente",
            "--amount", "valor"]
    result = CliRunner().invoke(main, [*args, "--html", str(html)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") >= 3}
    assert lines["expected loss: approved"].count("1300.15") == 2  # POLICY and --against
    assert lines["expected loss: declined"].count("650.25") == 2
    assert lines["expected loss rate: approved"].count("39.4%") == 2
    page = html.read_text(encoding="utf-8")
    assert "<td>expected loss: approved</td><td>R$ 1.300,15</td>" in page and "100%" in page
    data = json.loads(CliRunner().invoke(main, [*args, "--json", "-"], catch_exceptions=False).output)
    assert data["against_result"]["expected_loss"] == data["result"]["expected_loss"]
