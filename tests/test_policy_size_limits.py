"""Size limits of policy text (issue 13, point 6): a long text literal, name or number, or a
policy too long, is error E007 located where the limit is crossed, found before parsing (which
costs memory in proportion to the text: a 0.9 MB literal used to peak at 287 MB)."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_harness import ThreadedServer, sandbox_settings

from regua.dsl import limits
from regua.dsl.diagnostics import PolicyError
from regua.dsl.parser import parse

HEAD = "policy p kind credit\n\ninput\n  nome: text\n\n"


def located(source: str) -> list[tuple[str, int, int]]:
    with pytest.raises(PolicyError) as caught:
        parse(source, "f.regua")
    return [(d.code, d.span.line, d.span.column) for d in caught.value.diagnostics]


def test_a_text_literal_over_the_limit_is_E007_at_its_opening_quote():
    source = HEAD + 'rule r\n  when nome == "' + "x" * 200_000 + '"\n  deny "A" "b"\n\ndefault approve\n'
    assert located(source) == [("E007", 7, 16)]
    with pytest.raises(PolicyError, match="200,000 characters long; at most 10,000"):
        parse(source, "f.regua")


def test_a_literal_at_the_limit_is_fine_and_comments_and_lists_of_short_texts_are_not_literals():
    at_limit = HEAD + 'let x = "' + "x" * limits.MAX_LITERAL_CHARS + '"\n\ndefault approve\n'
    parse(at_limit)
    many = ", ".join(f'"{k:07d}"' for k in range(3000))  # a 30,000-character line of CNAE codes
    parse(HEAD + f"let cnaes = [{many}]\n# " + "comentário " * 2000 + "\n\ndefault approve\n")


def test_a_long_name_or_number_is_E007_too():
    assert located(HEAD + "let " + "a" * 10_001 + " = 1\n\ndefault approve\n") == [("E007", 6, 5)]
    assert located(HEAD + "let a = " + "9" * 10_001 + "\n\ndefault approve\n") == [("E007", 6, 9)]


def test_a_policy_over_the_source_limit_is_E007_where_it_crosses_it(monkeypatch):
    monkeypatch.setattr(limits, "MAX_SOURCE_CHARS", 2_000)
    rules = "".join(f'rule r{k}\n  when nome == "{k}"\n  deny "A" "b"\n' for k in range(100))
    source = HEAD + rules + "default approve\n"
    line = source.count("\n", 0, 2_000) + 1
    [(code, at_line, _column)] = located(source)
    assert (code, at_line) == ("E007", line)


def test_over_http_the_configured_limits_apply_and_nothing_is_published(tmp_path, monkeypatch):
    for name in ("MAX_SOURCE_CHARS", "MAX_LITERAL_CHARS"):  # the server sets them: restored afterwards
        monkeypatch.setattr(limits, name, getattr(limits, name))
    settings = sandbox_settings(tmp_path, policies={"max_literal_chars": 500})
    source = (Path(settings.policies.folder) / "credito_b2b.regua").read_text(encoding="utf-8")
    with ThreadedServer(settings) as server, server.client() as client:
        long_message = source.replace('"Empresa em recuperação judicial ou falência"', '"' + "x" * 600 + '"')
        response = client.put("/policies/credito_b2b", json={"source": long_message})
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "POLICY_REJECTED"
        [error] = body["errors"]
        start = long_message.index('"' + "x" * 600)
        line, column = long_message[:start].count("\n") + 1, start - long_message.rfind("\n", 0, start)
        assert error["code"] == "E007" and error["location"].endswith(f":{line}:{column}")
        assert client.get("/policies/credito_b2b").json()["version"] == "2026.11.1"
