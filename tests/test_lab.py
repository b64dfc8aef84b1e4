"""The policy lab (issue 16): a real server writes decisions with their connector answers, replay
reads them back; replaying the champion changes nothing (hypothesis); backtest and swap sets on
the shipped synthetic history; hostile inputs give located, clear errors."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_harness import ThreadedServer, b2b_order, fresh_document, sandbox_settings

from regua.cli import main
from regua.engine import compile_file
from regua.engine.connectors import ConnectorError, Connectors, Fixture
from regua.engine.recorded import encode_answers
from regua.lab.backtest import Backtester
from regua.lab.dataset import read_rows
from regua.lab.parallel import run
from regua.lab.replay import Replayer
from regua.server.retention import purge
from regua.sqlite import connect

ROOT = Path(__file__).resolve().parent.parent
CHAMPION = ROOT / "policies" / "credito_b2b.regua"
CANDIDATE = ROOT / "examples" / "credito_b2b_candidato.regua"
HISTORY = ROOT / "examples" / "historico_b2b.csv"


def _copy(db: Path, target: Path) -> Path:
    """A consistent copy of a WAL-mode store (the file alone may lack the last commits)."""
    with sqlite3.connect(db) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return target


def _invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def served_log(tmp_path_factory):
    """A store holding decisions a real server made (sandbox bureau), flushed and closed."""
    tmp_path = tmp_path_factory.mktemp("lab")
    settings = sandbox_settings(tmp_path)
    with ThreadedServer(settings) as server, server.client() as client:
        profiles = ["clean"] * 12 + ["low_score"] * 4 + ["negativated"] * 4 + ["protest"] * 2 + ["down"] * 2
        for i, profile in enumerate(profiles):
            order = b2b_order(fresh_document(profile), valor_pedido=f"{5000 + 7000 * i}.00", uf="SP" if i % 2 else "RJ")
            order.pop("uf")
            response = client.post("/evaluate/credito_b2b", json={"input": order})
            assert response.status_code == 200, response.text
    return Path(settings.store.path), len(profiles)


def test_the_server_records_each_lookup_answer_masked(served_log):
    db, count = served_log
    rows = list(connect(str(db)).query("select input, connector_answers from decisions"))
    assert len(rows) == count
    answers = json.loads(rows[0]["connector_answers"])
    serasa = next(a for a in answers if a["connector"] == "bureau.serasa")
    document = json.loads(rows[0]["input"])["cnpj"]
    assert serasa["args"][0].endswith(document[-2:]) and document not in rows[0]["connector_answers"]
    assert serasa["status"] == "ok" and "score" in serasa["answer"]


def test_replaying_the_champion_on_the_served_log_changes_nothing(served_log, tmp_path):
    db, count = served_log
    result = _invoke("replay", CHAMPION, "--db", db, "--json", tmp_path / "r.json", "--csv", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["replayed"], report["changed"], report["errors"]) == (count, 0, 0)
    assert report["needs_live_lookup"]["decisions"] == 0
    assert all(t["before"] == t["after"] for t in report["transitions"])
    assert list(csv.reader((tmp_path / "c.csv").open()))[1:] == []


def test_replaying_a_candidate_reports_what_changes(served_log, tmp_path):
    db, count = served_log
    # Two purchase cycles at most, not three: lower limits for customers with a good history.
    candidate = tmp_path / "dois_ciclos.regua"
    candidate.write_text(CHAMPION.read_text().split("\ntest ")[0].replace(">= 3 -> 3", ">= 3 -> 2"), encoding="utf-8")
    result = _invoke("replay", candidate, "--db", db, "--json", tmp_path / "r.json", "--csv", tmp_path / "c.csv",
                     "--by", "ciclos_sem_atraso")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["replayed"] == count and report["changed"] > 0
    changed_rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert len(changed_rows) == report["changed"]
    assert sum(t["count"] for t in report["transitions"]) == count
    rules = {r["rule"]: r for r in report["rules"]}
    assert rules["acima_do_limite"]["fired_after"] > rules["acima_do_limite"]["fired_before"]
    assert rules["acima_do_limite"]["changes"] > 0
    limite = report["outputs"]["limite"]
    assert limite["down"] > 0 and limite["up"] == 0 and limite["total_delta"].startswith("-")
    assert any(t["before"] == "approve" and t["after"] == "review" for t in report["transitions"])
    assert report["cuts"]["ciclos_sem_atraso"][0]["replayed"] == count
    printed = _invoke("replay", candidate, "--db", db).output
    assert "outcomes (rows: before, columns: after)" in printed and "top changed decisions" in printed


def test_a_candidate_that_reads_a_new_connector_needs_a_live_lookup(served_log, tmp_path):
    db, count = served_log
    source = CHAMPION.read_text().replace("let conta = portfolio.customer(cnpj)",
                                          "let conta = portfolio.customer(cnpj)\nlet outro = bureau.boavista(cnpj)")
    source = source.replace("rule bureau_indisponivel\n  when not available(relatorio)",
                            "rule bureau_indisponivel\n  when not available(relatorio) or not available(outro)")
    candidate = tmp_path / "novo.regua"
    candidate.write_text(source.split("\ntest ")[0], encoding="utf-8")
    result = _invoke("replay", candidate, "--db", db, "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # When the bureau was down the candidate never reaches its new lookup: those replay.
    live = report["needs_live_lookup"]
    assert live["decisions"] == live["connectors"]["bureau.boavista"] == count - 2
    assert report["replayed"] == 2 and report["changed"] == 0


def test_purge_removes_recorded_answers_with_the_input(served_log, tmp_path):
    db = _copy(served_log[0], tmp_path / "copy.db")
    purge(str(db), dt.date.today() + dt.timedelta(days=2), "test")
    assert list(connect(str(db)).query("select count(*) n from decisions where connector_answers is not null")) == \
        [{"n": 0}]
    result = _invoke("replay", CHAMPION, "--db", db, "--json", "-")
    assert json.loads(result.output)["window"]["purged_skipped"] == served_log[1]


def test_rows_whose_shape_changed_are_counted_never_fatal(served_log, tmp_path):
    db = _copy(served_log[0], tmp_path / "copy.db")
    conn = connect(str(db))
    ids = [r["id"] for r in conn.query("select id from decisions order by id limit 3")]
    conn.execute("update decisions set input = json_set(input, '$.campo_antigo', 1) where id = ?", [ids[0]])
    conn.execute("update decisions set input = json_remove(input, '$.valor_pedido') where id = ?", [ids[1]])
    conn.execute("update decisions set input = 'not json' where id = ?", [ids[2]])
    ids4 = [r["id"] for r in conn.query("select id from decisions order by id limit 1 offset 3")]
    conn.execute("""update decisions set body = '{"outcome": "approve", "reasons": [1]}' where id = ?""", ids4)
    report = json.loads(_invoke("replay", CHAMPION, "--db", db, "--json", "-").output)
    assert report["errors"] == 3 and report["error_codes"] == {"DAMAGED_RECORD": 2, "INPUT_SHAPE": 1}
    damaged = {e["id"]: e["detail"] for e in report["error_list"] if e["code"] == "DAMAGED_RECORD"}
    assert "stored input is not JSON" in damaged[ids[2]]
    assert "stored answer is not a decision" in damaged[ids4[0]] and "reasons[0]" in damaged[ids4[0]]
    assert report["fields"]["dropped"] == {"campo_antigo": 1}
    shape = next(e for e in report["error_list"] if e["code"] == "INPUT_SHAPE")
    assert shape["id"] == ids[1] and "input.valor_pedido" in shape["detail"]
    assert report["replayed"] == served_log[1] - 3 and report["changed"] == 0
    # a field the candidate dropped can still cut the report: the stored input is what is cut
    cuts = json.loads(_invoke("replay", CHAMPION, "--db", db, "--by", "campo_antigo", "--json", "-").output)["cuts"]
    assert {"value": "1", "replayed": 1, "changed": 0} in cuts["campo_antigo"]


def test_replay_usage_errors(served_log, tmp_path):
    result = _invoke("replay", CHAMPION, "--db", tmp_path / "none.db")
    assert result.exit_code == 2 and "no such database" in result.output
    result = _invoke("replay", CHAMPION, "--db", served_log[0], "--policy", "outra")
    assert result.exit_code == 2 and "decisions are of: credito_b2b" in result.output


def test_a_candidate_that_does_not_compile_is_located(served_log, tmp_path):
    broken = tmp_path / "quebrada.regua"
    broken.write_text(CHAMPION.read_text().replace("when score <= 300", "when scor <= 300"), encoding="utf-8")
    result = CliRunner().invoke(main, ["replay", str(broken), "--db", str(served_log[0])])
    assert result.exit_code == 1
    line = next(i for i, text in enumerate(broken.read_text().splitlines(), 1) if "scor <=" in text)
    assert f"quebrada.regua:{line}:" in result.output


# ---- the champion against itself, on any facts (hypothesis) ----------------------------------

_champion = compile_file(CHAMPION)

restrictions = st.lists(st.fixed_dictionaries({
    "kind": st.sampled_from(["pefin", "refin", "protest", "bounced_cheque", "judicial_recovery", "lawsuit"]),
    "amount": st.integers(0, 20_000).map(lambda n: f"{n}.00"),
    "date": st.dates(dt.date(2020, 1, 1), dt.date(2026, 1, 1)).map(str)}), max_size=4)
bureau = st.one_of(st.none(), st.fixed_dictionaries({
    "score": st.fixed_dictionaries({"value": st.integers(0, 1000)}), "restrictions": restrictions,
    "inquiries": st.lists(st.fixed_dictionaries({"date": st.dates(dt.date(2025, 9, 1), dt.date(2026, 1, 1)).map(str),
                                                 "inquirer": st.just("Banco")}), max_size=6),
    "registration_status": st.sampled_from(["active", "active", "closed"])}))
customer = st.one_of(st.none(), st.fixed_dictionaries({
    "known": st.booleans(), "has_limit": st.booleans(), "limit": st.integers(0, 200_000).map(lambda n: f"{n}.00"),
    "limit_blocked": st.booleans(), "days_late_now": st.integers(0, 90), "open_balance": st.just("1000.00")}))
orders = st.fixed_dictionaries({
    "cnpj": st.just("11.222.333/0001-81"),
    "faturamento_anual": st.integers(0, 5_000_000).map(lambda n: f"{n}.00"),
    "data_fundacao": st.dates(dt.date(1990, 1, 1), dt.date(2025, 12, 1)).map(str),
    "ticket_medio": st.integers(0, 100_000).map(lambda n: f"{n}.00"),
    "valor_pedido": st.integers(0, 200_000).map(lambda n: f"{n}.00"),
    "dias_atraso_max": st.integers(0, 120), "ciclos_sem_atraso": st.integers(0, 10)})


def _connectors(serasa, conta) -> Connectors:
    failed = Fixture(failure=ConnectorError("TIMEOUT"))
    return Connectors({"bureau.serasa": failed if serasa is None else Fixture(serasa),
                       "portfolio.customer": failed if conta is None else Fixture(conta)})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=st.lists(st.tuples(orders, bureau, customer, st.dates(dt.date(2025, 6, 1), dt.date(2026, 12, 31))),
                    min_size=1, max_size=12),
       chunk=st.integers(1, 5))
def test_replaying_the_champion_against_itself_changes_nothing(log, chunk):
    """For any decision log the champion wrote (any facts, any dates, bureau up or down), replaying
    the champion over it, in chunks of any size, changes nothing and replays every decision."""
    records = []
    for i, (order, serasa, conta, day) in enumerate(log):
        decision = _champion.evaluate(order, connectors=_connectors(serasa, conta), as_of=day)
        records.append({"id": f"X{i:04d}", "as_of": day.isoformat(), "outcome": decision.outcome,
                        "body": json.dumps(decision.to_dict()), "input": json.dumps(order),
                        "connector_answers": encode_answers(decision.connector_calls)})
    report = run(Replayer, [], records, {}, chunk_size=chunk, prepared=[_champion]).to_dict()
    assert (report["replayed"], report["changed"], report["errors"]) == (len(log), 0, 0), report
    assert report["needs_live_lookup"]["decisions"] == 0 and report["top_changes"] == []
    assert all(t["before"] == t["after"] for t in report["transitions"])
    assert all(r["fired_before"] == r["fired_after"] and r["changes"] == 0 for r in report["rules"])


# ---- backtest ---------------------------------------------------------------------------------

def test_backtest_runs_from_the_readme_in_one_command():
    result = _invoke("backtest", CHAMPION, "--data", HISTORY, "--label", "inadimplente", "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"] == report["evaluated"] >= 2000 and report["errors"] == 0
    result_ = report["result"]
    assert abs(sum(result_["rates"].values()) - 1) < 1e-3
    # the synthetic default label depends on the risk the policy reads: declined are worse
    assert result_["bad_rate_declined"] > 2 * result_["bad_rate_approved"]


def test_swap_sets_add_up_and_parallel_equals_serial():
    champion, candidate = compile_file(CHAMPION), compile_file(CANDIDATE)
    sources = [(CANDIDATE.read_text(), str(CANDIDATE)), (CHAMPION.read_text(), str(CHAMPION))]
    options = {"label": "inadimplente", "amount": "valor_pedido", "by": ("uf",), "as_of": None}
    rows = list(read_rows(HISTORY))[:1200]
    serial = run(Backtester, sources, rows, options, workers=1, prepared=[candidate, champion]).to_dict()
    parallel = run(Backtester, sources, rows, options, workers=2, chunk_size=100).to_dict()
    assert serial == parallel
    swaps = serial["swap_sets"]
    assert sum(s["count"] for s in swaps.values()) == 1200
    assert swaps["swap_in"]["count"] + swaps["both_approve"]["count"] == serial["result"]["outcomes"]["approve"]
    assert swaps["swap_out"]["count"] + swaps["both_approve"]["count"] == serial["against_result"]["outcomes"]["approve"]


def test_broken_dataset_rows_are_listed_with_row_and_column(tmp_path):
    lines = HISTORY.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    bad = tmp_path / "ruim.csv"
    rows = [lines[0], lines[1], lines[2].replace(lines[2].split(",")[4], "muito", 1), lines[3] + ",extra"]
    rows.append(lines[4][: lines[4].index('"{')] + '"{nao e json",0')
    bad.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = json.loads(_invoke("backtest", CHAMPION, "--data", bad, "--json", "-").output)
    assert (report["rows"], report["evaluated"], report["errors"]) == (4, 1, 3)
    errors = {e["row"]: e for e in report["error_list"]}
    assert errors[3]["column"] == header[4] and "input.faturamento_anual" in errors[3]["message"]
    assert "more than the header" in errors[4]["message"]
    assert errors[5]["column"] == "bureau.serasa" and "not JSON" in errors[5]["message"]


def test_a_label_column_of_text_is_a_clear_error(tmp_path):
    data = tmp_path / "texto.csv"
    with HISTORY.open(encoding="utf-8") as source, data.open("w", encoding="utf-8", newline="") as target:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(target, fieldnames=reader.fieldnames)
        writer.writeheader()
        for i, row in zip(range(20), reader):
            writer.writerow({**row, "setor": row["setor"], "inadimplente": "talvez" if i % 2 else "quem sabe"})
    result = _invoke("backtest", CHAMPION, "--data", data, "--label", "setor")
    assert result.exit_code == 2 and "--label setor" in result.output and "not a 0/1 label" in result.output
    result = _invoke("backtest", CHAMPION, "--data", data, "--label", "inadimplencia")
    assert result.exit_code == 2 and "no such column" in result.output
    result = _invoke("backtest", CHAMPION, "--data", tmp_path / "texto.csv", "--label", "inadimplente")
    assert result.exit_code == 2 and "row 2" in result.output


def test_backtest_reads_json_lines(tmp_path):
    data = tmp_path / "pedidos.jsonl"
    with HISTORY.open(encoding="utf-8") as source:
        rows = [dict(row, **{"bureau.serasa": json.loads(row["bureau.serasa"])}) for _, row in
                zip(range(30), csv.DictReader(source))]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    report = json.loads(_invoke("backtest", CHAMPION, "--data", data, "--label", "inadimplente", "--json", "-").output)
    assert (report["rows"], report["evaluated"], report["errors"]) == (31, 30, 1)
    assert report["error_list"][0]["row"] == 31


def test_a_replay_split_in_any_chunks_reports_the_same(served_log, tmp_path):
    """The merged report keeps only the top changed decisions and counts of deltas, so the driver's
    memory does not grow with the log; any split into chunks gives the same report."""
    from regua.server import replay_source

    db, count = served_log
    candidate = CHAMPION.read_text().split("\ntest ")[0].replace(">= 3 -> 3", ">= 3 -> 2")
    path = tmp_path / "dois_ciclos.regua"
    path.write_text(candidate, encoding="utf-8")
    records = list(replay_source.records(str(db), replay_source.Window("credito_b2b")))
    reports = [run(Replayer, [(candidate, str(path))], records, {"keep": 3}, chunk_size=size).to_dict(3)
               for size in (1, 4, 1000)]
    assert reports[0] == reports[1] == reports[2]
    assert reports[0]["changed"] > 3 and len(reports[0]["top_changes"]) == 3
    histogram = reports[0]["outputs"]["limite"]["distribution"]["histogram"]
    assert sum(n for _, n in histogram) == reports[0]["outputs"]["limite"]["down"]


def _assert_offline_page(page: str) -> None:
    """One file that opens offline: no script, no link, no image or font fetched; the only URL is
    the SVG namespace."""
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    lowered = page.lower()
    assert "<script" not in lowered and " src=" not in lowered and " href=" not in lowered
    assert set(re.findall(r"https?://[^\"' )]+", page)) == {"http://www.w3.org/2000/svg"}


def test_html_and_csv_reports_of_a_replay(served_log, tmp_path):
    db, count = served_log
    candidate = tmp_path / "dois_ciclos.regua"
    candidate.write_text(CHAMPION.read_text().split("\ntest ")[0].replace(">= 3 -> 3", ">= 3 -> 2"), encoding="utf-8")
    result = _invoke("replay", candidate, "--db", db, "--html", tmp_path / "r.html", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    _assert_offline_page(page)
    report = json.loads((tmp_path / "r.json").read_text())
    assert page.count("<svg") >= 3  # outcomes before/after, the limit deltas, the rules
    assert f"<b>{report['changed']}</b>changed" in page and "acima_do_limite" in page
    assert report["top_changes"][0]["id"] in page and not list(tmp_path.glob("*.partial"))


def test_html_and_csv_reports_of_a_backtest_escape_the_data(tmp_path):
    data = tmp_path / "pedidos.csv"
    with HISTORY.open(encoding="utf-8") as source, data.open("w", encoding="utf-8", newline="") as target:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(target, fieldnames=reader.fieldnames)
        writer.writeheader()
        for i, row in zip(range(300), reader):
            writer.writerow({**row, "setor": "<script>alert(1)</script>" if i == 7 else row["setor"]})
    result = _invoke("backtest", CANDIDATE, "--against", CHAMPION, "--data", data, "--label", "inadimplente",
                     "--amount", "valor_pedido", "--by", "setor", "--html", tmp_path / "b.html", "--csv",
                     tmp_path / "b.csv", "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "b.html").read_text(encoding="utf-8")
    _assert_offline_page(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and page.count("<svg") == 3
    report = json.loads((tmp_path / "b.json").read_text())
    rows = list(csv.DictReader((tmp_path / "b.csv").open(encoding="utf-8")))
    assert len(rows) == report["evaluated"] == 300
    assert list(rows[0]) == ["row", "outcome", "against_outcome", "limite", "limite_against", "label", "amount"]
    swap_in = sum(r["outcome"] == "approve" != r["against_outcome"] for r in rows)
    assert swap_in == report["swap_sets"]["swap_in"]["count"]
    assert sum(int(r["label"]) for r in rows) == sum(s["bad"] for s in report["swap_sets"].values())


# ---- datasets: Parquet, Excel pt-BR, encodings -----------------------------------------------

def _backtest(data, *extra) -> dict:
    result = _invoke("backtest", CANDIDATE, "--against", CHAMPION, "--data", data, "--label", "inadimplente",
                     "--amount", "valor_pedido", "--by", "setor", "--json", "-", *extra)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    report.pop("seconds")
    return report


def _history(n: int) -> list[dict]:
    with HISTORY.open(encoding="utf-8") as source:
        return [row for _, row in zip(range(n), csv.DictReader(source))]


def test_backtest_reads_parquet_as_it_reads_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = _history(400)
    (tmp_path / "h.csv").write_text("\n".join(HISTORY.read_text(encoding="utf-8").splitlines()[:401]) + "\n",
                                    encoding="utf-8")
    expected = _backtest(tmp_path / "h.csv")
    # typed columns: dates, decimals, integers, a boolean label; the bureau answer as JSON text
    table = pa.table({
        **{k: [r[k] for r in rows] for k in rows[0] if k not in ("data_fundacao", "valor_pedido", "inadimplente",
                                                                  "dias_atraso_max", "as_of")},
        "data_fundacao": [dt.date.fromisoformat(r["data_fundacao"]) for r in rows],
        "as_of": [dt.date.fromisoformat(r["as_of"]) for r in rows] if "as_of" in rows[0] else [None] * len(rows),
        "valor_pedido": pa.array([Decimal(r["valor_pedido"]) for r in rows], pa.decimal128(14, 2)),
        "dias_atraso_max": [int(r["dias_atraso_max"]) for r in rows],
        "inadimplente": [r["inadimplente"] == "1" for r in rows]})
    pq.write_table(table, tmp_path / "h.parquet", row_group_size=150)
    assert _backtest(tmp_path / "h.parquet") == expected
    # the answer as a nested column (a struct) reads the same
    nested = table.set_column(table.column_names.index("bureau.serasa"), "bureau.serasa",
                              pa.array([json.loads(r["bureau.serasa"]) for r in rows]))
    pq.write_table(nested, tmp_path / "n.parquet")
    assert _backtest(tmp_path / "n.parquet", "--workers", "2") == expected
    (tmp_path / "falso.parquet").write_bytes(b"PAR1 not really")
    result = _invoke("backtest", CHAMPION, "--data", tmp_path / "falso.parquet")
    assert result.exit_code == 2 and "not a Parquet file" in result.output


def test_backtest_reads_csv_as_excel_pt_br_saves_it(tmp_path):
    rows = _history(300)
    fields = list(rows[0])

    def brazilian(name, value):
        if name in ("valor_pedido", "faturamento_anual", "ticket_medio") and value:
            whole, _, cents = Decimal(value).quantize(Decimal("0.01")).to_eng_string().partition(".")
            return f"{int(whole):,}".replace(",", ".") + "," + cents
        if name == "data_fundacao":
            year, month, day = value.split("-")
            return f"{day}/{month}/{year}"
        if name == "inadimplente":
            return "VERDADEIRO" if value == "1" else "FALSO"
        return value

    with (tmp_path / "utf8.csv").open("w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=fields)
        writer.writeheader()
        writer.writerows(dict(r, setor=r["setor"].replace("construcao", "construção")) for r in rows)
    with (tmp_path / "excel.csv").open("w", encoding="cp1252", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=fields, delimiter=";")
        writer.writeheader()
        writer.writerows({k: brazilian(k, v) for k, v in dict(r, setor=r["setor"].replace("construcao", "construção"))
                          .items()} for r in rows)
    excel = _backtest(tmp_path / "excel.csv")
    assert excel == _backtest(tmp_path / "utf8.csv") and excel["errors"] == 0
    assert "construção" in {c["value"] for c in excel["cuts"]["setor"]}


def test_a_file_that_changes_encoding_midway_is_refused_with_its_line(tmp_path):
    text = HISTORY.read_text(encoding="utf-8")
    lines = text.splitlines()
    body = "\n".join(lines[:1] + (lines[1:] * 3)[:8000]) + "\n"  # more than the first megabyte
    data = tmp_path / "misturado.csv"
    data.write_bytes(body.encode("utf-8") + lines[1].replace("varejo", "construção").encode("cp1252") + b"\n")
    out = tmp_path / "linhas.csv"
    result = _invoke("backtest", CHAMPION, "--data", data, "--csv", out)
    assert result.exit_code == 2 and "misturado.csv:8002: not UTF-8 text" in result.output
    assert not out.exists() and not list(tmp_path.glob("*.partial"))  # nothing half-written


# ---- --live --budget: lookups the original never made, through the connector runtime ---------

def test_live_lookups_go_through_the_runtime_and_cache_within_the_budget(served_log, tmp_path):
    from http.server import BaseHTTPRequestHandler

    from loopback import LoopbackHTTP, reply_json

    asked: list[str] = []

    class Boavista(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            reply_json(self, {"score": {"value": 820, "bureau": "boavista"}, "restrictions": [], "inquiries": [],
                              "registration_status": "active"})

        def log_message(self, *args):
            pass

    db, count = served_log
    db = _copy(db, tmp_path / "copy.db")
    source = CHAMPION.read_text().replace("let conta = portfolio.customer(cnpj)",
                                          "let conta = portfolio.customer(cnpj)\nlet outro = bureau.boavista(cnpj)")
    source = source.replace("rule bureau_indisponivel\n  when not available(relatorio)",
                            "rule bureau_indisponivel\n  when not available(relatorio) or not available(outro)")
    candidate = tmp_path / "novo.regua"
    candidate.write_text(source.split("\ntest ")[0], encoding="utf-8")
    with LoopbackHTTP(Boavista) as provider:
        config = tmp_path / "regua.toml"
        config.write_text(f"""[[plugins.config.http_bureau.bureaus]]
