"""The editor features, each a function of an Analysis (lsp/analysis.py) and a position: hover,
definitions and references, completion, document symbols and the "did you mean" quick fixes.
They read what the checker computed (types on the AST, its symbols, enums and records, the
environment's functions and connectors) and say it in the editor's terms (lsprotocol types)."""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from regua.dsl import ast
from regua.dsl import types as T
from regua.dsl.diagnostics import Diagnostic, Severity
from regua.dsl.infer import AGGREGATE_DOCS, BUILTIN_NAMES
from regua.dsl.kinds import KINDS
from regua.dsl.parser import keywords

from .analysis import Analysis, Key, root_expressions
from .positions import Positions

RULE_FUNCTION_DOCS = {
    "fired": "fired(rule) or fired(deny): whether a rule, or any rule with that action, fired",
    "available": "available(lookup): whether a connector lookup answered",
}
SOURCE = "regua"


# ---- diagnostics ---------------------------------------------------------------------------------------

DID_YOU_MEAN = re.compile(r"did you mean '([^']+)'\?")
QUOTED = re.compile(r"'([^']+)'")


def diagnostic(d: Diagnostic, positions: Positions) -> lsp.Diagnostic:
    """A checker diagnostic as the editor shows it: code, range, message with its hint; a "did you
    mean" hint carries the replacement for the quick fix."""
    data = None
    suggestion, misspelt = DID_YOU_MEAN.search(d.hint or ""), QUOTED.search(d.message)
    if suggestion and misspelt:
        data = {"replace": misspelt.group(1), "with": suggestion.group(1)}
    return lsp.Diagnostic(
        range=positions.range(d.span),
        message=d.message + (f"; {d.hint}" if d.hint else ""),
        severity=lsp.DiagnosticSeverity.Error if d.severity is Severity.ERROR else lsp.DiagnosticSeverity.Warning,
        code=d.code,
        source=SOURCE,
        data=data,
    )


def quick_fixes(uri: str, text: str, diagnostics: list[lsp.Diagnostic]) -> list[lsp.CodeAction]:
    """One "Change 'x' to 'y'" action per diagnostic that has a did-you-mean replacement."""
    positions, lines, actions = Positions(text), text.split("\n"), []
    for d in diagnostics:
        data = d.data if isinstance(d.data, dict) else None
        if not data or not data.get("replace") or not data.get("with"):
            continue
        line, column = positions.from_lsp(d.range.start)
        source = lines[line - 1] if line <= len(lines) else ""
        word = re.compile(r"(?<![\w.])" + re.escape(data["replace"]) + r"(?![\w])")
        match = word.search(source, column - 1) or word.search(source)
        if match is None:
            continue
        edit = lsp.TextEdit(lsp.Range(positions.to_lsp(line, match.start() + 1), positions.to_lsp(line, match.end() + 1)),
                            data["with"])
        actions.append(lsp.CodeAction(
            title=f"Change '{data['replace']}' to '{data['with']}'", kind=lsp.CodeActionKind.QuickFix,
            diagnostics=[d], is_preferred=True, edit=lsp.WorkspaceEdit(changes={uri: [edit]})))
    return actions


# ---- hover -----------------------------------------------------------------------------------------------


def _code(text: str) -> str:
    return f"```regua\n{text}\n```"


