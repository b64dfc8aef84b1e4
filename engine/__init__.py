"""Régua engine: compile policies once, evaluate them many times, explain every decision.

    from regua.engine import compile_file, Connectors
    policy = compile_file("policies/credito_b2b.regua")
    decision = policy.evaluate({...}, connectors=Connectors({...}), trace="rules")
"""

from .compiler import check_source, compile_file, compile_policy
from .connectors import ConnectorError, Connectors, Fixture
from .decision import Decision, Reason
from .prepared import InvalidInput, PreparedPolicy

__all__ = [
    "check_source", "compile_file", "compile_policy", "ConnectorError", "Connectors", "Fixture",
    "Decision", "Reason", "InvalidInput", "PreparedPolicy",
]
