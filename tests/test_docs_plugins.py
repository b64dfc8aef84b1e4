"""Every example in docs/plugins.md is tested, so the plugin guide cannot drift from the code.

Fenced blocks are recognised by their info string and by the marker comment on the line right
before them (an HTML comment, invisible when rendered):

- `<!-- file: PATH -->` before a block: the block is the file PATH of the tutorial's package
  (meu-plugin-regua). All of them are written to a folder, which is pip-installed (like
  tests/test_plugins.py installs the example package) and whose own tests must pass;
- `<!-- layout: NAME -->` before a ```text block: the tutorial's file tree, which must list exactly
  the `file:` blocks;
- `<!-- output of: COMMAND -->`: what COMMAND (a `regua` command, or `python FILE` for a tutorial
  file) prints, run in the tutorial's folder with the package installed. JSON is compared as a
  subset (keys the doc leaves out are ignored; a list in the doc must match items of the printed
  list, in order, others may come between); every line of a text block must be a line printed
  (other lines, such as the built-in plugins, may come between);
- `<!-- excerpt of: PATH -->`: the block appears verbatim in the repository file PATH.

Blocks by kind:

- ```python without a marker — a complete module: executed, with the tutorial's package
  installed; its asserts and contract-kit calls must pass;
- ```toml — parses; the tutorial's pyproject.toml declares an entry point in the group `regua`;
- ```regua — a complete policy: it checks without errors or warnings with the tutorial's and the
  example package's plugins loaded, is formatted, and its `test` blocks pass;
- ```regua-error CODE — a complete policy that fails with diagnostics of exactly that code;
- ```sh — every `regua` command in it (after any VAR=value prefix) names a real subcommand and
  real options.

The document must also keep its tables in step with the code: connector metadata defaults, the
sandbox profiles, the built-in plugins and the contract kit's names. (Hooks and contract fields
are checked by tests/test_plugins.py.)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_blocks import Block, is_complete_policy, read_blocks
from test_plugins import EXAMPLE, forget_modules, install_package

from regua.dsl.diagnostics import PolicyError, Severity
from regua.dsl.formatter import format_source
from regua.dsl.parser import parse
from regua.engine.compiler import check_source
from regua.engine.testing import load, run_policy_tests
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
REGUA = Path(sys.executable).with_name("regua")

TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = read_blocks(TEXT, "docs/plugins.md")
TUTORIAL_FILES = {b.marked("file"): b for b in BLOCKS if b.marked("file")}


def where(block: Block) -> str:
    return f"docs/plugins.md:{block.line}"


def of_kind(*kinds: str, marked: bool | None = None) -> list:
    return [pytest.param(b, id=b.id) for b in BLOCKS
            if b.kind in kinds and (marked is None or (b.marker is not None) == marked)]


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGUA_PLUGINS_")}
    env.update(extra)
    return env


# ---- the tutorial package, written out and installed ----------------------------------------


@dataclass
class Tutorial:
    folder: Path  # the package's source, as the tutorial lays it out
    site: Path  # where it is installed
    how: str

    def env(self) -> dict:
        return clean_env(PYTHONPATH=os.pathsep.join(filter(None, [str(self.site), os.environ.get("PYTHONPATH")])))


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory) -> Tutorial:
    base = tmp_path_factory.mktemp("tutorial")
    folder = base / "meu-plugin-regua"
    for name, block in TUTORIAL_FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")
    site = base / "site"
    site.mkdir()
    how = install_package(folder, site)
    return Tutorial(folder, site, how)


@pytest.fixture
def installed(tutorial, monkeypatch):
    """The tutorial's package importable in this process (as if installed in the environment)."""
    monkeypatch.syspath_prepend(str(tutorial.site))
    monkeypatch.chdir(tutorial.folder)
    yield tutorial
    forget_modules("meu_pacote")


@pytest.fixture
def plugin_env(tutorial, monkeypatch):
    """The checker's environment with the tutorial's plugin and the example package's plugin."""
    import importlib

    monkeypatch.syspath_prepend(str(tutorial.folder))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    modules = [importlib.import_module("meu_pacote.plugin"), importlib.import_module("regua_plugin_exemplo.plugin")]
    settings = PluginSettings(allow=["sandbox_bureau"] + [module.__name__ for module in modules])
    yield Registry.load(settings, extra=modules).environment()
    forget_modules("meu_pacote", "regua_plugin_exemplo")


# ---- the document itself ----------------------------------------------------------------------


def test_the_document_has_examples():
    kinds = {b.kind for b in BLOCKS}
    assert {"python", "toml", "regua", "regua-error", "sh", "json", "text"} <= kinds
    assert {"pyproject.toml", "meu_pacote/plugin.py"} <= set(TUTORIAL_FILES)


