"""The `regua` command line, run as the real console script in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
B2B = ROOT / "policies" / "credito_b2b.regua"
_SCRIPT = Path(sys.executable).with_name("regua")
REGUA = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "regua.cli"]


def regua(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*REGUA, *map(str, args)], cwd=cwd or ROOT, capture_output=True, text=True, timeout=60)


def b2b_line(text: str) -> int:
    for number, line in enumerate(B2B.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip().startswith(text):
            return number
    raise AssertionError(text)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


B2B_INPUT = {
    "cnpj": "11.222.333/0001-81",
    "faturamento_anual": 2_000_000,
    "data_fundacao": "2015-03-10",
    "ticket_medio": 40_000,
    "valor_pedido": 30_000,
    "saldo_em_aberto": 50_000,
    "ciclos_sem_atraso": 4,
}

BROKEN = """\
policy ruim kind credit

input
  valor: money

rule a
  when valr > 10 BRL
  deny "A" "a"

rule b
  when valor > 10
  review "B" "b"

rule c
  when valor > 1 BRL
  aprove "C" "c"

default approve
"""

UNFORMATTED = """\
# Cabeçalho: este comentário fica.
policy feio kind credit
input
    valor:money   # o valor do pedido
    # prazo em dias
    prazo:int=30
rule grande
    when valor>10 BRL and prazo>=30
    deny "GRANDE" "grande"
default   approve
"""

SMALL = """\
policy pequena kind credit version "3"

input
  valor: money

rule grande
  when valor > 1_000 BRL
  review "GRANDE" "Valor grande"

rule enorme
  when valor > 100_000 BRL
  deny "ENORME" "Valor enorme"

default approve "OK" "Tudo certo"

output dobro = valor * 2

test "pequeno aprova"
  given
    valor = 10 BRL
  expect approve
  expect reasons "OK"
  expect output dobro = 20 BRL

test "grande revisa"
  given
    valor = 5_000 BRL
  expect review
