"""The limits that keep a policy within what CPython can compile and run, checked up front.

Each later pass (checker, formatter, code generator) walks expressions recursively by their
nesting, with chains such as `a or b or ...` counting once (dsl.ast.children), and the generated
Python nests by the same measure. So a policy that passes these checks compiles and runs;
one that does not gets a located error instead of a RecursionError or a SyntaxError:

- E006: an expression nests more than ast.MAX_NESTING levels, or records nest more than
  MAX_RECORD_NESTING levels (the input's converters are built record by record);
- E302: a let or table read lazily (in a branch, a comprehension or a table) sits on a chain of
  more than MAX_LAZY_CHAIN lets and tables (each link is a Python call on the stack). Lets read
  unconditionally by rules and outputs are computed in order, not recursively, at any length.
"""

from __future__ import annotations

import re

from . import ast
from . import types as T
from .diagnostics import DiagnosticBag, PolicyError, Span

MAX_RECORD_NESTING = 64
MAX_LAZY_CHAIN = 200

# ---- size (E007), checked before parsing -------------------------------------------------
# Parsing costs memory in proportion to the text (~85 bytes per character of ordinary policy
# text, ~270 per character of a text literal): these bounds keep one policy from costing
# gigabytes. The server sets them from `policies.max_source_chars` and
# `policies.max_literal_chars` (regua.server.services); elsewhere these defaults apply.

#: Longest policy text, in characters (a 100,000-rule policy is about 15 million).
MAX_SOURCE_CHARS = 16_000_000
#: Longest single text literal, name or number, in characters.
MAX_LITERAL_CHARS = 10_000

def configure(max_source_chars: int | None = None, max_literal_chars: int | None = None) -> None:
    """Set the size limits for this process (the server does, from its settings)."""
    global MAX_SOURCE_CHARS, MAX_LITERAL_CHARS
    if max_source_chars is not None:
        MAX_SOURCE_CHARS = max_source_chars
    if max_literal_chars is not None:
        MAX_LITERAL_CHARS = max_literal_chars


_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#.*|\w+')


def check_size(text: str, file: str) -> None:
    """PolicyError E007, located where the limit is crossed, when the text is longer than
    MAX_SOURCE_CHARS or holds a text literal, a name or a number longer than MAX_LITERAL_CHARS.
    Linear, and nearly free for ordinary text: only lines longer than the literal limit are scanned."""
    bag = DiagnosticBag(file)
    limit = MAX_SOURCE_CHARS
    if len(text) > limit:
        line = text.count("\n", 0, limit) + 1
        column = limit - (text.rfind("\n", 0, limit) + 1) + 1
        bag.error("E007", f"the policy is {len(text):,} characters long; at most {limit:,} are accepted",
                  Span(line, column), "split it into several policies")
        raise PolicyError(bag.sorted())  # no source: the offending line is not worth printing
    longest = MAX_LITERAL_CHARS
    if len(text) <= longest:
        return
    lines = text.split("\n")  # C speed; a long token needs a long line
    if max(map(len, lines)) <= longest:
        return
    for number, line in enumerate(lines, 1):
        if len(line) <= longest:
            continue
        for token in _TOKENS.finditer(line):
            word = token.group()
            if word.startswith("#"):
                break
            size = len(word) - 2 if word.startswith('"') else len(word)
            if size > longest:
                what = "text literal" if word.startswith('"') else "name or number"
                bag.error("E007", f"this {what} is {size:,} characters long; at most {longest:,} are accepted",
                          Span(number, token.start() + 1), "keep long texts and lists outside the policy")
                break
    if bag.has_errors:
        raise PolicyError(bag.sorted())


