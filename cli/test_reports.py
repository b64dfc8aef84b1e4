"""`regua test --format json|junit`: the test results as data for CI servers and tools."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from regua.dsl.diagnostics import PolicyError
from regua.engine.testing import PolicyTestReport


def json_report(reports: list[PolicyTestReport], broken: list[tuple[str, PolicyError]], problems: list[str]) -> dict:
    return {
        "passed": sum(case.passed for report in reports for case in report.cases),
        "failed": sum(not case.passed for report in reports for case in report.cases) + len(broken),
        "policies": [{
            "policy": report.policy, "file": report.file, "coverage": round(report.coverage, 2),
            "uncovered_rules": report.uncovered_rules, "unmatched_table_rows": report.table_rows,
            "tests": [{"name": case.name, "line": case.line, "passed": case.passed, "failures": case.failures,
                       "outcome": case.outcome, "reasons": case.reasons, "duration_ms": round(case.duration_ms, 3)}
                      for case in report.cases],
        } for report in reports],
        "errors": [{"file": file, "diagnostics": [d.to_dict() for d in error.diagnostics]} for file, error in broken],
        "problems": problems,
    }


def junit_xml(reports: list[PolicyTestReport], broken: list[tuple[str, PolicyError]]) -> str:
    """One <testsuite> per policy, one <testcase> per test; a policy that does not compile is a
    suite with one <error>."""
    suites = ET.Element("testsuites")
    for report in reports:
        failures = sum(not case.passed for case in report.cases)
        suite = ET.SubElement(suites, "testsuite", name=report.policy, file=report.file, tests=str(len(report.cases)),
                              failures=str(failures), errors="0",
                              time=f"{sum(c.duration_ms for c in report.cases) / 1000:.6f}")
        for case in report.cases:
            element = ET.SubElement(suite, "testcase", name=case.name, classname=report.policy, file=report.file,
                                    line=str(case.line), time=f"{case.duration_ms / 1000:.6f}")
            if not case.passed:
                ET.SubElement(element, "failure", message=case.failures[0]).text = "\n".join(case.failures)
    for file, error in broken:
        suite = ET.SubElement(suites, "testsuite", name=file, file=file, tests="1", failures="0", errors="1")
        element = ET.SubElement(suite, "testcase", name="compile", classname=file)
        ET.SubElement(element, "error", message=error.diagnostics[0].headline()).text = \
            "\n".join(d.headline() for d in error.diagnostics)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)
