"""Reading the fenced blocks of a Markdown doc, for the tests that keep docs true.

A block may be preceded, on the line right above its fence, by a marker comment saying what it is:
`<!-- file: path -->`, `<!-- output of: command -->`, `<!-- layout: name -->`, `<!-- excerpt of: path -->`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FENCE = re.compile(r"^```(.*)$")
MARKER = re.compile(r"^<!--\s*(file|output of|layout|excerpt of):\s*(.+?)\s*-->$")


@dataclass
class Block:
    doc: str  # e.g. docs/collection.md, for messages
    line: int  # of the opening fence, 1-based
    info: str
    text: str
    marker: tuple[str, str] | None  # ("file", path), ("output of", command), ...

    @property
    def kind(self) -> str:
        return self.info.split()[0] if self.info else ""

    @property
    def argument(self) -> str:
        parts = self.info.split()
        return parts[1] if len(parts) > 1 else ""

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.kind or 'plain'}" + (f"-{self.argument}" if self.argument else "")

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def marked(self, kind: str) -> str | None:
        return self.marker[1] if self.marker and self.marker[0] == kind else None


def read_blocks(text: str, doc: str) -> list[Block]:
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, info, body = i, match.group(1).strip(), []
        i += 1
        while i < len(lines) and lines[i] != "```":
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"{doc}:{start + 1}: fenced block is never closed"
        marker = MARKER.match(lines[start - 1].strip()) if start > 0 else None
        blocks.append(Block(doc, start + 1, info, "\n".join(body) + "\n", marker.groups() if marker else None))
        i += 1
    return blocks


def assert_subset(expected, actual, path="$") -> None:
    """Every key the doc shows has the value the command printed; lists match item by item."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}: missing key {key!r} (got {sorted(actual)})"
            assert_subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for n, (e, a) in enumerate(zip(expected, actual)):
            assert_subset(e, a, f"{path}[{n}]")
    else:
        assert expected == actual, f"{path}: doc says {expected!r}, the command printed {actual!r}"


# ---- checks the guides (collection.md, monitoring.md) share ------------------------------------

ROOT = Path(__file__).resolve().parent.parent
REGUA = Path(sys.executable).with_name("regua")


