"""`regua lsp` driven as an editor drives it: the real server in a subprocess, spoken to over its
stdio with the Language Server Protocol (pytest-lsp). Its diagnostics are compared with what
`regua check --json` prints for the same files; hover, definition, references, completion,
formatting, the outline and quick fixes are asked at known places of the bundled policies."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from regua.dsl.formatter import format_source

ROOT = Path(__file__).resolve().parent.parent
REGUA = Path(sys.executable).with_name("regua")
POLICIES = sorted((ROOT / "policies").glob("*.regua"))
CREDIT = ROOT / "policies" / "credito_b2b.regua"

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEADER = "policy p kind credit\n"
BROKEN = {
    # syntax errors, recovered item by item
    "syntax.regua": HEADER + "input\n  renda: money\nrule r\n  when renda >\n  deny \"A\" \"b\"\nlet x = (1 +\n"
                             "default approve\n",
    "indentation.regua": HEADER + "input\n  renda: money\n    idade: int\ndefault approve\n",
    "names.regua": HEADER + "input\n  renda: money\n  porte: porte\nenum porte = mei | grande\n"
                            "let margem = renda * 10%\nrule r\n  when margme > 1 BRL and porte == \"grandee\"\n"
                            "  deny \"A\" \"b\"\n  set limtie = 1 BRL\nrule s\n  when bureau.serasaa(\"1\").score.value > 1\n"
                            "  aprove\noutput limite = 0 BRL\ndefault approve\n",
    "types.regua": HEADER + "input\n  renda: money\n  idade: int\nrule r\n  when renda > 10\n  review \"A\" \"b\"\n"
                            "rule s\n  when idade and renda\n  deny \"B\" \"c\"\ndefault approve\n",
    "warnings.regua": HEADER + "input\n  renda: money\n  nunca: int\nlet sobra = 1\nrule r\n"
                               "  when renda > 10 BRL and renda < 5 BRL\n  deny \"A\" \"b\"\ndefault approve\n",
    "empty.regua": "",
    "binary.regua": "policy p kind credit\n\x00\x01\x02",
    "header.regua": "polcy p kind credit\n",
    "unicode.regua": HEADER + "input\n  ação: text\nrule r\n  when ação == \"🙂\" and ação > 1\n  deny \"A\" \"b\"\n"
                              "default approve\n",
    "deep.regua": HEADER + "let x = " + "(" * 200 + "1" + ")" * 200 + "\ndefault approve\n",
}


def uri_of(path: Path) -> str:
    return path.resolve().as_uri()


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("broken")
    paths = []
    for name, text in BROKEN.items():
        path = folder / name
        path.write_bytes(text.encode("utf-8"))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def expected(broken_files) -> dict[str, list[tuple]]:
    """What `regua check --json` says about every bundled and broken policy, by file."""
    result = subprocess.run([str(REGUA), "check", "--json", *map(str, POLICIES + broken_files)], capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    report = json.loads(result.stdout)
    return {str(Path(ROOT, f["file"]).resolve()): [(d["code"], d["severity"], d["location"]["line"],
                                                    d["location"]["column"], d["message"]) for d in f["diagnostics"]]
            for f in report["files"]}


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[str(REGUA), "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


async def diagnostics_of(client: LanguageClient, uri: str, version: int) -> list[lsp.Diagnostic]:
    """Wait for the diagnostics the server publishes for this version of the document."""
    async def wait():
        while True:
            params = await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            if params.uri == uri and params.version == version:
                return list(params.diagnostics)

    return await asyncio.wait_for(wait(), timeout=60)


async def open_document(client: LanguageClient, uri: str, text: str, version: int = 1) -> list[lsp.Diagnostic]:
    waiting = asyncio.ensure_future(diagnostics_of(client, uri, version))
    await asyncio.sleep(0)
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "regua", version, text)))
    return await waiting


async def change_document(client: LanguageClient, uri: str, text: str, version: int) -> list[lsp.Diagnostic]:
    waiting = asyncio.ensure_future(diagnostics_of(client, uri, version))
    await asyncio.sleep(0)
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        [lsp.TextDocumentContentChangeWholeDocument(text=text)]))
    return await waiting


def as_check_prints(diagnostics: list[lsp.Diagnostic], text: str) -> list[tuple]:
    """The diagnostics as `regua check --json` locates them: 1-based lines and code-point columns."""
    severity = {lsp.DiagnosticSeverity.Error: "error", lsp.DiagnosticSeverity.Warning: "warning"}
    lines = text.split("\n")

    def column(position: lsp.Position) -> int:
        line = lines[position.line] if position.line < len(lines) else ""
        return len(line.encode("utf-16-le")[: position.character * 2].decode("utf-16-le")) + 1

    return [(d.code, severity[d.severity], d.range.start.line + 1, column(d.range.start), d.message)
            for d in diagnostics]


def position_of(text: str, needle: str, offset: int = 0, occurrence: int = 1) -> lsp.Position:
    """The position of the `occurrence`-th `needle` in `text`, plus `offset` characters (BMP text)."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    index += offset
    line = text.count("\n", 0, index)
    return lsp.Position(line, index - (text.rfind("\n", 0, index) + 1))


