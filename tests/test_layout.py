"""The layout keeps its promises: one import name (`regua`), every package mapped from its folder,
imports flowing one way (dsl → engine → plugins → portfolio → server → cli), and no import cycle
between files."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]

# What each part may import, besides itself. Lower layers never import higher ones.
ALLOWED = {
    "regua": set(),  # the package root: regua.sqlite, shared by every SQLite store
    "regua.dsl": set(),
    "regua.engine": {"regua.dsl"},
    # the built-in plugins' version is regua.__version__
    "regua.plugins": {"regua.dsl", "regua.engine", "regua"},
    "regua.portfolio": {"regua.dsl", "regua.engine", "regua.plugins", "regua"},
    # the policy lab: replay and backtest (it reads no store: the command line hands it records);
    # datasets saved by Excel pt-BR are read with portfolio.spreadsheet's number and date formats
    "regua.lab": {"regua.dsl", "regua.engine", "regua.plugins", "regua.portfolio", "regua"},
    # the language server (`regua lsp`): the checker's analysis, in an editor
    "regua.lsp": {"regua.dsl", "regua.engine", "regua.plugins", "regua"},
    # the server runs replay jobs of the lab (POST /replays) and hands it the decision log's records
    "regua.server": {"regua.dsl", "regua.engine", "regua.plugins", "regua.portfolio", "regua.lab", "regua"},
    "regua.cli": {"regua.dsl", "regua.engine", "regua.plugins", "regua.portfolio", "regua.server", "regua.lab",
                  "regua.lsp", "regua"},
}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        files = base.glob("*.py") if package == "regua" else base.rglob("*.py")
        for file in files:
            parts = [p for p in file.relative_to(base).with_suffix("").parts if p != "__init__"]
            modules[".".join([package, *parts])] = file
    return modules


MODULES = _modules()


def _part(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and ".".join(parts[:2]) in PACKAGE_DIRS else "regua"


def _imports(module: str) -> set[str]:
    """Every Régua module `module` imports, at any depth of its code (lazy imports included),
    except under `if TYPE_CHECKING:`."""
    file = MODULES[module]
    tree = ast.parse(file.read_text(encoding="utf-8"))
    skipped = {id(node) for block in ast.walk(tree)
               if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
               for node in ast.walk(block)}
    package = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    in_tree = {module for module, file in MODULES.items() if file.name == "__init__.py"}
    assert in_tree == listed


def test_no_module_uses_the_old_top_level_names():
    old = {"engine", "dsl", "plugins", "server", "portfolio", "cli"}
    offenders = []
    for folder in ("tests", "benchmarks", "examples", *PACKAGE_DIRS.values()):
        for file in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
                offenders += [f"{file.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                              if n and n.split(".")[0] in old]
    assert not offenders


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_imports_flow_one_way(part):
    wrong = sorted(f"{module} imports {target}" for module, targets in GRAPH.items() if _part(module) == part
                   for target in targets if _part(target) != part and _part(target) not in ALLOWED[part])
    assert not wrong


def test_the_engine_does_not_import_plugins():
    assert not [module for module in MODULES if _part(module) == "regua.engine"
                and any(_part(t) == "regua.plugins" for t in GRAPH[module])]


def test_no_import_cycle_between_files():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles


def test_the_wheel_installs_one_top_level_name(tmp_path):
    # Built from a copy, so setuptools' build/ folder never lands in the working tree.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in PACKAGE_DIRS.values():
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(source)], check=True, capture_output=True, cwd=tmp_path)
    [wheel] = tmp_path.glob("regua-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"regua", wheel.name.split("-")[0] + "-" +
                                                     wheel.name.split("-")[1] + ".dist-info"}
    # the grammar and the message templates travel with the code
    assert "regua/dsl/grammar.lark" in names
    assert any(name.startswith("regua/plugins/templates/") for name in names)
    assert "regua/cli/__init__.py" in names and "regua/portfolio/collection/runner.py" in names
