"""Checks of the `actionable` block: what a counterfactual explanation may change, within which bounds.

    actionable
      valor_pedido in 1 BRL .. 1_000_000 BRL "valor do pedido"
      bureau.serasa.score.value in 0 .. 1000 "score de crédito"

A target is an input of the policy or a numeric fact of a connector answer the policy reads. Only
numbers move (int, decimal, money, percent): a counterfactual says "com valor do pedido até
R$ 32.000", never "com outro CNPJ". Facts about who the customer is may never be actionable:
documents and dates (a birth or foundation date is an age) by type, and age, sector, sex, race and
the like by name (E119) — an explanation must not suggest being someone else.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from . import ast
from . import types as T
from .constants import NotConstant, constant
from .diagnostics import DiagnosticBag, did_you_mean

NUMERIC = ("int", "decimal", "money", "percent")
# Words (parts of a snake_case name, accents removed) naming who the customer is.
PROTECTED_WORDS = frozenset((
    "idade", "age", "nascimento", "birth", "birthday", "fundacao", "foundation", "founded", "abertura",
    "setor", "sector", "cnae", "atividade", "industry", "segmento", "sexo", "sex", "genero", "gender",
    "raca", "race", "cor", "etnia", "ethnicity", "religiao", "religion", "nacionalidade", "nationality",
    "civil", "documento", "document", "cpf", "cnpj", "cep", "uf", "estado", "cidade", "municipio", "regiao",
))
PROTECTED_TYPES = ("cpf", "cnpj", "date")


@dataclass(frozen=True)
class ActionableTarget:
    """A checked actionable declaration: where the value lives and its numeric type."""

    label: str  # as written: `valor_pedido`, `bureau.serasa.score.value`
    connector: str | None  # qualified connector name, None for an input
    path: tuple[str, ...]  # the input's name, or the field path inside the connector's answer
    type_name: str
    low: object
    high: object
    text: str | None  # the label for people, e.g. "valor do pedido"


def _plain(word: str) -> str:
    return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().lower()


def protected_word(path: list[str]) -> str | None:
    """The word of a target's last name that says it describes who the customer is, if any."""
    for part in _plain(path[-1]).split("_"):
        if part in PROTECTED_WORDS:
            return part
    return None


def used_connectors(policy: ast.Policy) -> set[str]:
    """Qualified names of the connectors the policy calls anywhere."""
    roots = [let.value for let in policy.lets] + [r.condition for r in policy.rules]
    roots += [a.value for r in policy.rules for a in r.sets]
    roots += [o.value for o in policy.outputs if o.value is not None]
    for table in policy.tables:
        roots += list(table.inputs) + [row.result for row in table.rows]
    found = set()
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.Call) and node.namespace is not None:
                found.add(f"{node.namespace}.{node.func}")
    return found


def check_actionable(policy: ast.Policy, input_type: T.RecordType, connectors: dict, bag: DiagnosticBag,
                     constant_of_type) -> list[ActionableTarget]:
    """E102/E118/E119/E207 for each declaration; the checked targets (those without errors)."""
    decls = policy.of_type(ast.ActionableDecl)
    for extra in decls[1:]:
        bag.error("E102", "the actionable block is declared twice; list every actionable fact in one block",
                  extra.span)
    items = decls[0].items if decls else []
    if not items:
        return []
    used = used_connectors(policy)
    seen: dict[str, int] = {}
    out = []
    for item in items:
        if item.target in seen:
            bag.error("E102", f"'{item.target}' is already actionable (line {seen[item.target]})", item.span)
            continue
        seen[item.target] = item.span.line
        found = _resolve(item, input_type, connectors, used, bag)
        if found is None:
            continue
        connector, path, spec = found
        typ = spec.type
        type_name = getattr(typ, "name", str(typ))
        word = protected_word(item.path)
        if type_name in PROTECTED_TYPES or word is not None:
            why = f"it is a {type_name}" if type_name in PROTECTED_TYPES else f"'{word}' says who the customer is"
            bag.error("E119", f"'{item.target}' may never be actionable: {why}", item.span,
                      "a counterfactual may only suggest what a customer can change (an amount, a term, a score)")
            continue
        if not isinstance(typ, T.Prim) or type_name not in NUMERIC:
            bag.error("E207", f"'{item.target}' is {typ}; only numbers (int, decimal, money, percent) can be "
                      "actionable", item.span)
            continue
        low = constant_of_type(item.low, typ, f"lower bound of '{item.target}'", "E207", item.target)
        high = constant_of_type(item.high, typ, f"upper bound of '{item.target}'", "E207", item.target)
        if low is None or high is None:
            continue
        if low > high:
            bag.error("E207", f"the bounds of '{item.target}' are reversed ({literal_text(item.low)} > "
                      f"{literal_text(item.high)})", item.low.span, "write the smaller bound first")
            continue
        declared = spec.bounds
        if declared is not None and (low < declared[0] or high > declared[1]):
            bag.error("E207", f"'{item.target}' is declared {declared[0]}..{declared[1]}; the bounds must be "
                      "inside that range", item.low.span)
            continue
        out.append(ActionableTarget(item.target, connector, tuple(path), type_name, low, high, item.label))
    return out


def _resolve(item: ast.Actionable, input_type: T.RecordType, connectors: dict, used: set[str], bag):
    """(connector or None, path, FieldSpec) of a target, or None after reporting E118."""
    path = item.path
    if len(path) == 1:
        spec = input_type.field(path[0])
        if spec is None:
            bag.error("E118", f"'{path[0]}' is not an input of this policy", item.span,
                      did_you_mean(path[0], [f.name for f in input_type.fields]))
            return None
        return None, path, spec
    for cut in range(len(path) - 1, 0, -1):
        name = ".".join(path[:cut])
        if name in connectors:
            break
    else:
        bag.error("E118", f"'{item.target}' names no input and no connector", item.span,
                  did_you_mean(".".join(path[:2]), connectors))
        return None
    if name not in used:
        bag.error("E118", f"the policy never calls {name}, so '{item.target}' cannot change its decision", item.span)
        return None
    typ, spec = connectors[name].returns, None
    for depth, part in enumerate(path[cut:]):
        field = typ.field(part) if isinstance(typ, T.RecordType) else None
        if field is None:
            where = ".".join(path[:cut + depth]) or name
            fields = [f.name for f in typ.fields] if isinstance(typ, T.RecordType) else []
            bag.error("E118", f"{where} has no field '{part}'", item.span, did_you_mean(part, fields))
            return None
        spec, typ = field, field.type
    return name, path[cut:], spec


def literal_text(expr: ast.Expr) -> str:
    try:
        return str(constant(expr))
    except NotConstant:
        return "?"
