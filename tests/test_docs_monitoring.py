"""docs/monitoring.md is kept true by these tests: when the code or the guide drifts, one fails.

- ```regua blocks: a complete policy (starting with `policy`) is a monitoring policy that compiles
  without warnings, is formatted and whose `test` blocks pass; a block after
  `<!-- excerpt of: PATH -->` appears verbatim in PATH; any other block is wrapped into a
  monitoring policy and must compile.
- ```python blocks run in document order, in one namespace, against a real sandbox server over a
  socket (tests/server_harness.py), `http://127.0.0.1:8000` standing for its address; their
  asserts must pass.
- `<!-- output of: regua … -->` blocks are what the command prints, run in document order in one
  fresh folder holding copies of examples/ and policies/ and every `<!-- file: NAME -->` block
  (JSON: the doc's keys are a subset of the output; text: exact). ```json blocks are valid JSON and
  say what they are.
- ```toml blocks are valid: a `[monitoring]` table (MonitoringSettings, no problems()) or the
  built-in HTTP monitoring source's settings.
- The tables match the code: the input (dsl.monitoring.INPUT, in order, with types), the payment
  behaviour (BEHAVIOUR), the `CustomerAccount` record (ACCOUNT), the actions in severity order
  (ACTIONS), the settings with their defaults (MonitoringSettings), the re-check summary
  (RecheckSummary), the answer of POST /events (EventResult) and the limit history (the
  `limit_changes` table).
- Named in backticks: every event, trend, output, recipient, alert field, error code the monitoring
  endpoints answer with, rule and reason code of the bundled policy, `regua monitor` option and
  notification template (which must exist).
- ```sh blocks name real `regua` subcommands and options. Relative links resolve.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import traceback
from pathlib import Path

import msgspec
import pytest
from doc_blocks import (
    Block,
    anchors,
    broken_links,
    check_complete_policy,
    check_fragment,
    check_shell_commands,
    is_complete_policy,
    read_blocks,
    run_command_outputs,
    settings_table_problems,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "monitoring.md"
TEXT = DOC.read_text(encoding="utf-8")
REGUA = Path(sys.executable).with_name("regua")
BUNDLED = ROOT / "policies" / "monitoramento_credito.regua"

BLOCKS = read_blocks(TEXT, "docs/monitoring.md")
DOC_URL = "http://127.0.0.1:8000"


def of_kind(kind: str) -> list:
    return [pytest.param(b, id=b.id) for b in BLOCKS if b.kind == kind]


def backticked(name: str) -> bool:
    return f"`{name}`" in TEXT


def table_after(header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line starts with `header`, as stripped cells."""
    lines = TEXT.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(header)]
    assert len(starts) == 1, f"expected one table starting with {header!r}, found {len(starts)}"
    rows = []
    for line in lines[starts[0] + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def names_and_types(rows: list[list[str]]) -> list[tuple[str, str]]:
    return [(row[0].strip("`"), row[1]) for row in rows]


# ---- policies ------------------------------------------------------------------------------


def test_the_guide_has_every_kind_of_example():
    kinds = {b.kind for b in BLOCKS}
    assert {"regua", "python", "sh", "toml", "json", "text"} <= kinds
    assert any(is_complete_policy(b.text) and "\ntest " in b.text for b in BLOCKS if b.kind == "regua")


@pytest.mark.parametrize("block", of_kind("regua"))
def test_policy_block(block: Block, tmp_path: Path):
    excerpt = block.marked("excerpt of")
    if excerpt:
        assert block.text in (ROOT / excerpt).read_text(encoding="utf-8"), \
            f"{block.where}: not (or no longer) verbatim in {excerpt}"
        return
    if not is_complete_policy(block.text):
        source = "policy fragmento kind monitoring\n\n" + block.text
        if not re.search(r"^default ", block.text, re.M):
            source += "\ndefault keep\n"
        if not re.search(r"^output ", block.text, re.M):
            source += "\noutput new_limit = limit, notify = []\n"
        check_fragment(block, source)
    else:
        check_complete_policy(block, "monitoring", tmp_path)


@pytest.mark.parametrize("block", of_kind("json"))
def test_json_block(block: Block):
    json.loads(block.text)
    assert block.marker, f"{block.where}: say what it is: <!-- file: NAME --> or <!-- output of: COMMAND -->"


def test_file_names_are_unique():
    names = [b.marker[1] for b in BLOCKS if b.marker and b.marker[0] == "file"]
    assert len(names) == len(set(names)), names


# ---- the tables match the code -------------------------------------------------------------


def test_the_input_table_lists_exactly_the_input():
    from regua.dsl.monitoring import INPUT

    documented = names_and_types(table_after("| input | type | meaning |"))
    expected = [(name, str(typ)) for name, (typ, _default, _meaning) in INPUT.items()]
    assert documented == expected, "the input table is out of step with dsl/monitoring.py INPUT"


def test_the_behaviour_table_lists_exactly_the_behaviour():
    from regua.dsl.monitoring import BEHAVIOUR

    documented = names_and_types(table_after("| field | type | definition |"))
    assert documented == [(name, str(typ)) for name, (typ, _d, _m) in BEHAVIOUR.items()]


def test_the_account_table_lists_exactly_the_customer_account():
    from regua.dsl.monitoring import ACCOUNT

    documented = names_and_types(_table_starting_with("| field | type | meaning |", "known"))
    assert documented == [(spec.name, str(spec.type)) for spec in ACCOUNT.fields]


def test_the_actions_are_listed_in_severity_order():
    from regua.dsl.monitoring import ACTIONS

    rows = table_after("| action | severity |")
    assert [(row[0].strip("`"), int(row[1])) for row in rows] == sorted(ACTIONS.items(), key=lambda a: a[1])
    assert "keep < raise < review < reduce < block" in (ROOT / "dsl" / "monitoring.py").read_text(encoding="utf-8")


def test_the_trend_constants_are_the_documented_ones():
    from regua.portfolio.monitoring.features import TREND_THRESHOLD_DAYS, TREND_WINDOW

    assert f"`TREND_WINDOW = {TREND_WINDOW}`" in TEXT
    assert f"`TREND_THRESHOLD_DAYS = {TREND_THRESHOLD_DAYS}`" in TEXT
    assert f"last {TREND_WINDOW} receivables due" in TEXT and f"> {TREND_THRESHOLD_DAYS}," in TEXT


def test_every_setting_is_documented_with_its_default():
    from regua.portfolio.monitoring.settings import MonitoringSettings

    wrong = settings_table_problems(TEXT, MonitoringSettings)
    assert not wrong, f"settings table: {wrong}"


def _table_starting_with(header: str, first: str) -> list[list[str]]:
    """The rows of the table whose header line starts with `header` and whose first row names `first`."""
    lines = TEXT.splitlines()
    for i, line in enumerate(lines[:-2]):
        if line.startswith(header) and lines[i + 2].startswith(f"| `{first}`"):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append([cell.strip() for cell in row.strip().strip("|").split("|")])
            return rows
    raise AssertionError(f"no table {header!r} starting with `{first}`")


def _names(rows: list[list[str]]) -> list[str]:
    """Field names of a table's first column; a cell may name several (`a`, `b`)."""
    return [name for row in rows for name in re.findall(r"`(\w+)`", row[0])]


def test_the_recheck_summary_table_lists_every_field():
    from regua.portfolio.monitoring.recheck import RecheckSummary
    from regua.server.api.monitoring import RecheckResult

    documented = _names(_table_starting_with("| field | meaning |", "as_of"))
    assert documented == list(RecheckSummary.__dataclass_fields__), "the re-check summary table"
    assert documented == list(RecheckResult.__struct_fields__), "POST /monitoring/recheck answers the same summary"


def test_the_event_answer_table_lists_every_field():
    from regua.server.api.monitoring import EventResult

    assert _names(_table_starting_with("| field | meaning |", "status")) == list(EventResult.__struct_fields__)


def test_the_limit_history_table_lists_every_column(tmp_path: Path):
    from regua.portfolio.monitoring.store import MonitoringStore

    store = MonitoringStore(str(tmp_path / "regua.db"))
    columns = [row[1] for row in store.db.execute("pragma table_info(limit_changes)").fetchall()]
    store.close()
    assert _names(_table_starting_with("| field | meaning |", "id")) == columns


def test_the_alert_fields_are_documented():
    from regua.plugins.contracts import AlertKind, MonitoringAlert

    rows = _table_starting_with("| field | type | meaning |", "id")
    assert _names(rows) == list(MonitoringAlert.__struct_fields__)
    assert all(backticked(kind) for kind in AlertKind.__args__)


# ---- names the guide must use ---------------------------------------------------------------


def test_events_trends_outputs_and_recipients_are_named():
    from regua.dsl.monitoring import EVENTS, OUTPUTS, RECIPIENTS, TRENDS

    missing = [n for n in (*EVENTS, *TRENDS, *OUTPUTS, *RECIPIENTS) if not backticked(n)]
    assert not missing, f"not named in docs/monitoring.md: {missing}"


def test_every_rule_and_reason_of_the_bundled_policy_is_described():
    from regua.dsl.parser import parse

    policy = parse(BUNDLED.read_text(encoding="utf-8"), str(BUNDLED))
    rows = table_after("| rule | when | action, code |")
    assert [row[0].strip("`") for row in rows] == [rule.name for rule in policy.rules], \
        "the bundled policy's table lists its rules in the file's order"
    for row, rule in zip(rows, policy.rules):
        assert row[2] == f"{rule.action.verb} `{rule.action.code}`", f"{rule.name}: {row[2]}"
    assert f"version `{policy.version}`" in TEXT


def test_every_error_code_of_the_monitoring_endpoints_is_documented():
    api = (ROOT / "server" / "api" / "monitoring.py").read_text(encoding="utf-8")
    service = (ROOT / "server" / "monitoring.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'ApiError\(\d+, "([A-Z_]+)"', api)) | set(re.findall(r'SignatureError\("([A-Z_]+)"', service))
    assert {"SIGNATURE_MISSING", "IDEMPOTENCY_CONFLICT", "UNKNOWN_CUSTOMER"} <= codes, "the scan finds the codes"
    rows = {m.group(1) for m in re.finditer(r"^\| \d{3} \| `([A-Z_]+)` \|", TEXT, re.M)}
    missing = sorted(codes - rows)
    assert not missing, f"error codes missing from the errors table of docs/monitoring.md: {missing}"
    http_api = (ROOT / "docs" / "http-api.md").read_text(encoding="utf-8")
    missing = sorted(code for code in codes if f"`{code}`" not in http_api)
    assert not missing, f"error codes missing from docs/http-api.md: {missing}"


def test_every_monitor_option_is_documented():
    from regua.cli import main

    command = main.commands["monitor"]
    options = [opt for param in command.params for opt in param.opts + param.secondary_opts if opt.startswith("--")]
    missing = [opt for opt in options if opt not in TEXT]
    assert not missing, f"`regua monitor` options not documented: {missing}"


def test_the_notification_templates_exist():
    templates = ROOT / "plugins" / "templates"
    for name in ("monitoramento_gerente", "limite_atualizado"):
        assert backticked(name) and (templates / f"{name}.txt").exists(), name


# ---- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("block", of_kind("toml"))
def test_toml_block(block: Block):
    from regua.plugins.builtin.monitoring_source import regua_monitoring_sources
    from regua.portfolio.monitoring.settings import MonitoringSettings

    data = tomllib.loads(block.text)
    if "plugins" in data:
        config = data["plugins"]["config"]
        assert set(config) == {"monitoring_sources"}, f"{block.where}: only the monitoring sources' settings"
        assert regua_monitoring_sources(config), f"{block.where}: no source built"
        return
    assert set(data) == {"monitoring"}, f"{block.where}: show the [monitoring] table only"
    try:
        settings = msgspec.convert(data["monitoring"], MonitoringSettings)
    except msgspec.ValidationError as error:
        pytest.fail(f"{block.where}: not a valid [monitoring] table: {error}")
    assert settings.problems() == [], f"{block.where}: {settings.problems()}"


# ---- commands and their output -------------------------------------------------------------


@pytest.mark.parametrize("block", of_kind("sh"))
def test_shell_commands_exist(block: Block):
    check_shell_commands(block)


def test_command_outputs_in_order(tmp_path: Path):
    """The quick start and the re-checks, for real: every `output of:` command in document order."""
    run_command_outputs(BLOCKS, tmp_path, with_stderr=False)


# ---- the HTTP walkthrough, against a real server ---------------------------------------------


def test_python_examples_run_against_a_real_server(tmp_path: Path):
    from server_harness import ThreadedServer, sandbox_settings

    blocks = [b for b in BLOCKS if b.kind == "python"]
    assert len(blocks) >= 3 and DOC_URL in blocks[0].text
    with ThreadedServer(sandbox_settings(tmp_path)) as server:
        namespace: dict = {"__name__": "monitoring_walkthrough"}
        for block in blocks:
            code = compile(block.text.replace(DOC_URL, server.url), block.where, "exec")
            try:
                exec(code, namespace)  # noqa: S102 — the doc's own example
            except AssertionError:
                line = traceback.extract_tb(sys.exc_info()[2])[-1].lineno
                pytest.fail(f"docs/monitoring.md:{block.line + line}: an assert of the example fails")
        outbox = list(tmp_path.glob("**/*.eml"))
    # the negativation told the manager and the customer, the review the manager: e-mails in the sandbox outbox
    assert len(outbox) == 3, outbox


# ---- links ---------------------------------------------------------------------------------

def test_links_resolve():
    broken = broken_links(DOC)
    assert not broken, f"broken links in docs/monitoring.md: {broken}"


def test_other_docs_link_to_sections_that_exist():
    for other in [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]:
        for anchor in re.findall(r"monitoring\.md#([^)]+)\)", other.read_text(encoding="utf-8")):
            assert anchor in anchors(TEXT), f"{other.name} links to monitoring.md#{anchor}, which does not exist"


# ---- the README's monitoring paragraph ------------------------------------------------------


def test_readme_monitoring_commands_run_as_written(tmp_path: Path):
    """The README's `## Monitor credit` commands, on the demo portfolio its `## Collect` block imports."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "[docs/monitoring.md](docs/monitoring.md)" in readme
    collect = re.search(r"## Collect\n.*?```sh\n(.*?)```", readme, re.S).group(1)
    monitor = re.search(r"## Monitor credit\n.*?```sh\n(.*?)```", readme, re.S).group(1)
    imports = [line for line in collect.strip().splitlines() if " import " in line]
    outputs = []
    for line in imports + monitor.strip().splitlines():
        args = shlex.split(line.split("   #")[0].replace("var/demo.db", str(tmp_path / "demo.db")))
        assert args[0] == ".venv/bin/regua", line
        result = subprocess.run([str(REGUA), *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300,
                                env={**{k: v for k, v in os.environ.items() if not k.startswith("REGUA_")},
                                     "COLUMNS": "80"})
        assert result.returncode == 0, (line, result.stderr)
        outputs.append(result.stdout)
    dry_run, run = outputs[-2:]
    assert "(dry run)" in dry_run and "block" in dry_run
    blocked = re.search(r"│\s+blocked\s+│\s+(\d+) │", run)
    assert blocked and blocked.group(1) == "1", run
    assert list((tmp_path / "outbox").glob("*.eml")), "the manager was told, by e-mail to the sandbox outbox"