def check_nesting(policy: ast.Policy, bag: DiagnosticBag) -> None:
    """E006 for every expression of the policy that nests too deeply (iterative, any size)."""
    stack: list = list(policy.items)
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Expr):
            _depth, node = ast.nesting(item)
            if node is not None:
                bag.error("E006", f"this expression nests more than {ast.MAX_NESTING} levels deep",
                          node.span, "split it into `let`s")
        elif isinstance(item, ast.Node):
            stack.extend(vars(item).values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def check_record_nesting(records: dict[str, T.RecordType], decls: list[ast.RecordDecl],
                         bag: DiagnosticBag) -> None:
    """E006 when a declared record contains records more than MAX_RECORD_NESTING levels deep.
    A recursive record (one that contains itself) is not counted again on its way back."""
    depth: dict[str, int] = {}
    for decl in decls:
        if decl.name not in records or decl.name in depth:
            continue
        # Iterative depth-first search; a record on the current path counts as depth 0 (a cycle).
        path: set[str] = {decl.name}
        stack = [(decl.name, iter(_nested(records[decl.name])))]
        while stack:
            name, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                path.discard(name)
                depth[name] = 1 + max((depth.get(c, 0) for c in _nested(records[name]) if c not in path), default=0)
            elif child not in depth and child not in path and child in records:
                path.add(child)
                stack.append((child, iter(_nested(records[child]))))
        if depth[decl.name] > MAX_RECORD_NESTING:
            bag.error("E006", f"record {decl.name} nests records {depth[decl.name]} levels deep "
                      f"(at most {MAX_RECORD_NESTING})", decl.span)


def _nested(record: T.RecordType) -> list[str]:
    found = []
    for spec in record.fields or ():
        typ = spec.type
        while isinstance(typ, T.ListType):
            typ = typ.element
        if isinstance(typ, T.RecordType):
            found.append(typ.name)
    return found


def chain_lengths(order: list[str], deps: dict[str, set[str]]) -> dict[str, int]:
    """For each let and table: the longest chain of lets and tables it is computed through, itself included."""
    chain: dict[str, int] = {}
    for name in order:  # dependencies first
        chain[name] = 1 + max((chain.get(d, 0) for d in deps.get(name, ())), default=0)
    return chain


def check_lazy_chains(order: list[str], deps: dict[str, set[str]], symbols: dict, policy: ast.Policy,
                      bag: DiagnosticBag) -> None:
    """E302 where a long chain of lets would be entered lazily (one Python call per link)."""
    chain = chain_lengths(order, deps)
    if not chain or max(chain.values()) <= MAX_LAZY_CHAIN:
        return
    # Rule conditions, outputs and let values: what they always read is computed in order (engine.codegen).
    sites: list[ast.Expr] = [r.condition for r in policy.rules] + [o.value for o in policy.outputs
                                                                                    if o.value is not None]
    lazy: list[ast.Expr] = [a.value for r in policy.rules for a in r.sets]
    for name in order:
        node = symbols[name].node
        if isinstance(node, ast.Let):
            sites.append(node.value)
        elif isinstance(node, ast.Table):
            lazy += list(node.inputs) + [r.result for r in node.rows]
            lazy += [v for r in node.rows for c in r.cells or [] for v in c.values]
    reported: set[str] = set()

    def report(node: ast.Name) -> None:
        if chain.get(node.name, 0) > MAX_LAZY_CHAIN and node.name not in reported:
            reported.add(node.name)
            bag.error("E302", f"'{node.name}' is computed through a chain of {chain[node.name]} lets and "
                      f"tables; read here (in a branch, a comprehension, a `set` or a table) at most "
                      f"{MAX_LAZY_CHAIN} can be", node.span, "read it unconditionally in a rule, "
                      "or shorten the chain")

    for expr in sites:
        always = {id(n) for n in ast.always_read(expr)}
        for node in ast.walk(expr):
            if isinstance(node, ast.Name) and node.ref in ("let", "table") \
                    and (node.ref == "table" or id(node) not in always):
                report(node)
    for expr in lazy:
        for node in ast.walk(expr):
            if isinstance(node, ast.Name) and node.ref in ("let", "table"):
                report(node)