# ---- diagnostics ---------------------------------------------------------------------------------------


async def test_diagnostics_match_regua_check_on_bundled_and_broken_policies(client, broken_files, expected):
    for path in POLICIES + broken_files:
        text = path.read_text(encoding="utf-8", errors="replace")
        got = as_check_prints(await open_document(client, uri_of(path), text), text)
        if path.name == "binary.regua":
            # regua check refuses the bytes before parsing (E000); the editor holds text and checks it.
            assert got and all(code.startswith("E0") for code, *_ in got), got
            continue
        assert got == expected[str(path.resolve())], f"{path.name}: {text[:60]!r}"
    names = expected[str(broken_files[2].resolve())]
    assert {"E101", "E110", "E111", "E105", "E108"} <= {code for code, *_ in names}


async def test_unicode_columns_are_counted_in_utf16_units(client, broken_files):
    path = next(p for p in broken_files if p.name == "unicode.regua")
    text = path.read_text(encoding="utf-8")
    diagnostics = await open_document(client, uri_of(path) + "?utf16", text)
    compare = next(d for d in diagnostics if d.code == "E201")
    line = text.split("\n")[compare.range.start.line]
    # `ação > 1` starts after the emoji (2 UTF-16 units, 1 code point).
    assert line.encode("utf-16-le")[: compare.range.start.character * 2].decode("utf-16-le").endswith("and ")


async def test_changes_are_debounced_and_the_last_text_wins(client, tmp_path):
    uri = uri_of(tmp_path / "typing.regua")
    text = HEADER + "input\n  renda: money\nrule r\n  when renda > 1 BRL\n  deny \"A\" \"b\"\ndefault approve\n"
    assert await open_document(client, uri, text) == []
    # Typing `rendaa` one letter at a time: only the last version's diagnostics matter.
    for version, typed in enumerate(["r", "re", "ren", "rend", "rendaa"], start=2):
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            [lsp.TextDocumentContentChangeWholeDocument(text=text.replace("when renda", f"when {typed}"))]))
    last = await diagnostics_of(client, uri, 6)
    assert [(d.code, d.message) for d in last] == [("E101", "'rendaa' is not defined; did you mean 'renda'?")]
    fixed = await change_document(client, uri, text, 7)
    assert fixed == []


async def test_incremental_changes_are_applied(client, tmp_path):
    uri = uri_of(tmp_path / "incremental.regua")
    text = HEADER + "let x = 1\noutput x\ndefault approve\n"
    assert await open_document(client, uri, text) == []
    waiting = asyncio.ensure_future(diagnostics_of(client, uri, 2))
    await asyncio.sleep(0)
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
        [lsp.TextDocumentContentChangePartial(range=lsp.Range(lsp.Position(1, 8), lsp.Position(1, 9)), text="y")]))
    assert [d.code for d in await waiting] == ["E101"]


# ---- hover, definition, references ---------------------------------------------------------------------


async def hover_text(client, uri: str, position: lsp.Position) -> str:
    answer = await client.text_document_hover_async(lsp.HoverParams(lsp.TextDocumentIdentifier(uri), position))
    return answer.contents.value if answer else ""


async def test_hover_tells_types_declarations_and_contract_fields(client):
    text, uri = CREDIT.read_text(encoding="utf-8"), uri_of(CREDIT)
    await open_document(client, uri, text)
    let = await hover_text(client, uri, position_of(text, "let score = ", 5))
    assert "let score: int" in let and "relatorio.score.value" in let
    field = await hover_text(client, uri, position_of(text, "relatorio.score.value", len("relatorio.score.")))
    assert "Score.value: int" in field and "the score" in field
    report_field = await hover_text(client, uri, position_of(text, "relatorio.restrictions", len("relatorio.")))
    assert "BureauReport.restrictions: list of Restriction" in report_field and "negativações" in report_field
    the_input = await hover_text(client, uri, position_of(text, "ticket_medio *", 2))
    assert "input ticket_medio: money" in the_input
    connector = await hover_text(client, uri, position_of(text, "bureau.serasa(cnpj)", 3))
    assert "bureau.serasa(text) -> BureauReport" in connector
    function = await hover_text(client, uri, position_of(text, "years_between(", 2))
    assert "years_between(a, b)" in function
    table = await hover_text(client, uri, position_of(text, "table teto_por_score", 8))
    assert "table teto_por_score (first): money" in table