name = "boavista"
base_url = "{provider.base_url}"
path = "/v1/{{document}}"
ttl = 3600
cost = "1.50"
retries = 0
""", encoding="utf-8")
        args = ["replay", candidate, "--db", db, "--live", "--budget", "R$ 4,50", "--config", config, "--json", "-"]
        first = json.loads(_invoke(*args).output)
        assert first["live_lookups"] == {"decisions": 3, "paid": 3, "cached": 0, "cost": "4.50", "budget": "4.50"}
        assert first["needs_live_lookup"]["decisions"] == count - 2 - 3 and len(asked) == 3
        assert first["replayed"] == 2 + 3 and first["errors"] == 0
        # the answers were cached in the store: asked again, they are free, and the budget buys three more
        second = json.loads(_invoke(*args).output)
        assert second["live_lookups"] == {"decisions": 6, "paid": 3, "cached": 3, "cost": "4.50", "budget": "4.50"}
        assert len(asked) == 6 and len(set(asked)) == 6
        printed = _invoke(*args[:-2]).output
        assert "live lookups: 9 decision(s)" in printed and "R$ 4.50 of a budget of R$ 4.50" in printed
    result = _invoke("replay", candidate, "--db", db, "--live")
    assert result.exit_code == 2 and "--live and --budget go together" in result.output
    result = _invoke("replay", candidate, "--db", db, "--live", "--budget", "muito")
    assert result.exit_code == 2 and "not an amount in BRL" in result.output


def test_a_sample_is_drawn_from_the_window_reproducibly(served_log):
    from regua.server import replay_source

    db, count = served_log
    window = replay_source.Window("credito_b2b")
    everything = [r["id"] for r in replay_source.records(str(db), window)]
    drawn = [r["id"] for r in replay_source.records(str(db), window, sample=5)]
    assert len(drawn) == 5 and drawn == sorted(drawn) and set(drawn) <= set(everything)
    assert drawn == [r["id"] for r in replay_source.records(str(db), window, sample=5)]  # same seed, same draw
    assert [r["id"] for r in replay_source.records(str(db), window, sample=count + 10)] == everything
    report = json.loads(_invoke("replay", CHAMPION, "--db", db, "--sample", "5", "--json", "-").output)
    assert (report["total"], report["replayed"]) == (5, 5)