def is_complete_policy(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith("policy ")
    return False


def check_complete_policy(block: Block, kind: str, tmp_path: Path) -> None:
    """A whole policy in a guide compiles without warnings, is of the guide's kind, is formatted,
    and its `test` blocks pass."""
    from regua.dsl.diagnostics import PolicyError
    from regua.dsl.formatter import format_source
    from regua.engine.compiler import check_source, compile_policy
    from regua.engine.testing import load, run_policy_tests

    try:
        compile_policy(block.text, block.where)
        checked = check_source(block.text, block.where)
    except PolicyError as error:
        pytest.fail(f"{block.where}: the policy does not compile:\n{error.render()}")
    assert checked.policy.kind == kind, f"{block.where}: this guide's policies are kind {kind}"
    assert not checked.warnings, f"{block.where}: " + "; ".join(w.headline() for w in checked.warnings)
    assert format_source(block.text) == block.text, f"{block.where}: not formatted; run `regua fmt` on it"
    if checked.policy.tests:
        path = tmp_path / "example.regua"
        path.write_text(block.text, encoding="utf-8")
        report = run_policy_tests(*load(path))
        failures = [f"{case.name}: {'; '.join(case.failures)}" for case in report.cases if not case.passed]
        assert not failures, f"{block.where}: policy tests fail:\n" + "\n".join(failures)


def check_fragment(block: Block, source: str) -> None:
    """A policy fragment, wrapped by the caller into `source`, compiles."""
    from regua.dsl.diagnostics import PolicyError
    from regua.engine.compiler import compile_policy

    try:
        compile_policy(source, block.where)
    except PolicyError as error:
        pytest.fail(f"{block.where}: the fragment does not compile:\n{error.render()}")


def check_shell_commands(block: Block) -> None:
    """A ```sh block names real `regua` subcommands and options."""
    from regua.cli import main

    commands = [line.split("#")[0].strip() for line in block.text.splitlines()]
    commands = [c for c in commands if c.startswith("regua ")]
    assert commands, f"{block.where}: a sh block shows regua commands"
    for command in commands:
        args = shlex.split(command)[1:]
        sub = main.commands.get(args[0])
        assert sub is not None, f"{block.where}: no such command `regua {args[0]}`"
        if hasattr(sub, "commands") and len(args) > 1 and not args[1].startswith("-"):  # a group: `regua keys add`
            name, sub = f"{args[0]} {args[1]}", sub.commands.get(args[1])
            assert sub is not None, f"{block.where}: no such command `regua {name}`"
            args = [name, *args[2:]]
        options = {opt for param in sub.params for opt in param.opts + param.secondary_opts} | {"--help"}
        for arg in args[1:]:
            if arg.startswith("--"):
                assert arg.split("=")[0] in options, f"{block.where}: `regua {args[0]}` has no option {arg}"


def _clean(text: str) -> list[str]:
    """Lines without trailing blanks; a run's duration varies, so its row is left out."""
    return [line.rstrip() for line in text.strip("\n").splitlines() if not re.match(r"^│ seconds\s+│", line)]


def run_command_outputs(blocks: list[Block], tmp_path: Path, with_stderr: bool) -> None:
    """Every `output of:` command in document order, in one fresh folder holding copies of
    examples/ and policies/ and every `file:` block; what it prints must be what the guide shows
    (JSON: the guide's keys are a subset; text: exact)."""
    shown = [b for b in blocks if b.marked("output of")]
    assert shown, "the guide shows no command output"
    for name in ("examples", "policies"):
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / "var").mkdir()
    for block in blocks:
        if block.marked("file"):
            (tmp_path / block.marked("file")).write_text(block.text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGUA_")}
    env.update(COLUMNS="80", NO_COLOR="1", TERM="dumb")
    for block in shown:
        command = block.marked("output of")
        args = shlex.split(command)
        assert args[0] == "regua", f"{block.where}: only regua commands are run"
        result = subprocess.run([str(REGUA), *args[1:]], cwd=tmp_path, capture_output=True, text=True, env=env,
                                timeout=120)
        printed = result.stdout + (result.stderr if with_stderr else "")
        assert result.returncode == 0, f"{block.where}: `{command}` failed:\n{result.stdout}{result.stderr}"
        if block.kind == "json":
            assert_subset(json.loads(block.text), json.loads(result.stdout), f"{block.where} `{command}`")
        else:
            assert _clean(printed) == _clean(block.text), f"{block.where}: `{command}` printed:\n{printed}"


def anchors(markdown: str) -> set[str]:
    """The #anchors of a Markdown document's headings (code blocks left out)."""
    outside = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", outside, re.M)}


def broken_links(doc: Path) -> list[str]:
    """Relative links of `doc` (outside code blocks) whose file or #anchor does not exist."""
    prose = re.sub(r"^```.*?^```", "", doc.read_text(encoding="utf-8"), flags=re.S | re.M)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no such section")
    return broken


def settings_table_problems(text: str, settings_type) -> list[str]:
    """Each field of a settings Struct has a row `| `name` | `default` |` giving its default
    (TOML-like for tables, JSON otherwise); the list says what is missing or wrong."""
    defaults = settings_type()
    wrong = []
    for name in settings_type.__struct_fields__:
        row = re.search(rf"^\| `{name}` \| `([^`]*)` \|", text, re.M)
        if row is None:
            wrong.append(f"{name}: no row")
            continue
        value = getattr(defaults, name)
        if isinstance(value, dict) and value:
            expected = "{" + ", ".join(f'{k} = "{v}"' for k, v in value.items()) + "}"
        else:
            expected = json.dumps(value)
        if row.group(1) != expected:
            wrong.append(f"{name}: default {expected}, doc {row.group(1)}")
    return wrong
