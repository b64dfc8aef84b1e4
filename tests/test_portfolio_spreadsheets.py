"""`regua import` reads CSV files the way Brazilian spreadsheets save them (issue 15 #1): the
bytes below are what Excel pt-BR ("CSV (separado por vírgulas)" and "CSV UTF-8"), LibreOffice
(UTF-8, `,` with quoted decimal commas) and "Texto Unicode" (UTF-16, tabs) write for the same sheet."""

from __future__ import annotations

import codecs
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regua.portfolio import Portfolio, import_file
from regua.portfolio.spreadsheet import canonical, decode, sniff_delimiter

REGUA = Path(sys.executable).with_name("regua")

CUSTOMERS = [["id", "document", "name", "uf", "segment", "email"],
             ["c1", "529.982.247-25", "João Conceição", "SP", "varejo", "joao@example.com"]]
RECEIVABLES_BR = [["id", "customer_id", "amount", "issue_date", "due_date", "status", "disputed"],
                  ["t1", "c1", "1.234,56", "01/03/2026", "23/03/2026", "open", "FALSO"],
                  ["t2", "c1", "R$ 89,90", "5/3/2026", "05/04/2026", "open", "VERDADEIRO"]]


def _excel_cp1252(rows):  # Excel pt-BR, "CSV (separado por vírgulas)": Windows-1252, `;`, CRLF
    return "".join(";".join(row) + "\r\n" for row in rows).encode("cp1252")


def _excel_utf8(rows):  # Excel pt-BR, "CSV UTF-8": a BOM, `;`, CRLF
    return codecs.BOM_UTF8 + "".join(";".join(row) + "\r\n" for row in rows).encode("utf-8")


def _libreoffice(rows):  # LibreOffice pt-BR defaults: UTF-8, `,`, cells with a comma quoted
    def cell(value):
        return f'"{value}"' if "," in value else value
    return "".join(",".join(cell(v) for v in row) + "\n" for row in rows).encode("utf-8")


def _unicode_text(rows):  # Excel "Texto Unicode": UTF-16 with BOM, tabs
    return "".join("\t".join(row) + "\r\n" for row in rows).encode("utf-16")


@pytest.fixture
def portfolio(tmp_path):
    store = Portfolio(str(tmp_path / "regua.db"))
    yield store
    store.close()


@pytest.mark.parametrize("save", [_excel_cp1252, _excel_utf8, _libreoffice, _unicode_text])
def test_a_sheet_saved_by_each_program_imports_the_same(tmp_path, portfolio, save):
    (tmp_path / "clientes.csv").write_bytes(save(CUSTOMERS))
    (tmp_path / "titulos.csv").write_bytes(save(RECEIVABLES_BR))
    for kind, name in (("customers", "clientes.csv"), ("receivables", "titulos.csv")):
        report = import_file(portfolio, kind, tmp_path / name)
        assert report.ok, report.rejected
    assert portfolio.get("customers", "c1")["name"] == "João Conceição"
    t1, t2 = portfolio.get("receivables", "t1"), portfolio.get("receivables", "t2")
    assert (Decimal(t1["amount"]), t1["issue_date"], t1["due_date"], bool(t1["disputed"])) == \
        (Decimal("1234.56"), "2026-03-01", "2026-03-23", False)
    assert (Decimal(t2["amount"]), t2["issue_date"], bool(t2["disputed"])) == (Decimal("89.90"), "2026-03-05", True)


def test_errors_name_the_row_the_column_and_the_value(tmp_path, portfolio):
    (tmp_path / "clientes.csv").write_bytes(_excel_cp1252(CUSTOMERS))
    import_file(portfolio, "customers", tmp_path / "clientes.csv")
    bad = [RECEIVABLES_BR[0],
           ["t3", "c1", "10,00", "01/03/2026", "31/02/2026", "open", "FALSO"],
           ["t4", "c1", "12,345", "01/03/2026", "05/03/2026", "open", "FALSO"],
           ["t5", "c1", "10,00", "01/03/2026", "05/03/2026", "open", "talvez"]]
    (tmp_path / "titulos.csv").write_bytes(_excel_cp1252(bad))
    report = import_file(portfolio, "receivables", tmp_path / "titulos.csv")
    assert not report.ok and report.imported == 0
    found = {(where.rsplit(":", 1)[1], error.field): error.message for where, error in report.rejected}
    assert set(found) == {("2", "due_date"), ("3", "amount"), ("4", "disputed")}
    assert found["2", "due_date"].endswith("(got '31/02/2026')")
    assert found["3", "amount"].endswith("(got '12,345')")
    assert found["4", "disputed"].endswith("(got 'talvez')")


def test_personal_data_is_never_repeated_in_an_error(tmp_path, portfolio):
    rows = [CUSTOMERS[0], ["c1", "111.111.111-11", "Ana", "SP", "varejo", "ana@example.com"]]
    (tmp_path / "clientes.csv").write_bytes(_excel_cp1252(rows))
    report = import_file(portfolio, "customers", tmp_path / "clientes.csv")
    [(_, error)] = report.rejected
    assert error.field == "document" and "111" not in error.message


def test_the_command_line_takes_explicit_delimiter_and_encoding(tmp_path):
    db = tmp_path / "regua.db"
    (tmp_path / "clientes.csv").write_bytes("|".join(CUSTOMERS[0]).encode() + b"\n")  # a separator never detected
    result = subprocess.run([REGUA, "import", "customers", str(tmp_path / "clientes.csv"), "--db", str(db)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (tmp_path / "clientes.csv").write_bytes(_excel_cp1252(CUSTOMERS))
    result = subprocess.run([REGUA, "import", "customers", str(tmp_path / "clientes.csv"), "--db", str(db),
                             "--delimiter", ";", "--encoding", "cp1252"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    wrong = subprocess.run([REGUA, "import", "customers", str(tmp_path / "clientes.csv"), "--db", str(db),
                            "--encoding", "utf-8"], capture_output=True, text=True)
    assert wrong.returncode == 1 and "not utf-8 text" in wrong.stderr and "Traceback" not in wrong.stderr


def test_detection_of_encoding_and_separator():
    assert decode("ação".encode("cp1252")) == ("ação", "cp1252")
    assert decode(codecs.BOM_UTF8 + "ação".encode()) == ("ação", "utf-8-sig")
    assert decode("ação".encode()) == ("ação", "utf-8")
    fields = {"id", "amount", "due_date"}
    assert sniff_delimiter("id;amount;due_date", fields) == ";"
    assert sniff_delimiter("id,amount,due_date", fields) == ","
    assert sniff_delimiter("id\tamount\tdue_date", fields) == "\t"


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=99))
def test_brazilian_amounts_round_trip(reais, cents):
    """Any amount written the pt-BR way (thousands dots, decimal comma, optional R$) reads back exact."""
    grouped = f"{reais:,}".replace(",", ".")
    expected = Decimal(f"{reais}.{cents:02d}")
    for text in (f"{grouped},{cents:02d}", f"R$ {grouped},{cents:02d}", f"{reais},{cents:02d}"):
        assert Decimal(canonical("amount", text, decimal_comma=True)) == expected
    assert Decimal(canonical("amount", f"{reais}.{cents:02d}", decimal_comma=False)) == expected
    assert Decimal(canonical("amount", f"{reais}.{cents:02d}", decimal_comma=True)) == expected