def _source_line(analysis: Analysis, line: int) -> str:
    lines = analysis.text.split("\n")
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def describe(analysis: Analysis, key: Key) -> str | None:
    """Markdown about a declared symbol: its type and its declaration as written (comment included)."""
    kind, name = key
    checker = analysis.checker
    definition = analysis.definitions.get(key)
    written = _source_line(analysis, definition.span.line) if definition else ""
    if kind in ("input", "let", "table"):
        symbol = checker.symbols.get(name)
        typ = symbol.type if symbol else T.UNKNOWN
        if kind == "input" and definition is None:  # the input a collection or monitoring policy is given
            spec = checker.input_type.field(name)
            filled = checker.kind.filled_by if checker.kind else "the engine"
            return _code(f"input {name}: {typ}") + f"\n\nFilled by {filled}" + (f": {spec.doc}" if spec and spec.doc else ".")
        heading = {"input": f"input {name}: {typ}", "let": f"let {name}: {typ}",
                   "table": f"table {name} ({getattr(getattr(definition, 'node', None), 'hit_policy', '?')}): {typ}"}[kind]
        return _code(heading) + (f"\n\nDeclared as `{written}`" if written else "")
    if kind == "rule" and definition is not None:
        rule: ast.Rule = definition.node
        action = " ".join([rule.action.verb] + [f'"{t}"' for t in (rule.action.code, rule.action.message) if t])
        what = "step" if rule.is_step else "rule"
        return _code(f"{what} {name}\n  {action}")
    if kind == "enum":
        enum = checker.enums.get(name)
        return _code(f"enum {name} = {' | '.join(enum.values)}") if enum else None
    if kind == "enum_value":
        enum_name, value = name.split(".", 1)
        return _code(f'"{value}"') + f"\n\nA value of enum `{enum_name}`"
    if kind == "record":
        return _record(checker.records.get(name))
    if kind == "output":
        found = [o for o in checker.outputs if o.name == name]
        return _code(f"output {name}: {found[0].type if found else T.UNKNOWN}")
    if kind == "test" and definition is not None:
        return _code(f'test "{name}"')
    return None


def _record(record) -> str | None:
    if not isinstance(record, T.RecordType):
        return None
    lines = [f"record {record.name}"] + [f"  {f.name}: {f.type}" for f in record.fields]
    return _code("\n".join(lines))


def _field_doc(spec: T.FieldSpec) -> str:
    parts = [spec.doc] if spec.doc else []
    if not spec.required:
        parts.append(f"optional (default {spec.default!r})" if spec.default not in (None, "", []) else "optional")
    return "\n\n" + "; ".join(parts) if parts else ""


def _function_doc(analysis: Analysis, name: str) -> str | None:
    spec = analysis.checker.env.functions.get(name)
    if spec is not None:
        return spec.doc or f"{name}(...)"
    return AGGREGATE_DOCS.get(name) or RULE_FUNCTION_DOCS.get(name)


def hover(analysis: Analysis, line: int, column: int) -> str | None:
    if not analysis.parsed:
        return None
    occurrence = analysis.occurrence_at(line, column)
    if occurrence is not None:
        return describe(analysis, occurrence.key)
    target = analysis.target_at(line, column)
    if target is None:
        return None
    node = target[1]
    if isinstance(node, ast.Attribute):
        record = node.target.type.element if isinstance(node.target.type, T.ListType) else node.target.type
        spec = record.field(node.attr) if isinstance(record, T.RecordType) else None
        if spec is None:
            return None
        return _code(f"{record.name}.{node.attr}: {spec.type}") + _field_doc(spec)
    if isinstance(node, ast.Call):
        if node.namespace is not None:
            spec = analysis.checker.env.connectors.get(f"{node.namespace}.{node.func}")
            if spec is None:
                return None
            params = ", ".join(str(p) for p in spec.params)
            text = _code(f"{spec.qualified_name}({params}) -> {spec.returns}")
            return text + (f"\n\n{spec.doc}" if spec.doc else "") + "\n\n" + (_record(spec.returns) or "")
        doc = _function_doc(analysis, node.func)
        return _code(doc.split(":")[0]) + "\n\n" + doc.split(":", 1)[-1].strip() if doc else None
    if isinstance(node, ast.Name):
        if node.ref == "builtin":
            return _code(f"{node.name}: {BUILTIN_NAMES[node.name]}") + "\n\nThe evaluation date (Brasília time)"
        if node.ref == "local":
            return _code(f"{node.name}: {node.type}") + "\n\nAn item of the list being read (`for ... in`)"
        if node.ref == "input":  # a fixed input of a collection or monitoring policy
            return describe(analysis, ("input", node.name))
    return None


# ---- definitions and references ----------------------------------------------------------------------


