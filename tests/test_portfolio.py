"""The collection portfolio: records, their checks, and `regua import` (CSV/JSON, never partial in silence)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regua.plugins.builtin.sandbox_bureau import sandbox_document
from regua.portfolio import Portfolio, PortfolioFileError, import_file, parse

REGUA = Path(sys.executable).with_name("regua")
CNPJ = "11.222.333/0001-81"
CPF = "529.982.247-25"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def customers_csv(tmp_path: Path, *rows: str) -> Path:
    return write(tmp_path / "clientes.csv", "id,document,name,uf,segment,email,phone,channels\n" + "\n".join(rows) + "\n")


GOOD_CUSTOMERS = (f"c1,{CNPJ},Comercial Alfa Ltda,SP,b2b,financeiro@alfa.com.br,+55 11 98765-4321,email|whatsapp",
                  f"c2,{CPF},Maria Souza,rj,b2c,,(21) 99876-5432,sms")


@pytest.fixture
def portfolio(tmp_path):
    store = Portfolio(str(tmp_path / "regua.db"))
    yield store
    store.close()


def test_valid_customers_are_imported_normalised(tmp_path, portfolio):
    report = import_file(portfolio, "customers", customers_csv(tmp_path, *GOOD_CUSTOMERS))
    assert report.ok and (report.read, report.imported) == (2, 2)
    alfa, maria = portfolio.get("customers", "c1"), portfolio.get("customers", "c2")
    assert (alfa["document"], alfa["kind"], alfa["uf"], json.loads(alfa["channels"])) == \
        ("11222333000181", "pj", "SP", ["email", "whatsapp"])
    assert (maria["document"], maria["kind"], maria["uf"], maria["phone"]) == ("52998224725", "pf", "RJ", "21998765432")


@pytest.mark.parametrize("row, field, code", [
    ("c3,123.456.789-00,Fulano,SP,b2c,,,", "document", "INVALID_DOCUMENT"),
    (f"c3,{CPF},Fulano,XX,b2c,,,", "uf", "VALUE"),
    (f"c3,{CPF},Fulano,SP,b2c,not-an-email,,", "email", "VALUE"),
    (f"c3,{CPF},Fulano,SP,b2c,,123,", "phone", "VALUE"),
    (f"c3,{CPF},Fulano,SP,b2c,,,email", "channels", "VALUE"),  # prefers e-mail, has none
    (f"c3,{CPF},Fulano,SP,b2c,,,pigeon", "channels[0]", "VALUE"),
    (f"c3,{CPF},,SP,b2c,,,", "name", "REQUIRED"),
])
def test_a_bad_customer_row_is_named_and_nothing_is_written(tmp_path, portfolio, row, field, code):
    report = import_file(portfolio, "customers", customers_csv(tmp_path, *GOOD_CUSTOMERS, row))
    assert [(where.rsplit(":", 1)[1], e.field, e.code) for where, e in report.rejected] == [("4", field, code)]
    assert report.imported == 0 and portfolio.count("customers") == 0  # all or nothing


def test_skip_invalid_writes_the_good_rows_and_still_lists_the_bad(tmp_path, portfolio):
    path = customers_csv(tmp_path, GOOD_CUSTOMERS[0], "c3,000,X,SP,b2c,,,", GOOD_CUSTOMERS[1])
    report = import_file(portfolio, "customers", path, skip_invalid=True)
    assert report.imported == 2 and [w for w, _ in report.rejected] == [f"{path}:3"]
    assert portfolio.count("customers") == 2


def test_receivables_check_amounts_dates_and_their_customer(tmp_path, portfolio):
    import_file(portfolio, "customers", customers_csv(tmp_path, *GOOD_CUSTOMERS))
    path = write(tmp_path / "titulos.csv", "\n".join([
        "id,customer_id,amount,issue_date,due_date,status,disputed",
        "t1,c1,1500,2026-10-01,2026-10-31,open,false",
        "t2,c9,10.00,2026-10-01,2026-10-31,open,false",
        "t3,c1,-5,2026-10-01,2026-10-31,open,false",
        "t4,c1,1.005,2026-10-01,2026-10-31,open,false",
        "t5,c1,10,2026-10-01,2026-09-30,open,false",
        "t6,c1,10,2026-10-01,2026-10-31,lost,false",
        "t7,c1,10,2026-10-01,2026-10-31,open,maybe",
        "t1,c2,20,2026-10-01,2026-10-31,open,true",
    ]) + "\n")
    report = import_file(portfolio, "receivables", path)
    found = {(where.rsplit(":", 1)[1], e.field, e.code) for where, e in report.rejected}
    assert found == {("3", "customer_id", "UNKNOWN_REFERENCE"), ("4", "amount", "VALUE"), ("5", "amount", "VALUE"),
                     ("6", "due_date", "VALUE"), ("7", "status", "VALUE"), ("8", "disputed", "TYPE"),
                     ("9", "id", "DUPLICATE")}
    assert portfolio.count("receivables") == 0
    report = import_file(portfolio, "receivables", path, skip_invalid=True)
    assert report.imported == 1 and portfolio.get("receivables", "t1")["amount"] == "1500.00"


def test_reimporting_updates_by_id(tmp_path, portfolio):
    import_file(portfolio, "customers", customers_csv(tmp_path, *GOOD_CUSTOMERS))
    changed = GOOD_CUSTOMERS[0].replace("Comercial Alfa Ltda", "Alfa Comércio S.A.")
    import_file(portfolio, "customers", customers_csv(tmp_path, changed))
    assert portfolio.count("customers") == 2 and portfolio.get("customers", "c1")["name"] == "Alfa Comércio S.A."


def test_payments_and_agreements_from_json(tmp_path, portfolio):
    import_file(portfolio, "customers", customers_csv(tmp_path, *GOOD_CUSTOMERS))
    import_file(portfolio, "receivables", write(tmp_path / "t.json", json.dumps([
        {"id": "t1", "customer_id": "c1", "amount": "900.00", "issue_date": "2026-09-01", "due_date": "2026-10-01"}])))
    payments = import_file(portfolio, "payments", write(tmp_path / "p.json", json.dumps([
        {"id": "p1", "receivable_id": "t1", "amount": "300", "paid_on": "2026-10-10"},
        {"id": "p2", "receivable_id": "t404", "amount": "300", "paid_on": "2026-10-10"}])), skip_invalid=True)
    assert payments.imported == 1 and [e.code for _, e in payments.rejected] == ["UNKNOWN_REFERENCE"]
    agreements = import_file(portfolio, "agreements", write(tmp_path / "a.json", json.dumps([
        {"id": "a1", "customer_id": "c1", "receivable_ids": ["t1"], "created_on": "2026-11-01",
         "instalments": [{"due_date": "2026-12-01", "amount": "300"}, {"due_date": "2027-01-01", "amount": "300"}]},
        {"id": "a2", "customer_id": "c1", "receivable_ids": ["t1"], "created_on": "2026-11-01",
         "instalments": [{"due_date": "2026-10-01", "amount": "300"}]},
        {"id": "a3", "customer_id": "c1", "receivable_ids": ["t9"], "created_on": "2026-11-01",
         "instalments": [{"due_date": "2026-12-01", "amount": "x"}]},
    ])), skip_invalid=True)
    assert agreements.imported == 1
    assert {(w.rsplit("[", 1)[1], e.field, e.code) for w, e in agreements.rejected} == {
        ("1]", "instalments[0].due_date", "VALUE"), ("2]", "instalments[0].amount", "TYPE")}
    stored = portfolio.get("agreements", "a1")
    assert json.loads(stored["instalments"])[0] == {"due_date": "2026-12-01", "amount": "300.00"}


@pytest.mark.parametrize("name, text, message", [
    ("x.json", "[{", "x.json:1:3: not valid JSON"),
    ("x.json", "{}", "expected a JSON list"),
    ("x.txt", "id\n", "expected a .csv or .json file"),
])
def test_unreadable_files_are_refused_whole(tmp_path, portfolio, name, text, message):
    with pytest.raises(PortfolioFileError, match=message.replace(".", r"\.")):
        import_file(portfolio, "customers", write(tmp_path / name, text))


def test_agreements_are_json_only(tmp_path, portfolio):
    with pytest.raises(PortfolioFileError, match="JSON"):
        import_file(portfolio, "agreements", write(tmp_path / "a.csv", "id\n"))


def test_unknown_and_missing_fields_are_named():
    _, errors = parse("customers", {"id": "c1", "document": CPF, "name": "X", "uf": "SP", "cor": "azul"})
    assert [(e.field, e.code) for e in errors] == [("cor", "UNKNOWN_FIELD")]
    _, errors = parse("customers", {"id": "c1", "document": CPF, "name": "X"})
    assert [(e.field, e.code) for e in errors] == [("uf", "REQUIRED")]


def test_the_cli_reports_rows_and_exits_1_when_nothing_was_written(tmp_path):
    path = customers_csv(tmp_path, GOOD_CUSTOMERS[0], "c3,000,X,SP,b2c,,,")
    db = str(tmp_path / "regua.db")
    refused = subprocess.run([str(REGUA), "import", "customers", str(path), "--db", db], capture_output=True, text=True)
    assert refused.returncode == 1 and f"{path}:3: document: INVALID_DOCUMENT" in refused.stderr
    assert "nothing written, 1 rejected" in refused.stderr
    assert "000" not in refused.stderr.replace(f"{path}:3", "")  # the bad document is not echoed
    kept = subprocess.run([str(REGUA), "import", "customers", str(path), "--db", db, "--skip-invalid"],
                          capture_output=True, text=True)
    assert kept.returncode == 0 and "1 imported, 1 rejected" in kept.stderr
    assert Portfolio(db).count("customers") == 1


import_mixes = st.lists(st.tuples(st.booleans(), st.integers(1, 10_000)), min_size=1, max_size=25,
                       unique_by=lambda r: r[1])


@given(import_mixes)
def test_an_import_writes_all_good_rows_or_nothing_and_accounts_for_every_row(tmp_path_factory, rows):
    """Whatever mix of good and bad rows: rejected rows are exactly the bad ones; without
    --skip-invalid nothing is written when any is bad; with it, exactly the good ones are."""
    tmp = tmp_path_factory.mktemp("mix")
    _import_all_or_nothing(tmp, rows, lambda skip: str(tmp / f"r{skip}.db"))


@settings(max_examples=20)
@given(import_mixes)
def test_an_import_is_all_or_nothing_on_postgresql(tmp_path_factory, postgres_server, rows):
    tmp = tmp_path_factory.mktemp("mix")
    databases = []

    def fresh(_skip):
        databases.append(postgres_server.new_database())
        return databases[-1]

    try:
        _import_all_or_nothing(tmp, rows, fresh)
    finally:
        for url in databases:
            postgres_server.drop(url)


def _import_all_or_nothing(tmp, rows, store_location) -> None:
    lines = [f"c{n},{sandbox_document('clean', 'cnpj', n) if good else '00.000.000/0000-00'},Empresa {n},SP,b2b,,,"
             for good, n in rows]
    path = customers_csv(tmp, *lines)
    good = {f"c{n}" for ok, n in rows if ok}
    for skip in (False, True):
        store = Portfolio(store_location(skip))
        report = import_file(store, "customers", path, skip_invalid=skip)
        assert report.read == len(rows) and len(report.rejected) == len(rows) - len(good)
        stored = {r["id"] for r in store.db.query("select id from customers")}
        assert stored == (good if skip or len(good) == len(rows) else set())
        store.close()
