"""The checker's declarations pass, apart from the other passes because it builds what they all
read: it claims every name (types and values in their own namespaces), makes the enum and record
types and the input type, registers inputs, lets and tables as symbols and numbers the rules. With
it, constant_of_type, which turns a constant (a field's default, an actionable bound, a test's
value) into a value of its type and reports one written with the wrong kind of literal. Checker
has these methods from DeclarationsPass.
"""

from __future__ import annotations

from . import ast
from . import types as T
from .coercers import coerce
from .constants import NotConstant, constant
from .diagnostics import Span, did_you_mean
from .infer import BUILTIN_NAMES, Symbol
from .kinds import KINDS
from .values import CoercionError


class DeclarationsPass:
    """Checker's "declarations" pass and constant_of_type (Checker provides `policy`, `env`,
    `bag`, `kind`, `collection`, `enums`, `records`, `symbols`)."""

    def collect_declarations(self) -> None:
        p = self.policy
        # Types and values live in separate namespaces, so `porte: porte` reads naturally.
        namespaces: dict[str, dict[str, Span]] = {"type": {}, "value": {}}

        def claim(name: str, span: Span, what: str) -> bool:
            taken = namespaces["type" if what == "type" else "value"]
            if name in taken or (what != "type" and name in BUILTIN_NAMES):
                where = f" (first at line {taken[name].line})" if name in taken else " (a built-in name)"
                self.bag.error("E102", f"{what} '{name}' is already defined{where}", span)
                return False
            taken[name] = span
            return True

        for enum in p.of_type(ast.EnumDecl):
            if claim(enum.name, enum.span, "type"):
                if len(set(enum.values)) != len(enum.values):
                    self.bag.error("E102", f"enum '{enum.name}' lists a value twice", enum.span)
                self.enums[enum.name] = T.EnumType(enum.name, tuple(enum.values))
        for record in p.of_type(ast.RecordDecl):
            if claim(record.name, record.span, "type"):
                self.records[record.name] = T.RecordType(record.name)  # fields filled below (may be recursive)
        for record in p.of_type(ast.RecordDecl):
            if record.name in self.records:
                object.__setattr__(self.records[record.name], "fields", self._fields(record.fields, record.name))
        if self.kind and self.kind.fixed_input is not None:
            # The engine fills a fixed input (dsl/collection.py, dsl/monitoring.py).
            for block in p.of_type(ast.InputBlock):
                self.bag.error("E115", f"a {p.kind} policy reads {self.kind.filled_by} and declares no input; "
                               f"available: {', '.join(f.name for f in self.kind.fixed_input.fields)}", block.span)
            self.input_type = self.kind.fixed_input
            for spec in self.input_type.fields:
                claim(spec.name, p.name_span, "input")
                self.symbols[spec.name] = Symbol("input", spec.name, spec.type, None)
        else:
            self.input_type = T.RecordType("input", self._fields(p.fields, "input"))
            for f, spec in zip(p.fields, self.input_type.fields):
                if claim(f.name, f.span, "input"):
                    self.symbols[f.name] = Symbol("input", f.name, spec.type, f)
        for let in p.lets:
            if claim(let.name, let.span, "name"):
                self.symbols[let.name] = Symbol("let", let.name, T.UNKNOWN, let)
        for table in p.tables:
            if claim(table.name, table.span, "name"):
                self.symbols[table.name] = Symbol("table", table.name, T.UNKNOWN, table)
        seen_rules: dict[str, Span] = {}
        for index, rule in enumerate(p.rules):
            rule.index = index
            what = "step" if rule.is_step else "rule"
            if rule.name in seen_rules:
                self.bag.error("E103", f"{what} '{rule.name}' is already defined (first at line "
                               f"{seen_rules[rule.name].line})", rule.span)
            else:
                seen_rules[rule.name] = rule.span
            if rule.is_step and not self.collection and p.kind in KINDS:
                self.bag.error("E114", f"steps belong to collection policies; a {p.kind} policy uses rules", rule.span)
            elif self.collection and not rule.is_step:
                self.bag.error("E114", "a collection policy is made of steps placed by days, e.g. "
                               f"`step {rule.name} at D+5`", rule.span)

    def _resolve_type(self, ref: ast.TypeRef) -> T.Type:
        if ref.name == "list":
            return T.ListType(self._resolve_type(ref.element))
        found = T.BUILTIN_TYPES.get(ref.name) or self.enums.get(ref.name) or self.records.get(ref.name) \
            or self.env.records.get(ref.name)
        if found is None:
            names = list(T.BUILTIN_TYPES) + list(self.enums) + list(self.records) + list(self.env.records)
            self.bag.error("E104", f"unknown type '{ref.name}'", ref.span, did_you_mean(ref.name, names))
            return T.UNKNOWN
        return found

    def _fields(self, fields: list[ast.Field], owner: str) -> tuple[T.FieldSpec, ...]:
        specs, seen = [], set()
        for f in fields:
            if f.name in seen:
                self.bag.error("E102", f"field '{f.name}' of {owner} is already defined", f.span)
                continue
            seen.add(f.name)
            typ = self._resolve_type(f.type_ref)
            default = None
            if f.default is not None:
                default = self.constant_of_type(f.default, typ, f"default of '{f.name}'", "E204", cents=True)
            specs.append(T.FieldSpec(f.name, typ, required=f.default is None, default=default))
        return tuple(specs)

    def constant_of_type(self, expr: ast.Expr, typ: T.Type, what: str, code: str, path: str = "",
                          cents: bool = False):
        """The constant's value as `typ`; `cents` for values that stand for an input (defaults, a
        test's `given`): money in whole centavos, as a caller must send it."""
        try:
            value = constant(expr)
        except NotConstant:
            self.bag.error(code, f"the {what} must be a constant such as 0 BRL, \"texto\" or []", expr.span)
            return None
        if T.is_unknown(typ):
            return value
        mismatch = _literal_mismatch(expr, typ)
        if mismatch is not None:
            literal, expected = mismatch
            self.bag.error(code, f"the {what} must be {expected}, not {literal}", expr.span,
                           T.describe_mismatch("+", expected, literal))
            return None
        try:
            return coerce(value, typ, "", cents=cents)
        except CoercionError as error:
            where = f"{error.path} " if error.path else ""
            self.bag.error(code, f"the {what} does not fit {typ}: {where}{error.message}", expr.span)
            return None


def _literal_mismatch(expr: ast.Expr, typ: T.Type):
    """(literal type, expected type) when a constant is written with the wrong kind of literal,
    e.g. `10` for money (write 10 BRL) or `10` for a percent (write 10%)."""
    from .infer import LITERAL_TYPES

    if isinstance(expr, ast.Unary) and expr.op == "-":
        return _literal_mismatch(expr.operand, typ)
    if isinstance(expr, ast.Literal):
        literal = LITERAL_TYPES[expr.kind]
        return None if T.assignable(literal, typ) else (literal, typ)
    if isinstance(expr, ast.ListLit) and isinstance(typ, T.ListType):
        for item in expr.items:
            found = _literal_mismatch(item, typ.element)
            if found:
                return found
    if isinstance(expr, ast.RecordLit) and isinstance(typ, T.RecordType):
        for name, value in expr.entries:
            spec = typ.field(name)
            found = _literal_mismatch(value, spec.type) if spec else None
            if found:
                return found
    return None
