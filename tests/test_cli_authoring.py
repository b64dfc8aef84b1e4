"""What a policy author asks of the command line beyond the basics: JSON diagnostics, honest
warning counts, formatting diffs, and test selection, verbosity and machine-readable reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from test_cli import BROKEN, SMALL, UNFORMATTED, regua, write

# A table that does not cover every value (W404) in a policy that also has an error (E101).
WARNED_AND_BROKEN = """\
policy aviso kind credit

input
  x: int

table t (first) by x
  < 0 -> 1
  > 0 -> 2

rule r
  when y > 1
  deny "R" "r"

default approve

output t
"""


def test_check_json_lists_every_diagnostic_with_code_and_location(tmp_path):
    path = write(tmp_path / "ruim.regua", BROKEN)
    result = regua("check", "--json", path)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    [entry] = report["files"]
    assert entry["file"] == str(path) and report["with_errors"] == 1
    codes = [d["code"] for d in entry["diagnostics"]]
    assert "E101" in codes and all(d["location"]["line"] >= 1 for d in entry["diagnostics"])
    assert not result.stderr


def test_the_summary_counts_warnings_of_files_with_errors(tmp_path):
    path = write(tmp_path / "aviso.regua", WARNED_AND_BROKEN)
    result = regua("check", path)
    assert result.returncode == 1
    assert "W404" in result.stderr and "E101" in result.stderr
    assert "1 policy checked: 1 with errors, 1 warning(s)" in result.stderr
    assert json.loads(regua("check", "--json", path).stdout)["warnings"] == 1


def test_fmt_diff_shows_the_change_and_writes_nothing(tmp_path):
    path = write(tmp_path / "feio.regua", UNFORMATTED)
    result = regua("fmt", "--diff", path)
    assert result.returncode == 1
    assert result.stdout.startswith(f"--- {path}\n+++ {path} (formatted)\n")
    assert "-rule grande\n" not in result.stdout and "+default approve\n" in result.stdout
    assert path.read_text(encoding="utf-8") == UNFORMATTED
    regua("fmt", path)
    clean = regua("fmt", "--diff", path)
    assert clean.returncode == 0 and clean.stdout == ""


def test_run_selects_tests_by_name_and_coverage_counts_only_those(tmp_path):
    path = write(tmp_path / "pequena.regua", SMALL)
    result = regua("test", "--run", "^grande", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS grande revisa" in result.stdout and "pequeno aprova" not in result.stdout
    assert "1 passed, 0 failed" in result.stdout
    assert "rule coverage 50%; never fired: enorme" in result.stdout
    bad = regua("test", "--run", "(", path)
    assert bad.returncode == 2 and "not a regular expression" in bad.stderr


def test_a_policy_without_tests_fails_unless_allowed(tmp_path):
    path = write(tmp_path / "sem_testes.regua", SMALL.split('test "pequeno aprova"')[0])
    result = regua("test", path)
    assert result.returncode == 1 and f"{path}: no tests" in result.stderr
    assert regua("test", "--allow-no-tests", path).returncode == 0
    unmatched = regua("test", "--run", "nenhum", write(tmp_path / "pequena.regua", SMALL))
    assert unmatched.returncode == 1 and "no tests matching 'nenhum'" in unmatched.stderr


def test_verbose_shows_outcome_reasons_and_time(tmp_path):
    path = write(tmp_path / "pequena.regua", SMALL)
    result = regua("test", "-v", path)
    assert result.returncode == 0
    assert "approve (OK) in " in result.stdout and "review (GRANDE) in " in result.stdout


def test_json_and_junit_reports(tmp_path):
    path = write(tmp_path / "pequena.regua", SMALL.replace("  expect review\n", "  expect deny\n"))
    broken = write(tmp_path / "ruim.regua", BROKEN)
    result = regua("test", "--format", "json", path, broken)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (report["passed"], report["failed"]) == (1, 2)  # one failing test, one policy that does not compile
    [policy] = report["policies"]
    failing = next(t for t in policy["tests"] if not t["passed"])
    assert failing["name"] == "grande revisa" and failing["outcome"] == "review"
    assert failing["failures"] == ["line 28: expected deny, got review (GRANDE)"]
    assert report["errors"][0]["file"] == str(broken)
    junit = ET.fromstring(regua("test", "--format", "junit", path, broken).stdout)
    suites = {suite.get("name"): suite for suite in junit}
    assert suites["pequena"].get("tests") == "2" and suites["pequena"].get("failures") == "1"
    assert suites["pequena"].find("testcase[@name='grande revisa']/failure") is not None
    assert suites[str(broken)].find("testcase/error") is not None