"""


# ---- check ---------------------------------------------------------------------------------


def test_check_valid_folder():
    result = regua("check", "policies")
    assert result.returncode == 0, result.stderr
    count = len(list((ROOT / "policies").rglob("*.regua")))
    assert f"{count} polic" in result.stdout and "0 with errors" in result.stdout


def test_check_reports_every_error_of_a_broken_file_with_a_caret(tmp_path):
    path = write(tmp_path / "ruim.regua", BROKEN)
    result = regua("check", path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    headlines = [line for line in lines if re.match(rf"{re.escape(str(path))}:\d+:\d+: error E\d{{3}}: ", line)]
    assert [h.split(": error ")[1][:4] for h in headlines] == ["E101", "E201", "E108"]
    assert headlines[0].startswith(f"{path}:7:8: error E101: 'valr' is not defined")
    assert "did you mean 'valor'" in headlines[0]
    assert headlines[1].startswith(f"{path}:11:8:")
    assert headlines[2].startswith(f"{path}:16:3:") and "did you mean 'approve'" in headlines[2]
    # each headline is followed by the source line and a caret under the column
    for headline in headlines:
        index = lines.index(headline)
        line_no, column = map(int, headline[len(str(path)) + 1:].split(":")[:2])
        source_line, caret = lines[index + 1], lines[index + 2]
        assert source_line.split("|", 1)[1][1:] == BROKEN.splitlines()[line_no - 1]
        assert source_line.split("|")[0].strip() == str(line_no)
        gutter = caret.index("|") + 2
        assert caret[gutter:].startswith(" " * (column - 1) + "^")
        assert caret.index("^") == source_line.index("|") + 2 + column - 1
    assert "1 with errors" in result.stderr


def test_check_syntax_error(tmp_path):
    path = write(tmp_path / "sintaxe.regua", BROKEN.replace("when valr > 10 BRL", "when valor > > 10 BRL"))
    result = regua("check", path)
    assert result.returncode == 1
    assert re.search(rf"^{re.escape(str(path))}:7:\d+: error E001: ", result.stderr, re.M)
    assert "^" in result.stderr


def test_check_folder_with_one_broken_file_fails(tmp_path):
    write(tmp_path / "boa.regua", SMALL)
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "ruim.regua", BROKEN)
    result = regua("check", tmp_path)
    assert result.returncode == 1
    assert "2 policies checked: 1 with errors" in result.stderr
    assert "boa.regua:" not in result.stderr


def test_check_missing_path_is_a_usage_error(tmp_path):
    result = regua("check", tmp_path / "nao_existe.regua")
    assert result.returncode == 2
    assert "no such file" in result.stderr


# ---- fmt -----------------------------------------------------------------------------------


def test_fmt_check_reports_and_leaves_the_file_untouched(tmp_path):
    path = write(tmp_path / "feio.regua", UNFORMATTED)
    result = regua("fmt", "--check", path)
    assert result.returncode == 1
    assert "not formatted" in result.stderr and str(path) in result.stderr
    assert path.read_text(encoding="utf-8") == UNFORMATTED


def test_fmt_rewrites_keeps_comments_and_is_idempotent(tmp_path):
    path = write(tmp_path / "feio.regua", UNFORMATTED)
    result = regua("fmt", path)
    assert result.returncode == 0, result.stderr
    formatted = path.read_text(encoding="utf-8")
    assert formatted != UNFORMATTED
    assert "  valor: money  # o valor do pedido\n" in formatted
    assert "  # prazo em dias\n  prazo: int = 30\n" in formatted
    assert formatted.startswith("# Cabeçalho: este comentário fica.\npolicy feio kind credit\n")
    assert "  when valor > 10 BRL and prazo >= 30\n" in formatted
    assert "\ndefault approve\n" in formatted
    again = regua("fmt", path)
    assert again.returncode == 0
    assert "formatted" not in again.stdout
    assert path.read_text(encoding="utf-8") == formatted
    assert regua("fmt", "--check", path).returncode == 0
    assert regua("check", path).returncode == 0


def test_fmt_refuses_a_file_that_does_not_parse(tmp_path):
    text = UNFORMATTED.replace("when valor>10", "when valor>>10")
    path = write(tmp_path / "quebrado.regua", text)
    result = regua("fmt", path)
    assert result.returncode == 1
    assert "error E001" in result.stderr
    assert path.read_text(encoding="utf-8") == text


# ---- eval ----------------------------------------------------------------------------------


def test_eval_prints_the_decision_as_json(tmp_path):
    inp = write(tmp_path / "in.json", json.dumps(B2B_INPUT))
    fixtures = write(tmp_path / "fx.json", json.dumps({"bureau.serasa": {"score": {"value": 850}}}))
    result = regua("eval", B2B, "--input", inp, "--fixtures", fixtures, "--as-of", "2026-11-22", "--trace", "rules")
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert {"outcome", "outputs", "reasons", "trace", "policy"} <= set(decision)
    assert decision["policy"] == {"name": "credito_b2b", "version": "2026.11.1"}
    assert decision["outcome"] == "approve"
    assert decision["outputs"] == {"limite": "120000.00", "prazo": "28 days"}
    assert [(r["code"], r["rule"]) for r in decision["reasons"]] == [("DENTRO_DO_LIMITE", None)]
    assert all({"code", "message", "rule"} <= set(r) for r in decision["reasons"])
    assert decision["reasons"][0]["message"].startswith("Pedido dentro do limite")
    assert decision["trace"] == {"level": "rules", "rules": [], "values": {}, "tables": {}}
    assert "11222333000181" not in result.stdout and "11.222.333/0001-81" not in result.stdout


def test_eval_with_review_reasons_and_full_trace(tmp_path):
    data = {**B2B_INPUT, "valor_pedido": 100_000, "dias_atraso_max": 45}
    inp = write(tmp_path / "in.json", json.dumps(data))
    fixtures = write(tmp_path / "fx.json", json.dumps({"bureau.serasa": {"score": {"value": 650}}}))
    result = regua("eval", B2B, "--input", inp, "--fixtures", fixtures, "--as-of", "2026-11-22", "--trace", "full")
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["outcome"] == "review"
    assert [r["code"] for r in decision["reasons"]] == ["ATRASO_INTERNO", "ACIMA_DO_LIMITE"]
    assert decision["reasons"][0]["rule"] == "atraso_interno"
    assert decision["outputs"]["limite"] == "60000.00"  # 120_000 cut in half by atraso_interno
    assert {step["rule"] for step in decision["trace"]["rules"]} >= {"atraso_interno", "acima_do_limite"}
    assert decision["trace"]["tables"]["prazo_por_score"] == [{"row": 2, "line": b2b_line("501..700 -> 21 days")}]


def test_eval_null_fixture_makes_the_connector_fail(tmp_path):
    inp = write(tmp_path / "in.json", json.dumps(B2B_INPUT))
    fixtures = write(tmp_path / "fx.json", json.dumps({"bureau.serasa": None}))
    result = regua("eval", B2B, "--input", inp, "--fixtures", fixtures, "--as-of", "2026-11-22")
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["outcome"] == "review"
    assert decision["reasons"][0]["code"] == "BUREAU_INDISPONIVEL"
    assert decision["connector_calls"][0]["status"] == "failed"


def test_eval_invalid_input_exits_2_with_field_paths(tmp_path):
    data = {**B2B_INPUT, "cnpj": "11.222.333/0001-82", "faturamento_anual": "muito"}
    del data["ticket_medio"]
    inp = write(tmp_path / "in.json", json.dumps(data))
    result = regua("eval", B2B, "--input", inp)
    assert result.returncode == 2
    assert result.stdout == ""
    body = json.loads(result.stderr)
    assert body["code"] == "INVALID_INPUT"
    assert {(e["location"], e["code"]) for e in body["errors"]} == {
        ("input.cnpj", "INVALID_DOCUMENT"), ("input.faturamento_anual", "TYPE"), ("input.ticket_medio", "REQUIRED")}
    assert "11.222.333/0001-82" not in result.stderr and "11222333000182" not in result.stderr


def test_eval_malformed_json_exits_2_with_line_and_column(tmp_path):
    inp = write(tmp_path / "in.json", '{"cnpj": "x",\n  "valor": }\n')
    result = regua("eval", B2B, "--input", inp)
    assert result.returncode == 2
    body = json.loads(result.stderr)
    assert body["code"] == "MALFORMED_JSON"
    assert f"{inp}:2:12" in body["message"]


def test_eval_malformed_fixtures_exits_2(tmp_path):
    inp = write(tmp_path / "in.json", json.dumps(B2B_INPUT))
    fixtures = write(tmp_path / "fx.json", '{"bureau.serasa": ')
    result = regua("eval", B2B, "--input", inp, "--fixtures", fixtures)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert json.loads(result.stderr)["code"] == "MALFORMED_JSON"


def test_eval_broken_policy_exits_1_with_diagnostics(tmp_path):
    path = write(tmp_path / "ruim.regua", BROKEN)
    inp = write(tmp_path / "in.json", '{"valor": 1}')
    result = regua("eval", path, "--input", inp)
    assert result.returncode == 1
    assert "error E101" in result.stderr and result.stdout == ""


# ---- test ----------------------------------------------------------------------------------


def test_test_command_passes_bundled_policies_and_prints_coverage():
    result = regua("test", "policies")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("rule coverage 100%") == len(list((ROOT / "policies").rglob("*.regua")))
    assert re.search(r"^\d+ passed, 0 failed$", result.stdout, re.M)
    assert "FAIL" not in result.stdout


def test_test_command_reports_a_failing_expectation(tmp_path):
    path = write(tmp_path / "pequena.regua", SMALL.replace("  expect review\n", "  expect deny\n"))
    result = regua("test", path)
    assert result.returncode == 1
    assert "PASS pequeno aprova" in result.stdout
    assert "FAIL grande revisa (line 25)" in result.stdout
    assert "line 28: expected deny, got review (GRANDE)" in result.stdout
    assert "1 passed, 1 failed" in result.stdout


def test_test_command_reports_a_wrong_output(tmp_path):
    path = write(tmp_path / "pequena.regua", SMALL.replace("expect output dobro = 20 BRL", "expect output dobro = 21 BRL"))
    result = regua("test", path)
    assert result.returncode == 1
    assert "expected dobro = 21.00, got 20.00" in result.stdout


def test_min_coverage_fails_when_a_rule_never_fires(tmp_path):
    path = write(tmp_path / "pequena.regua", SMALL)
    plain = regua("test", path)
    assert plain.returncode == 0
    assert "rule coverage 50%; never fired: enorme" in plain.stdout
    strict = regua("test", "--min-coverage", "100", path)
    assert strict.returncode == 1
    assert "2 passed, 0 failed" in strict.stdout
    assert f"coverage too low: {path}: 50% < 100%" in strict.stderr


# ---- graph ---------------------------------------------------------------------------------


def test_graph_json_has_inputs_lookups_tables_rules_outputs_and_outcome():
    result = regua("graph", B2B, "--format", "json")
    assert result.returncode == 0, result.stderr
    graph = json.loads(result.stdout)
    nodes = {n["id"]: n for n in graph["nodes"]}
    kinds = {n["kind"] for n in graph["nodes"]}
    assert kinds == {"input", "lookup", "let", "table", "rule", "output", "outcome"}
    assert nodes["input:cnpj"]["kind"] == "input"
    assert nodes["let:relatorio"] == {"id": "let:relatorio", "kind": "lookup",
                                      "label": "relatorio = bureau.serasa",
                                      "line": b2b_line("let relatorio =")}
    assert nodes["rule:score_baixo"]["label"] == "score_baixo: deny SCORE_BAIXO"
    assert nodes["table:teto_por_score"]["kind"] == "table"
    assert {"output:limite", "output:prazo", "outcome"} <= set(nodes)
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    assert ("input:cnpj", "let:relatorio") in edges
    assert ("let:relatorio", "let:score") in edges
    assert ("let:score", "rule:score_baixo") in edges
    assert ("rule:atraso_interno", "output:limite") in edges  # `set limite = ...`
    rules = [n for n in nodes if n.startswith("rule:")]
    declared = re.findall(r"^rule (\w+)$", B2B.read_text(encoding="utf-8"), re.M)
    assert sorted(rules) == sorted(f"rule:{name}" for name in declared)
    assert all((r, "outcome") in edges for r in rules)
    order = [n["id"] for n in graph["nodes"]]
    assert all(a in nodes and b in nodes for a, b in edges)
    assert all(order.index(a) < order.index(b) for a, b in edges), "nodes are in topological order"


def test_graph_mermaid_and_dot():
    mermaid = regua("graph", B2B, "--format", "mermaid")
    assert mermaid.returncode == 0
    assert mermaid.stdout.startswith("flowchart LR\n")
    assert 'n_let_relatorio[["relatorio = bureau.serasa"]]' in mermaid.stdout
    assert 'n_rule_score_baixo>"score_baixo: deny SCORE_BAIXO"]' in mermaid.stdout
    assert 'n_input_cnpj(["cnpj"])' in mermaid.stdout
    assert "n_input_cnpj --> n_let_relatorio" in mermaid.stdout
    assert "n_rule_score_baixo --> n_outcome" in mermaid.stdout
    assert regua("graph", B2B).stdout == mermaid.stdout  # mermaid is the default
    dot = regua("graph", B2B, "--format", "dot")
    assert dot.returncode == 0
    assert dot.stdout.startswith("digraph policy {") and dot.stdout.rstrip().endswith("}")
    assert '"let:relatorio" [label="relatorio = bureau.serasa", shape=cylinder];' in dot.stdout
    assert '"input:cnpj" -> "let:relatorio";' in dot.stdout
    assert '"rule:score_baixo" -> "outcome";' in dot.stdout
    assert '"outcome" [label="outcome (default approve)", shape=doublecircle];' in dot.stdout


FIRED_POLICY = """policy encadeada kind credit
input
  valor: money
  limite: money
  restricoes: int = 0