def definition(analysis: Analysis, line: int, column: int):
    occurrence = analysis.occurrence_at(line, column) if analysis.parsed else None
    if occurrence is None:
        return None
    return analysis.definitions.get(occurrence.key)


def references(analysis: Analysis, line: int, column: int, include_declaration: bool):
    occurrence = analysis.occurrence_at(line, column) if analysis.parsed else None
    if occurrence is None:
        return []
    return analysis.references(occurrence.key, include_declaration)


# ---- completion ------------------------------------------------------------------------------------------

CHAIN_BEFORE_CURSOR = re.compile(r"([^\W\d]\w*(?:\.[^\W\d]\w*)*)\.(\w*)$")
TYPE_POSITION = re.compile(r"(?::|\bof)\s*(\w*)$")
K = lsp.CompletionItemKind


def _item(label: str, kind, detail: str | None = None, doc: str | None = None, insert: str | None = None):
    return lsp.CompletionItem(label=label, kind=kind, detail=detail, insert_text=insert,
                              documentation=lsp.MarkupContent(lsp.MarkupKind.Markdown, doc) if doc else None)


def _type_of_chain(analysis: Analysis, names: list[str], line: int):
    """The type of `a.b.c` read from the checker's symbols (or a `for x in` variable around `line`)."""
    checker = analysis.checker
    head = names[0]
    symbol = checker.symbols.get(head)
    typ = symbol.type if symbol is not None else None
    if typ is None:
        for _item_node, root in root_expressions(analysis.policy):
            for node in ast.walk(root):
                if isinstance(node, ast.Comprehension) and node.var == head and node.span.line <= line <= \
                        (node.span.end_line or node.span.line) and isinstance(node.source.type, T.ListType):
                    typ = node.source.type.element
    for name in names[1:]:
        record = typ.element if isinstance(typ, T.ListType) else typ
        spec = record.field(name) if isinstance(record, T.RecordType) else None
        if spec is None:
            return None
        typ = T.ListType(spec.type) if isinstance(typ, T.ListType) else spec.type
    return typ


def completion(analysis: Analysis, line_text: str, line: int) -> list[lsp.CompletionItem]:
    """Completion at the end of `line_text` (the line up to the cursor). `analysis` is the latest one
    that parsed, so completion works while the line being typed does not."""
    if not analysis.parsed:
        return [_item(word, K.Keyword) for word in sorted(keywords())]
    checker = analysis.checker
    env = checker.env
    chain = CHAIN_BEFORE_CURSOR.search(line_text)
    if chain:
        names = chain.group(1).split(".")
        if len(names) == 1 and names[0] in env.namespaces and names[0] not in checker.symbols:
            return [_item(spec.name, K.Function, f"{spec.qualified_name}({', '.join(map(str, spec.params))}) -> "
                          f"{spec.returns}", spec.doc or None)
                    for spec in env.connectors.values() if spec.namespace == names[0]]
        typ = _type_of_chain(analysis, names, line)
        record = typ.element if isinstance(typ, T.ListType) else typ
        if isinstance(record, T.RecordType):
            return [_item(f.name, K.Field, f"{record.name}.{f.name}: {f.type}", _field_doc(f).strip() or None)
                    for f in record.fields]
        return []
    if TYPE_POSITION.search(line_text) and re.match(r"\s+\w+\s*:|.*\blist\s+of\b", line_text):
        names = list(T.BUILTIN_TYPES) + list(checker.enums) + list(checker.records) + list(env.records)
        return [_item(name, K.Class if name not in T.BUILTIN_TYPES else K.TypeParameter) for name in names]
    items = [_item(word, K.Keyword) for word in sorted(keywords())]
    for name, symbol in checker.symbols.items():
        kind = {"input": K.Variable, "let": K.Constant, "table": K.Struct}[symbol.kind]
        items.append(_item(name, kind, f"{symbol.kind} {name}: {symbol.type}", describe(analysis, (symbol.kind, name))))
    for enum in checker.enums.values():
        items += [_item(f'"{value}"', K.EnumMember, f"{enum.name} value", insert=f'"{value}"') for value in enum.values]
    for name, spec in env.functions.items():
        items.append(_item(name, K.Function, spec.doc or f"{name}(...)"))
    for name, doc in {**AGGREGATE_DOCS, **RULE_FUNCTION_DOCS}.items():
        items.append(_item(name, K.Function, doc))
    items += [_item(namespace, K.Module, f"connectors: {namespace}.…") for namespace in sorted(env.namespaces)]
    items += [_item(name, K.Variable, f"{name}: {typ}") for name, typ in BUILTIN_NAMES.items()]
    kind = KINDS.get(analysis.policy.kind)
    if kind is not None:
        items += [_item(action, K.Event, f"action of a {kind.name} policy") for action in kind.actions]
    items += [_item(rule.name, K.Method, "rule (for fired)") for rule in analysis.policy.rules]
    return items