def test_every_block_is_of_a_tested_kind():
    known = {"python", "toml", "regua", "regua-error", "sh", "json", "text"}
    unknown = [f"{where(b)}: ```{b.info}" for b in BLOCKS if b.kind not in known]
    assert not unknown, "untested code blocks:\n" + "\n".join(unknown)


def test_links_to_sections_resolve():
    outside = re.sub(r"^```.*?^```", "", TEXT, flags=re.S | re.M)
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", outside, re.M)}
    broken = [link for link in re.findall(r"\]\(#([^)]+)\)", outside) if link not in anchors]
    assert not broken, f"links to missing sections: {broken}"


def _tree(text: str) -> set[str]:
    """Files of a `tree`-style listing (folders end with /)."""
    files, stack = set(), []
    for line in text.splitlines()[1:]:  # the first line is the root folder
        match = re.match(r"^((?:│   |    )*)(?:├── |└── )(.+)$", line)
        assert match, f"not a tree line: {line!r}"
        depth, name = len(match.group(1)) // 4, match.group(2).strip()
        stack[depth:] = [name.rstrip("/")]
        if not name.endswith("/"):
            files.add("/".join(stack))
    return files


def test_the_layout_lists_exactly_the_tutorial_files():
    [layout] = [b for b in BLOCKS if b.marked("layout")]
    assert _tree(layout.text) == set(TUTORIAL_FILES)


@pytest.mark.parametrize("block", of_kind("json", "text"))
def test_json_and_text_blocks_are_marked(block: Block):
    assert block.marker and block.marker[0] in ("output of", "layout", "file"), \
        f"{where(block)}: precede it with <!-- output of: COMMAND --> (or <!-- layout: NAME --> for a file tree)"
    if block.kind == "json":
        json.loads(block.text)


# ---- tables that mirror the code ---------------------------------------------------------------


def _table_after(text: str) -> list[list[str]]:
    """The rows (without the header) of the first table from the line holding `text` on."""
    start = TEXT.index(text)
    rows = []
    for line in TEXT[TEXT.rfind("\n", 0, start) + 1:].splitlines():
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:]


def test_connector_metadata_defaults_are_the_code_defaults():
    """Every metadata attribute of the connector bases is in the table, with its default."""
    from regua.plugins import connectors

    rows = _table_after("| attribute | default | applies to |")
    documented = {row[0].strip("`"): row[1].strip("`") for row in rows}
    expected = {}
    for cls in (connectors.Connector, connectors.BureauConnector, connectors.NotificationChannel,
                connectors.NegativationService):
        for attribute, value in vars(cls).items():
            if not attribute.startswith("_") and not callable(value):
                expected[attribute] = json.dumps(value)
    assert documented == expected


def test_the_sandbox_profiles_are_the_code_profiles():
    from regua.plugins.builtin.sandbox_bureau import PROFILES

    rows = _table_after("| first two digits | profile")
    documented = {re.search(r'\(`"(\w+)"`\)', row[1]).group(1): row[0] for row in rows}
    assert documented.pop("clean") == "anything else"
    assert documented == PROFILES


def test_the_builtin_plugins_and_the_kit_are_named():
    import regua.plugins.testing as kit
    from regua.plugins.manager import DEFAULT_PLUGINS

    names = [f"`{name}`" for name in DEFAULT_PLUGINS.values()]
    names += [f"`{name}(" for name in kit.__all__ if name.startswith(("check_", "sample_"))]
    names += [f"`{name}(" for name in ("regua_plugin_manager", "regua_registry")]
    names += [f"`{name}`" for name in ("regua_negativation_provider", "KIT_CPF", "KIT_CNPJ")]
    missing = [name for name in names if name not in TEXT]
    assert not missing, f"not documented: {missing}"


# ---- python, toml, excerpts --------------------------------------------------------------------


@pytest.mark.parametrize("block", of_kind("python"))
def test_python_blocks_compile(block: Block):
    compile(block.text, where(block), "exec")


@pytest.mark.parametrize("block", of_kind("toml"))
def test_toml_blocks_parse(block: Block):
    data = tomllib.loads(block.text)
    if block.marked("file") == "pyproject.toml":
        assert data["project"]["entry-points"]["regua"], f"{where(block)}: no entry point in the group regua"


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS if b.marked("excerpt of")])
def test_excerpts_are_verbatim(block: Block):
    source = (ROOT / block.marked("excerpt of")).read_text(encoding="utf-8")
    assert block.text in source, f"{where(block)}: no longer what {block.marked('excerpt of')} says"