rule acima_do_limite
  when valor > limite and not fired(deny)
  review "ACIMA" "acima do limite"
rule restricao
  when restricoes > 2
  deny "RESTRICAO" "restrição"
rule grave
  when restricoes > 10
  deny "GRAVE" "restrição grave"
rule confirma
  when fired(acima_do_limite)
  review "CONFIRMA" "confirmar"
default approve
"""


def test_graph_shows_fired_reads_between_rules(tmp_path):
    policy = write(tmp_path / "encadeada.regua", FIRED_POLICY)
    graph = json.loads(regua("graph", policy, "--format", "json").stdout)
    kinds = {(e["from"], e["to"]): e["kind"] for e in graph["edges"]}
    fired = {edge for edge, kind in kinds.items() if kind == "fired"}
    # fired(deny) reads every other deny rule; fired(acima_do_limite) reads that rule.
    assert fired == {("rule:restricao", "rule:acima_do_limite"), ("rule:grave", "rule:acima_do_limite"),
                     ("rule:acima_do_limite", "rule:confirma")}
    assert kinds[("input:valor", "rule:acima_do_limite")] == "reads"
    order = [n["id"] for n in graph["nodes"]]
    assert all(order.index(a) < order.index(b) for a, b in kinds), "rules are listed in the order they run"
    mermaid = regua("graph", policy).stdout
    assert "n_rule_grave -. fired .-> n_rule_acima_do_limite" in mermaid
    assert "n_input_valor --> n_rule_acima_do_limite" in mermaid
    dot = regua("graph", policy, "--format", "dot").stdout
    assert '"rule:acima_do_limite" -> "rule:confirma" [label="fired", style=dashed];' in dot
    assert '"input:valor" -> "rule:acima_do_limite";' in dot


def test_graph_of_a_broken_policy_fails(tmp_path):
    result = regua("graph", write(tmp_path / "ruim.regua", BROKEN))
    assert result.returncode == 1
    assert "error E101" in result.stderr


def test_version_and_help_import_neither_the_engine_nor_the_server():
    import subprocess
    import sys

    code = ("import sys\nfrom regua.cli import main\n"
            "heavy = [m for m in ('regua.engine', 'regua.server.config', 'regua.portfolio', 'rich.console', 'lark')"
            " if m in sys.modules]\nassert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_lazily_listed_command_is_the_command_of_that_name():
    from regua.cli import COMMANDS, load_command

    for name in COMMANDS:
        assert load_command(name).name == name


def test_one_command_imports_no_other_command_module():
    code = ("import sys\nfrom regua.cli import main\n"
            "try:\n    main(['check', '--help'])\nexcept SystemExit:\n    pass\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('regua.cli.'))\n"
            "assert loaded == ['regua.cli.common', 'regua.cli.policy'], loaded")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_the_command_line_trace_levels_are_the_engine_s():
    from regua.cli.policy import TRACE_LEVELS
    from regua.engine.prepared import TRACE_LEVELS as ENGINE_TRACE_LEVELS

    assert TRACE_LEVELS == ENGINE_TRACE_LEVELS


def test_regua_version_is_the_one_in_pyproject():
    import tomllib

    import regua

    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as handle:
        assert regua.__version__ == tomllib.load(handle)["project"]["version"]
    result = regua_cli_version()
    assert result.returncode == 0 and result.stdout.strip().endswith(f"version {regua.__version__}")


def regua_cli_version():
    return subprocess.run([sys.executable, "-m", "regua.cli", "--version"], capture_output=True, text=True)
