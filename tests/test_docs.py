"""Every example in docs/language.md is tested, so the reference cannot drift from the language.

Fenced blocks are recognised by their info string:

- ```regua                 a complete policy: it checks without errors or warnings, is already
                           formatted (`regua fmt` would not change it) and its `test` blocks pass;
- ```regua-error CODE      a complete policy that fails to compile with diagnostics of exactly
                           that code (and no other);
- ```regua-warning CODE    a complete policy that compiles with warnings of exactly that code,
                           is formatted, and whose tests pass;
- ```regua-fragment        a few items (lets, rules, tables...) without the header: wrapped into
                           a minimal policy and parsed;
- ```json                  needs a marker comment on the line before it (see below);
- ```text                  needs an `output of:` marker;
- ```sh                    every `regua` command in it must name a real subcommand and options.

Marker comments (HTML comments on the line right before a fence, invisible when rendered):

- `<!-- file: NAME -->`             the block is also written to NAME (policies and JSON files);
- `<!-- output of: COMMAND -->`     the block is what COMMAND prints, run in a folder holding every
                                    `file:` block; JSON output is compared as a subset (keys the doc
                                    leaves out, such as timings, are ignored), text exactly.

The document as a whole must also list every diagnostic code, built-in function, bureau connector
and keyword, and its links to sections must resolve. Behaviour it states is pinned by regression tests
at the end of this file.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import Block, assert_subset, is_complete_policy, read_blocks

from regua.dsl.diagnostics import PolicyError, Severity
from regua.dsl.formatter import format_source
from regua.dsl.parser import parse
from regua.engine.compiler import check_source
from regua.engine.testing import load, run_policy_tests

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "language.md"
REGUA = Path(sys.executable).with_name("regua")

BLOCKS = read_blocks(DOC.read_text(encoding="utf-8"), "docs/language.md")
FILES = {b.marker[1]: b for b in BLOCKS if b.marker and b.marker[0] == "file"}


def of_kind(*kinds: str) -> list:
    return [pytest.param(b, id=b.id) for b in BLOCKS if b.kind in kinds]


def run_tests_in(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "example.regua"
    path.write_text(block.text, encoding="utf-8")
    checked, prepared = load(path)
    report = run_policy_tests(checked, prepared)
    failures = [f"{case.name}: {'; '.join(case.failures)}" for case in report.cases if not case.passed]
    assert not failures, f"docs/language.md:{block.line}: policy tests fail:\n" + "\n".join(failures)


def where(block: Block) -> str:
    return f"docs/language.md:{block.line}"


# ---- the document itself ---------------------------------------------------------------


def test_the_document_has_examples():
    kinds = {b.kind for b in BLOCKS}
    assert {"regua", "regua-error", "json"} <= kinds


def test_every_block_is_of_a_tested_kind():
    known = {"regua", "regua-error", "regua-warning", "regua-fragment", "json", "text", "sh"}
    unknown = [f"{where(b)}: ```{b.info}" for b in BLOCKS if b.kind not in known]
    assert not unknown, "untested code blocks:\n" + "\n".join(unknown)


def test_file_names_are_unique():
    names = [b.marker[1] for b in BLOCKS if b.marker and b.marker[0] == "file"]
    assert len(names) == len(set(names)), names


def test_every_error_code_is_in_the_catalogue():
    from regua.dsl.diagnostics import CODES

    text = DOC.read_text(encoding="utf-8")
    missing = [code for code in CODES if f"`{code}`" not in text]
    assert not missing, f"codes missing from the catalogue: {missing}"


def test_every_builtin_function_is_documented():
    from regua.engine.builtins import BUREAUS, default_environment

    text = DOC.read_text(encoding="utf-8")
    env = default_environment()
    missing = [name for name in env.functions if f"`{name}(" not in text]
    missing += [f"bureau.{b}" for b in BUREAUS if f"bureau.{b}" not in text]
    assert not missing, f"not documented: {missing}"


def test_every_keyword_is_listed():
    from regua.dsl.parser import keywords

    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Reserved words", 1)[1].split("\n## ", 1)[0]
    missing = sorted(word for word in keywords() if f"`{word}`" not in section)
    assert not missing, f"keywords missing from 'Reserved words': {missing}"


def test_links_to_sections_resolve():
    text = DOC.read_text(encoding="utf-8")
    outside = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", outside, re.M)}
    broken = [link for link in re.findall(r"\]\(#([^)]+)\)", outside) if link not in anchors]
    assert not broken, f"links to missing sections: {broken}"


# ---- policies --------------------------------------------------------------------------


@pytest.mark.parametrize("block", of_kind("regua"))
def test_policy_example(block: Block, tmp_path: Path):
    assert is_complete_policy(block.text), f"{where(block)}: not a complete policy; use ```regua-fragment"
    try:
        checked = check_source(block.text, where(block))
    except PolicyError as error:
        pytest.fail(f"{where(block)}: the example does not compile:\n{error.render()}")
    assert not checked.warnings, f"{where(block)}: " + "; ".join(w.headline() for w in checked.warnings)
    assert format_source(block.text) == block.text, f"{where(block)}: not formatted; run `regua fmt` on it"
    if checked.policy.tests:
        run_tests_in(block, tmp_path)


@pytest.mark.parametrize("block", of_kind("regua-error"))
def test_error_example(block: Block):
    assert block.argument, f"{where(block)}: write the expected code, e.g. ```regua-error E201"
    assert is_complete_policy(block.text), f"{where(block)}: an error example must be a complete policy"
    with pytest.raises(PolicyError) as raised:
        check_source(block.text, where(block))
    codes = {d.code for d in raised.value.diagnostics}
    assert codes == {block.argument}, f"{where(block)}: expected only {block.argument}, got:\n{raised.value.render()}"
    try:
        parse(block.text)
    except PolicyError:
        return  # a syntax error example cannot be formatted
    assert format_source(block.text) == block.text, f"{where(block)}: not formatted; run `regua fmt` on it"


@pytest.mark.parametrize("block", of_kind("regua-warning"))
def test_warning_example(block: Block, tmp_path: Path):
    assert block.argument, f"{where(block)}: write the expected code, e.g. ```regua-warning W404"
    try:
        checked = check_source(block.text, where(block))
    except PolicyError as error:
        pytest.fail(f"{where(block)}: the example does not compile:\n{error.render()}")
    codes = {w.code for w in checked.warnings if w.severity is Severity.WARNING}
    assert codes == {block.argument}, f"{where(block)}: expected warning {block.argument}, got {codes or 'none'}"
    assert format_source(block.text) == block.text, f"{where(block)}: not formatted; run `regua fmt` on it"
    if checked.policy.tests:
        run_tests_in(block, tmp_path)


@pytest.mark.parametrize("block", of_kind("regua-fragment"))
def test_fragment_example(block: Block):
    assert not is_complete_policy(block.text), f"{where(block)}: a complete policy should be a ```regua block"
    text = "policy fragmento kind credit\n\n" + block.text
    if not re.search(r"^default ", block.text, re.M):
        text += "\ndefault approve\n"
    try:
        parse(text, where(block))
    except PolicyError as error:
        pytest.fail(f"{where(block)}: the fragment does not parse:\n{error.render()}")


# ---- JSON, command output and shell commands -------------------------------------------


@pytest.mark.parametrize("block", of_kind("json", "text"))
def test_json_and_text_blocks_are_marked(block: Block):
    assert block.marker, f"{where(block)}: precede it with <!-- file: NAME --> or <!-- output of: COMMAND -->"
    if block.kind == "json":
        json.loads(block.text)
    else:
        assert block.marker[0] == "output of", f"{where(block)}: a text block shows a command's output"


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS
                                   if b.marker and b.marker[0] == "output of"])
def test_command_output(block: Block, tmp_path: Path):
    for name, file_block in FILES.items():
        (tmp_path / name).write_text(file_block.text, encoding="utf-8")
    args = shlex.split(block.marker[1])
    assert args[0] == "regua", f"{where(block)}: only regua commands are run"
    result = subprocess.run([str(REGUA), *args[1:]], cwd=tmp_path, capture_output=True, text=True)
    printed = result.stdout + result.stderr
    if block.kind == "json":
        assert_subset(json.loads(block.text), json.loads(printed))
    else:
        def clean(text: str) -> str:
            return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())

        assert clean(printed) == clean(block.text), f"{where(block)}: `{block.marker[1]}` printed:\n{printed}"


@pytest.mark.parametrize("block", of_kind("sh"))
def test_shell_commands_exist(block: Block):
    from regua.cli import main

    commands = [line.split("#")[0].strip() for line in block.text.splitlines()]
    commands = [c for c in commands if c.startswith("regua ")]
    assert commands, f"{where(block)}: a sh block shows regua commands"
    for command in commands:
        args = shlex.split(command)[1:]
        if args[0] in ("--help", "--version"):
            continue
        sub = main.commands.get(args[0])
        assert sub is not None, f"{where(block)}: no such command `regua {args[0]}`"
        options = {opt for param in sub.params for opt in param.opts + param.secondary_opts} | {"--help"}
        for arg in args[1:]:
            if arg.startswith("--"):
                assert arg.split("=")[0] in options, f"{where(block)}: `regua {args[0]}` has no option {arg}"


# ---- regressions for behaviour the reference states ------------------------------------


def _evaluate(source: str, data: dict, **kwargs):
    from regua.engine.compiler import compile_policy

    return compile_policy(source).evaluate(data, **kwargs)


def test_percent_default_is_the_percent_written():
    source = "policy p kind credit\n\ninput\n  taxa: percent = 10%\n\ndefault approve\n\noutput taxa\n"
    assert _evaluate(source, {}).to_dict()["outputs"]["taxa"] == "10%"


def test_percent_in_test_given_is_the_percent_written(tmp_path: Path):
    source = ("policy p kind credit\n\ninput\n  taxa: percent\n\ndefault approve\n\noutput juros = 1_000 BRL * taxa\n\n"
              "test \"t\"\n  given\n    taxa = 10%\n  expect output juros = 100 BRL\n")
    path = tmp_path / "p.regua"
    path.write_text(source, encoding="utf-8")
    report = run_policy_tests(*load(path))
    assert all(case.passed for case in report.cases), [case.failures for case in report.cases]


def test_percent_in_test_given_and_expect_output_is_the_percent_written(tmp_path: Path):
    # §15 once carried a "known issue": percents of tests were divided by 100 twice.
    source = ("policy p kind credit\n\nrecord item\n  t: percent\n\ninput\n  taxa: percent\n  itens: list of item\n\n"
              "default approve\n\noutput taxa, dobro = taxa * 2, soma = sum(itens.t)\n\nrule alta\n  when taxa > 5%\n"
              "  deny \"ALTA\" \"Taxa alta\"\n\n"
              "test \"t\"\n  given\n    taxa = 10%\n    itens = [{t: 10.5%}, {t: -0.5%}]\n"
              "  expect output taxa = 10%\n  expect output dobro = 20%\n  expect output soma = 10%\n  expect deny\n")
    path = tmp_path / "p.regua"
    path.write_text(source, encoding="utf-8")
    report = run_policy_tests(*load(path))
    assert report.cases and all(case.passed for case in report.cases), [case.failures for case in report.cases]
    assert "Known issue" not in (Path(__file__).parent.parent / "docs" / "language.md").read_text(encoding="utf-8")


def test_friendly_syntax_messages_whatever_comes_before():
    source = "policy p kind credit\n\ninput\n  x: int\n\nrule r\n  when x = 1\n  deny \"A\" \"b\"\n\ndefault approve\n"
    with pytest.raises(PolicyError) as raised:
        check_source(source)
    assert "use `==` to compare" in raised.value.diagnostics[0].message
