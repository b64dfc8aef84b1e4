"""The console's parts on their own: Brazilian formats, the highlighter's escaping, the playground's
form parsing, sessions against a real store, and the fail-closed check of page access."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar, Router, get

from regua.dsl.highlight import ReguaLexer
from regua.server.auth import KeyRing, hash_key
from regua.server.config import ApiKey
from regua.server.console.forms import FormError, Widget, to_input
from regua.server.console.highlight import PLAIN, css_class, highlight, highlight_line
from regua.server.console.render import brl, date_br, mask_value, number_br, percent_br
from regua.server.console.session import SessionStore, check_console_access
from regua.server.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("value", "shown"), [
    ("32000", "R$ 32.000,00"), ("1234.5", "R$ 1.234,50"), ("0", "R$ 0,00"), ("-15.25", "-R$ 15,25"),
    ("1000000.00", "R$ 1.000.000,00"), (None, "—"), ("abc", "abc")])
def test_money_in_reais(value, shown):
    assert brl(value) == shown


def test_numbers_percents_and_dates_in_brazilian_formats():
    assert number_br("1234.567") == "1.234,57" and number_br(Decimal("-0.5"), 1) == "-0,5"
    assert percent_br("33.33") == "33,33%" and percent_br(None) == "—"
    assert date_br("2026-11-22") == "22/11/2026" and date_br(dt.date(2026, 1, 5)) == "05/01/2026"
    # An instant is shown in Brasília time: 02:30 UTC is the previous evening there.
    assert date_br("2026-11-22T02:30:00+00:00") == "21/11/2026 23:30"


def test_personal_fields_and_documents_in_text_are_masked():
    shown = mask_value("input", {"cpf": "529.982.247-25", "nome_cliente": "Maria Souza", "valor": "10.00",
                                 "obs": "cliente 529.982.247-25 ligou", "email": "m@example.com"}, {"cpf"})
    assert shown["cpf"].endswith("25") and "529" not in shown["cpf"]
    assert "Maria" not in shown["nome_cliente"] and "example" not in shown["email"]
    assert shown["valor"] == "10.00" and "529.982" not in shown["obs"]


@given(st.text(max_size=200).filter(lambda t: "\n" not in t))
def test_the_highlighter_escapes_everything_and_keeps_the_text(line):
    out = str(highlight_line(line))
    tags = re.findall(r"<[^>]*>", out)
    assert all(re.fullmatch(r'<span class="[a-z0-9]+">|</span>', t) for t in tags), tags
    assert html.unescape(re.sub(r"<[^>]*>", "", out)) == line


@pytest.mark.parametrize("path", sorted(ROOT.glob("policies/*.regua")), ids=lambda p: p.name)
def test_the_console_colours_a_policy_as_the_policy_lexer_does(path):
    """One source of truth: each span is a token of dsl/highlight.py's lexer, with its class."""
    source = path.read_text(encoding="utf-8")
    lines = highlight(source)
    assert len(lines) == len(source.split("\n"))
    shown = [(cls, html.unescape(text)) for line in lines
             for cls, text in re.findall(r'<span class="(\w+)">([^<]*)</span>', str(line))]
    expected = [(css_class(token), value) for _i, token, value in ReguaLexer().get_tokens_unprocessed(source)
                if token not in PLAIN and value.strip("\n")]
    assert shown == expected
    # Words the console's old hand-made list lacked are coloured as the lexer colours them.
    words = dict((text, cls) for cls, text in shown)
    declared = {word: words[word] for word in ("actionable", "record", "enum", "rule", "step", "let") if word in words}
    assert set(declared.values()) == {"kd"} and ("rule" in declared or "step" in declared)


def test_the_playground_reads_brazilian_numbers_and_names_bad_fields():
    fields = [Widget("valor", "money", True, "", [], ""), Widget("taxa", "percent", False, "", [], ""),
              Widget("parcelas", "int", False, "", [], ""), Widget("ativo", "bool", False, "", [], ""),
              Widget("itens", "json", False, "", [], ""), Widget("nada", "text", False, "", [], "")]
    assert to_input(fields, {"valor": "R$ 1.234,56", "taxa": "12,5%", "parcelas": "6", "ativo": "true",
                             "itens": "[1, 2]", "nada": ""}) == {
        "valor": "1234.56", "taxa": "12.5%", "parcelas": 6, "ativo": True, "itens": [1, 2]}
    with pytest.raises(FormError) as refused:
        to_input(fields, {"valor": "1,2,3", "parcelas": "seis", "itens": "{"})
    assert set(refused.value.errors) == {"valor", "parcelas", "itens"}


def test_a_session_ends_when_its_key_is_removed_and_never_stores_the_cookie(tmp_path):
    store = Store(str(tmp_path / "regua.db"))
    key = "rk_console_test_key_0123456789"
    ring = KeyRing([ApiKey("ana", hash_key(key), ["decisions:read"])])
    token, session = SessionStore(store, ring).open(key)
    assert session.key_name == "ana" and session.may("decisions:read") and not session.may("evaluate")
    assert SessionStore(store, ring).find(token).key_name == "ana"
    assert SessionStore(store, ring).open("rk_other") is None
    dump = "\n".join(store.db.iterdump())
    assert token not in dump and key not in dump
    assert SessionStore(store, KeyRing([])).find(token) is None  # the key is gone from the configuration
    SessionStore(store, ring).close(token)
    assert SessionStore(store, ring).find(token) is None


def test_a_console_page_that_declares_no_access_stops_the_app():
    @get("/undeclared", opt={"public": True})
    async def undeclared() -> str:
        return "x"

    app = Litestar(route_handlers=[Router("/console", route_handlers=[undeclared])])
    with pytest.raises(RuntimeError, match="console pages must declare their access"):
        check_console_access(app)
