"""Checks of the `test` blocks written in a policy (E501): names unique, every `given` an input of
the right type (money in whole centavos, as a caller sends it), every connector answer a fixture
of the connector's contract, every expectation an outcome, step or output the policy has.

Run by the checker as its "tests" pass; `regua test` (engine/testing.py) runs the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .diagnostics import did_you_mean

if TYPE_CHECKING:
    from .checker import Checker


def check_policy_tests(checker: Checker) -> None:
    fields = {f.name: f for f in checker.input_type.fields}
    outputs = {o.name: o.type for o in checker.outputs}
    names: set[str] = set()
    for test in checker.policy.tests:
        if test.name in names:
            checker.bag.error("E501", f"test '{test.name}' is defined twice", test.span)
        names.add(test.name)
        given: set[str] = set()
        for stmt in test.statements:
            if stmt.kind == "given":
                for name, value, span in stmt.value:
                    if name not in fields:
                        checker.bag.error("E501", f"'{name}' is not an input", span, did_you_mean(name, fields))
                        continue
                    given.add(name)
                    checker.constant_of_type(value, fields[name].type, f"value of '{name}'", "E501", name, cents=True)
            elif stmt.kind in ("fixture", "failure"):
                spec = checker.env.connectors.get(stmt.name)
                if spec is None:
                    checker.bag.error("E501", f"unknown connector '{stmt.name}'", stmt.span,
                                      did_you_mean(stmt.name, checker.env.connectors))
                elif stmt.kind == "fixture":
                    checker.constant_of_type(stmt.value, spec.returns, f"answer of {stmt.name}", "E501", stmt.name)
            elif stmt.kind == "outcome":
                if stmt.name not in checker.severities:
                    checker.bag.error("E501", f"'{stmt.name}' is not an outcome of a {checker.policy.kind} policy",
                                      stmt.span, did_you_mean(stmt.name, checker.severities))
            elif stmt.kind == "steps":
                steps = [r.name for r in checker.policy.rules if r.is_step]
                for name in stmt.value:
                    if name not in steps:
                        checker.bag.error("E501", f"'{name}' is not a step of this policy", stmt.span,
                                          did_you_mean(name, steps))
            elif stmt.kind == "output":
                if stmt.name not in outputs:
                    checker.bag.error("E501", f"'{stmt.name}' is not an output", stmt.span,
                                      did_you_mean(stmt.name, outputs))
                else:
                    checker.constant_of_type(stmt.value, outputs[stmt.name], f"expected '{stmt.name}'", "E501",
                                             stmt.name)
        missing = [f.name for f in checker.input_type.fields if f.required and f.name not in given]
        if missing:
            checker.bag.error("E501", f"test '{test.name}' does not give the required input(s): {', '.join(missing)}",
                              test.span)
        if not any(s.kind in ("outcome", "reasons", "output", "steps") for s in test.statements):
            checker.bag.error("E501", f"test '{test.name}' expects nothing; add `expect approve` or similar", test.span)