async def test_hover_on_a_collection_input_tells_what_the_runner_fills(client):
    path = ROOT / "policies" / "cobranca_b2b.regua"
    text = path.read_text(encoding="utf-8")
    await open_document(client, uri_of(path), text)
    found = await hover_text(client, uri_of(path), position_of(text, "disputed", 1))
    assert "input disputed: bool" in found and "disputes the debt" in found


async def test_definition_and_references(client):
    text, uri = CREDIT.read_text(encoding="utf-8"), uri_of(CREDIT)
    await open_document(client, uri, text)
    where = await client.text_document_definition_async(lsp.DefinitionParams(
        lsp.TextDocumentIdentifier(uri), position_of(text, "ticket_medio *", 1)))
    assert where.range.start == position_of(text, "ticket_medio: money")
    table = await client.text_document_definition_async(lsp.DefinitionParams(
        lsp.TextDocumentIdentifier(uri), position_of(text, "teto_por_score)", 1)))
    assert table.range.start == position_of(text, "teto_por_score (first)")
    found = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=lsp.TextDocumentIdentifier(uri), position=position_of(text, "let score", 4),
        context=lsp.ReferenceContext(include_declaration=True)))
    lines = {location.range.start.line + 1 for location in found}
    declared = text[: text.index("let score")].count("\n") + 1
    assert declared in lines and len(lines) >= 3
    assert all(text.split("\n")[loc.range.start.line][loc.range.start.character:].startswith("score") for loc in found)


async def test_definition_of_enum_values_records_and_rules(client, tmp_path):
    text = (HEADER + "enum porte = mei | grande\nrecord socio\n  nome: text\ninput\n  p: porte\n  socios: list of socio\n"
            "rule grande_empresa\n  when p == \"grande\"\n  review \"G\" \"grande\"\nrule depois\n"
            "  when fired(grande_empresa) and count(socios) > 2\n  deny \"D\" \"d\"\ndefault approve\n")
    uri = uri_of(tmp_path / "enums.regua")
    assert await open_document(client, uri, text) == []

    async def definition_of(position):
        return await client.text_document_definition_async(lsp.DefinitionParams(lsp.TextDocumentIdentifier(uri),
                                                                                position))

    assert (await definition_of(position_of(text, '"grande"', 2))).range.start == position_of(text, "grande\nrecord")
    assert (await definition_of(position_of(text, "p: porte", 4))).range.start == position_of(text, "porte = ")
    assert (await definition_of(position_of(text, "of socio", 4))).range.start == position_of(text, "socio\n")
    assert (await definition_of(position_of(text, "fired(grande_empresa", 7))).range.start == \
        position_of(text, "grande_empresa\n")


# ---- completion ------------------------------------------------------------------------------------------


async def complete(client, uri: str, position: lsp.Position) -> list[lsp.CompletionItem]:
    answer = await client.text_document_completion_async(lsp.CompletionParams(lsp.TextDocumentIdentifier(uri),
                                                                              position))
    return answer.items if isinstance(answer, lsp.CompletionList) else answer


async def test_completion_of_report_fields_after_a_dot_while_the_line_is_unfinished(client, tmp_path):
    text = CREDIT.read_text(encoding="utf-8")
    uri = uri_of(tmp_path / "completion.regua")
    await open_document(client, uri, text)
    unfinished = text.replace("let idade_empresa", "let nova = relatorio.score.\nlet idade_empresa")
    await change_document(client, uri, unfinished, 2)  # does not parse: the last text that did is used
    fields = await complete(client, uri, position_of(unfinished, "relatorio.score.\n", len("relatorio.score.")))
    assert {"value", "band", "range_max"} <= {item.label for item in fields}
    assert any(item.detail == "Score.value: int" for item in fields)
    connectors = await complete(client, uri, position_of(unfinished, "relatorio.score.\n", 0))
    assert "relatorio" in {item.label for item in connectors}
    bureau = unfinished.replace("let nova = relatorio.score.", "let nova = bureau.")
    await change_document(client, uri, bureau, 3)
    names = {item.label for item in await complete(client, uri, position_of(bureau, "bureau.\n", len("bureau.")))}
    assert {"serasa", "spc", "sandbox"} <= names
    restriction = bureau.replace("let nova = bureau.", "let nova = count(r for r in relatorio.restrictions where r.")
    await change_document(client, uri, restriction, 4)
    fields = await complete(client, uri, position_of(restriction, "where r.", len("where r.")))
    assert {"kind", "amount", "date", "creditor"} == {item.label for item in fields}