# ---- document symbols ------------------------------------------------------------------------------------

S = lsp.SymbolKind


def document_symbols(analysis: Analysis) -> list[lsp.DocumentSymbol]:
    """The outline: inputs, records, enums, lets, tables, rules and steps, outputs and tests."""
    if not analysis.parsed:
        return []
    positions, policy = Positions(analysis.text), analysis.policy
    lines = analysis.text.split("\n")
    starts = [item.span.line for item in policy.items]
    symbols = []

    def item_range(index: int) -> lsp.Range:
        first = starts[index]
        last = (starts[index + 1] - 1) if index + 1 < len(starts) else len(lines)
        while last > first and (not lines[last - 1].strip() or lines[last - 1].lstrip().startswith("#")):
            last -= 1
        return positions.line_range(first, last)

    def symbol(name, kind, rng, selection, detail=None, children=None):
        return lsp.DocumentSymbol(name=name, kind=kind, range=rng, selection_range=selection, detail=detail,
                                  children=children or None)

    for index, item in enumerate(policy.items):
        whole = item_range(index)
        if isinstance(item, (ast.InputBlock, ast.RecordDecl)):
            fields = [symbol(f.name, S.Field, positions.range(f.span), positions.range(f.span),
                             _type_name(analysis, f.name, item)) for f in item.fields]
            name = "input" if isinstance(item, ast.InputBlock) else item.name
            selection = positions.range(item.span) if isinstance(item, ast.RecordDecl) else \
                positions.line_range(item.span.line, item.span.line)
            symbols.append(symbol(name, S.Struct, whole, selection, None, fields))
        elif isinstance(item, ast.EnumDecl):
            values = [symbol(o.key[1].split(".", 1)[1], S.EnumMember, positions.range(o.span), positions.range(o.span))
                      for o in analysis.occurrences if o.definition and o.key[0] == "enum_value" and o.node is item]
            symbols.append(symbol(item.name, S.Enum, whole, positions.range(item.span), None, values))
        elif isinstance(item, ast.Let):
            symbols.append(symbol(item.name, S.Constant, whole, positions.range(item.span),
                                  str(analysis.checker.symbols[item.name].type) if item.name in analysis.checker.symbols
                                  else None))
        elif isinstance(item, ast.Table):
            symbols.append(symbol(item.name, S.Function, whole, positions.range(item.span), f"({item.hit_policy})"))
        elif isinstance(item, ast.Rule):
            action = item.action.verb + (f" {item.action.code}" if item.action.code else "")
            symbols.append(symbol(item.name, S.Event, whole, positions.range(item.span), action))
        elif isinstance(item, ast.OutputDecl):
            for output in item.items:
                symbols.append(symbol(output.name, S.Property, positions.range(output.span), positions.range(output.span),
                                      "output"))
        elif isinstance(item, ast.TestDecl):
            symbols.append(symbol(item.name, S.Method, whole, positions.line_range(item.span.line, item.span.line),
                                  "test"))
    return symbols


def _type_name(analysis: Analysis, name: str, owner) -> str | None:
    if isinstance(owner, ast.InputBlock):
        symbol = analysis.checker.symbols.get(name)
        return str(symbol.type) if symbol else None
    record = analysis.checker.records.get(owner.name)
    spec = record.field(name) if record else None
    return str(spec.type) if spec else None