@pytest.mark.parametrize("block", of_kind("python", marked=False))
def test_python_example_runs(block: Block, installed):
    namespace = {"__name__": f"docs_plugins_L{block.line}"}
    exec(compile(block.text, where(block), "exec"), namespace)  # noqa: S102 — our own documentation


# ---- the tutorial, end to end --------------------------------------------------------------------


def _contains(expected, actual, path="$"):
    """Every key the doc shows has the value printed; a list's items match printed items in order."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}: missing key {key!r} (got {sorted(actual)})"
            _contains(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        remaining = list(actual)
        for n, item in enumerate(expected):
            while remaining:
                candidate = remaining.pop(0)
                try:
                    _contains(item, candidate, f"{path}[{n}]")
                    break
                except AssertionError:
                    continue
            else:
                raise AssertionError(f"{path}: nothing printed matches {item!r} (in order) in {actual!r}")
    else:
        assert expected == actual, f"{path}: doc says {expected!r}, printed {actual!r}"


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS if b.marked("output of")])
def test_command_output(block: Block, tutorial: Tutorial):
    args = shlex.split(block.marked("output of"))
    if args[0] == "regua":
        command = [str(REGUA), *args[1:]]
    else:
        assert args[0] == "python" and args[1] in TUTORIAL_FILES, f"{where(block)}: run regua or a tutorial file"
        command = [sys.executable, *args[1:]]
    result = subprocess.run(command, cwd=tutorial.folder, capture_output=True, text=True, env=tutorial.env())
    assert result.returncode == 0, f"{where(block)}: `{block.marked('output of')}` failed:\n{result.stderr}"
    if block.kind == "json":
        _contains(json.loads(block.text), json.loads(result.stdout))
    else:
        def lines(text: str) -> list[str]:
            return [" ".join(line.split()) for line in text.splitlines() if line.strip()]

        missing = [line for line in lines(block.text) if line not in lines(result.stdout)]
        assert not missing, f"{where(block)}: not printed: {missing}\nprinted:\n{result.stdout}"


def test_the_tutorial_package_tests_pass(tutorial: Tutorial):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            cwd=tutorial.folder, capture_output=True, text=True, env=tutorial.env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b3 passed\b", result.stdout), result.stdout


# ---- policies and shell commands ----------------------------------------------------------------


@pytest.mark.parametrize("block", of_kind("regua"))
def test_policy_example(block: Block, plugin_env, tmp_path: Path):
    assert is_complete_policy(block.text), f"{where(block)}: not a complete policy"
    try:
        checked = check_source(block.text, where(block), plugin_env)
    except PolicyError as error:
        pytest.fail(f"{where(block)}: the example does not compile:\n{error.render()}")
    assert not checked.warnings, f"{where(block)}: " + "; ".join(w.headline() for w in checked.warnings)
    assert format_source(block.text) == block.text, f"{where(block)}: not formatted; run `regua fmt` on it"
    path = tmp_path / "example.regua"
    path.write_text(block.text, encoding="utf-8")
    report = run_policy_tests(*load(path, plugin_env))
    assert report.cases, f"{where(block)}: a policy example shows its tests"
    failures = [f"{case.name}: {'; '.join(case.failures)}" for case in report.cases if not case.passed]
    assert not failures, f"{where(block)}: policy tests fail:\n" + "\n".join(failures)


@pytest.mark.parametrize("block", of_kind("regua-error"))
def test_error_example(block: Block, plugin_env):
    assert block.argument, f"{where(block)}: write the expected code, e.g. ```regua-error E203"
    assert is_complete_policy(block.text), f"{where(block)}: an error example must be a complete policy"
    with pytest.raises(PolicyError) as raised:
        check_source(block.text, where(block), plugin_env)
    codes = {d.code for d in raised.value.diagnostics if d.severity is Severity.ERROR}
    assert codes == {block.argument}, f"{where(block)}: expected only {block.argument}, got:\n{raised.value.render()}"
    parse(block.text)
    assert format_source(block.text) == block.text, f"{where(block)}: not formatted; run `regua fmt` on it"


@pytest.mark.parametrize("block", of_kind("sh"))
def test_shell_commands_exist(block: Block):
    from regua.cli import main

    regua_commands = []
    for line in block.text.splitlines():
        words = shlex.split(line.split("#")[0])
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
            words.pop(0)
        if words and words[0] == "regua":
            regua_commands.append(words[1:])
    for args in regua_commands:
        sub = main.commands.get(args[0])
        assert sub is not None, f"{where(block)}: no such command `regua {args[0]}`"
        options = {opt for param in sub.params for opt in param.opts + param.secondary_opts} | {"--help"}
        for arg in args[1:]:
            if arg.startswith("--"):
                assert arg.split("=")[0] in options, f"{where(block)}: `regua {args[0]}` has no option {arg}"