async def test_completion_offers_keywords_names_enum_values_and_functions(client, tmp_path):
    text = HEADER + "enum porte = mei | grande\ninput\n  p: porte\n  renda: money\nlet x = 1\ndefault approve\n"
    uri = uri_of(tmp_path / "words.regua")
    await open_document(client, uri, text)
    text = text.replace("let x = 1", "let x = ")  # being typed: the text that parsed gives the names
    await change_document(client, uri, text, 2)
    items = {item.label: item for item in await complete(client, uri, position_of(text, "let x = ", 8))}
    assert {"when", "otherwise", "renda", "p", "\"grande\"", "round", "sum", "today", "bureau", "deny"} <= set(items)
    assert items["round"].detail.startswith("round(x, places=2)")
    assert items["renda"].detail == "input renda: money"
    types = {item.label for item in await complete(client, uri, position_of(text, "  renda: ", 9))}
    assert {"money", "porte", "BureauReport"} <= types and "when" not in types


# ---- formatting, outline, quick fixes, robustness ------------------------------------------------------


async def test_formatting_is_regua_fmt(client, tmp_path):
    text = HEADER + "let   x=1+2\nrule r\n    when x>1\n    deny \"A\"   \"b\"\ndefault approve\n"
    uri = uri_of(tmp_path / "fmt.regua")
    await open_document(client, uri, text)
    edits = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        lsp.TextDocumentIdentifier(uri), lsp.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert len(edits) == 1 and edits[0].new_text == format_source(text)
    assert edits[0].range.start == lsp.Position(0, 0)
    assert edits[0].range.end.line == text.count("\n")
    await change_document(client, uri, HEADER + "let x = (\n", 2)
    assert not await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        lsp.TextDocumentIdentifier(uri), lsp.FormattingOptions(tab_size=2, insert_spaces=True)))


async def test_document_symbols_outline_the_policy(client):
    text, uri = CREDIT.read_text(encoding="utf-8"), uri_of(CREDIT)
    await open_document(client, uri, text)
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(lsp.TextDocumentIdentifier(uri)))
    by_name = {s.name: s for s in symbols}
    assert by_name["teto_por_score"].kind == lsp.SymbolKind.Function
    assert by_name["bureau_indisponivel"].kind == lsp.SymbolKind.Event
    assert {"cnpj", "ticket_medio"} <= {child.name for child in by_name["input"].children}
    assert any(s.kind == lsp.SymbolKind.Method for s in symbols)  # the tests
    table = by_name["teto_por_score"]
    assert table.range.end.line > table.range.start.line  # the rows belong to the table


async def test_quick_fix_applies_the_did_you_mean(client, tmp_path):
    text = HEADER + "input\n  renda: money\nrule r\n  when rendaa > 1 BRL\n  deny \"A\" \"b\"\ndefault aprove\n"
    uri = uri_of(tmp_path / "fix.regua")
    diagnostics = await open_document(client, uri, text)
    assert {d.code for d in diagnostics} == {"E101", "E108"}
    actions = await client.text_document_code_action_async(lsp.CodeActionParams(
        lsp.TextDocumentIdentifier(uri), diagnostics[0].range, lsp.CodeActionContext(diagnostics)))
    edits = {a.title: a.edit.changes[uri][0] for a in actions}
    assert set(edits) == {"Change 'rendaa' to 'renda'", "Change 'aprove' to 'approve'"}
    fixed = edits["Change 'rendaa' to 'renda'"]
    assert fixed.range.start == position_of(text, "rendaa >") and fixed.range.end == position_of(text, " > 1 BRL")


async def test_the_server_survives_any_text(client, tmp_path):
    uri = uri_of(tmp_path / "noise.regua")
    await open_document(client, uri, "")
    for version, text in enumerate(["policy", "\t\t\x0c", "policy p kind credit\n" + "rule\n" * 100, "\ud800",
                                    "#" * 100_000, "policy p kind credit\nlet x = " + "-" * 5000 + "1\n"], start=2):
        await change_document(client, uri, text, version)
        await hover_text(client, uri, lsp.Position(0, 3))
        await complete(client, uri, lsp.Position(0, 3))
    assert await open_document(client, uri_of(tmp_path / "after.regua"), HEADER + "default approve\n") == []
