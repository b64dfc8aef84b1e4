"""What a policy can call: typed functions and connector lookups.

The checker only needs the types; the engine attaches implementations. Plugins add
functions and connectors to an Environment through the same objects the built-ins use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .types import Type, assignable, is_unknown

# A signature takes the argument types and returns the result type, or an error message.
Signature = Callable[[list[Type]], "Type | str"]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    signature: Signature
    impl: Callable
    doc: str = ""

    @classmethod
    def simple(cls, name: str, params: list[Type], returns: Type, impl: Callable, doc: str = "", optional: int = 0):
        """A function with fixed parameter types; the last `optional` parameters may be omitted."""

        def signature(args: list[Type]) -> Type | str:
            lo, hi = len(params) - optional, len(params)
            if not lo <= len(args) <= hi:
                count = f"{lo}" if lo == hi else f"{lo} to {hi}"
                return f"{name}() takes {count} argument{'s' if hi != 1 else ''}, got {len(args)}"
            for i, (arg, param) in enumerate(zip(args, params), start=1):
                if not assignable(arg, param) and not is_unknown(arg):
                    return f"argument {i} of {name}() must be {param}, not {arg}"
            return returns

        return cls(name, signature, impl, doc)


@dataclass(frozen=True)
class ConnectorSpec:
    """A lookup such as `bureau.serasa(cnpj)`: its parameter types and the record it returns."""

    namespace: str
    name: str
    params: tuple[Type, ...]
    returns: Type
    doc: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}.{self.name}"

    def check_args(self, args: list[Type]) -> str | None:
        if len(args) != len(self.params):
            return f"{self.qualified_name}() takes {len(self.params)} argument(s), got {len(args)}"
        for i, (arg, param) in enumerate(zip(args, self.params), start=1):
            if not assignable(arg, param) and not is_unknown(arg):
                return f"argument {i} of {self.qualified_name}() must be {param}, not {arg}"
        return None


@dataclass
class Environment:
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    connectors: dict[str, ConnectorSpec] = field(default_factory=dict)
    # Record types connectors return, so policies and tests can name them.
    records: dict[str, Type] = field(default_factory=dict)

    def add_function(self, spec: FunctionSpec) -> None:
        self.functions[spec.name] = spec

    def add_connector(self, spec: ConnectorSpec) -> None:
        self.connectors[spec.qualified_name] = spec

    @property
    def namespaces(self) -> set[str]:
        return {spec.namespace for spec in self.connectors.values()}

    def fingerprint(self) -> str:
        """Identifies the environment for the compile cache: same names and types, same code."""
        parts = sorted(f"f:{n}" for n in self.functions)
        parts += sorted(f"c:{n}:{[str(p) for p in s.params]}:{s.returns}" for n, s in self.connectors.items())
        return "|".join(parts)
