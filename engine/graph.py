"""The rule graph of a checked policy: inputs, derived values, lookups, tables, rules, outputs
and the outcome, in topological order. Printed by `regua graph` and served by the API.

Edges say what reads what; a rule that reads another rule's result through `fired(...)` gets a
`fired` edge from that rule (from every other rule with the action, for `fired(deny)`), and rules
are listed in the order they run, so those edges point forward too."""

from __future__ import annotations

from dataclasses import dataclass, field

from regua.dsl import ast
from regua.dsl.ast import free_names, walk
from regua.dsl.checker import CheckedPolicy
from regua.dsl.formatter import step_day
from regua.dsl.rule_order import fired_references


@dataclass(frozen=True)
class GraphNode:
    id: str
    kind: str  # input, lookup, let, table, rule, output, outcome
    label: str
    line: int


@dataclass
class RuleGraph:
    nodes: list[GraphNode] = field(default_factory=list)  # topological order
    edges: list[tuple[str, str]] = field(default_factory=list)  # (from, to): `to` reads `from`
    fired: set[tuple[str, str]] = field(default_factory=set)  # the edges that are a fired(...) read

    def kind(self, edge: tuple[str, str]) -> str:
        return "fired" if edge in self.fired else "reads"

    def to_dict(self) -> dict:
        return {
            "nodes": [{"id": n.id, "kind": n.kind, "label": n.label, "line": n.line} for n in self.nodes],
            "edges": [{"from": a, "to": b, "kind": self.kind((a, b))} for a, b in self.edges],
        }

    def mermaid(self) -> str:
        shapes = {
            "input": ("([", "])"), "lookup": ("[[", "]]"), "let": ("[", "]"), "table": ("{{", "}}"),
            "rule": (">", "]"), "output": ("[/", "/]"), "outcome": ("((", "))"),
        }
        lines = ["flowchart LR"]
        for node in self.nodes:
            left, right = shapes[node.kind]
            lines.append(f'  {_safe_id(node.id)}{left}"{_escape(node.label)}"{right}')
        for a, b in self.edges:
            arrow = "-. fired .->" if (a, b) in self.fired else "-->"
            lines.append(f"  {_safe_id(a)} {arrow} {_safe_id(b)}")
        return "\n".join(lines) + "\n"

    def dot(self) -> str:
        shapes = {"input": "ellipse", "lookup": "cylinder", "let": "box", "table": "hexagon",
                  "rule": "cds", "output": "parallelogram", "outcome": "doublecircle"}
        lines = ["digraph policy {", "  rankdir=LR;"]
        for node in self.nodes:
            lines.append(f'  "{_escape(node.id)}" [label="{_escape(node.label)}", shape={shapes[node.kind]}];')
        for a, b in self.edges:
            style = ' [label="fired", style=dashed]' if (a, b) in self.fired else ""
            lines.append(f'  "{_escape(a)}" -> "{_escape(b)}"{style};')
        lines.append("}")
        return "\n".join(lines) + "\n"


def _safe_id(node_id: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in node_id.encode("ascii", "backslashreplace").decode())


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def _sources(node) -> list:
    """The expressions a let or table reads."""
    if isinstance(node, ast.Let):
        return [node.value]
    return list(node.inputs) + [r.result for r in node.rows] + [v for r in node.rows for c in r.cells or []
                                                                for v in c.values]


def build_graph(checked: CheckedPolicy) -> RuleGraph:
    graph = RuleGraph()
    policy = checked.policy
    symbols = checked.symbols

    def node_id(name: str) -> str:
        return f"{symbols[name].kind}:{name}"

    def reads(exprs) -> list[str]:
        names = set()
        for e in exprs:
            names |= {n for n in free_names(e) if n in symbols}
        return sorted(names)

    for f in policy.fields:
        graph.nodes.append(GraphNode(f"input:{f.name}", "input", f.name, f.span.line))
    if policy.kind == "collection":  # a fixed input: show the facts the régua reads
        used = reads([r.condition for r in policy.rules] + [a.value for r in policy.rules for a in r.sets]
                     + [e for name in checked.order for e in _sources(symbols[name].node)]
                     + [o.value for o in checked.outputs if o.value is not None])
        graph.nodes += [GraphNode(f"input:{n}", "input", n, 0) for n in used if symbols[n].kind == "input"]
    for name in checked.order:
        symbol = symbols[name]
        node = symbol.node
        if symbol.kind == "let":
            lookups = [c for c in walk(node.value) if isinstance(c, ast.Call) and c.namespace]
            kind = "lookup" if lookups else "let"
            label = f"{name} = {lookups[0].namespace}.{lookups[0].func}" if lookups else name
            graph.nodes.append(GraphNode(node_id(name), kind, label, node.span.line))
            sources = [node.value]
        else:
            graph.nodes.append(GraphNode(node_id(name), "table", f"{name} ({node.hit_policy})", node.span.line))
            sources = _sources(node)
        graph.edges += [(node_id(dep), node_id(name)) for dep in reads(sources)]
    # Policy.rules filters the policy's items on every read: read it once (a read per rule was
    # quadratic, minutes for a 10,000-rule policy).
    rules = policy.rules
    by_name: dict[str, ast.Rule] = {}
    for rule in rules:
        by_name.setdefault(rule.name, rule)
    # In the order the rules run: a rule reading fired(x) comes after x.
    ordered = [rules[k] for k in checked.rule_order] if checked.rule_order else rules
    order_of = {f"rule:{r.name}": n for n, r in enumerate(ordered)}
    for rule in ordered:
        rid = f"rule:{rule.name}"
        label = f"{rule.name}: {rule.action.verb}" + (f" {rule.action.code}" if rule.action.code else "")
        if rule.is_step:
            label = f"{step_day(rule.day)} {label}"
        graph.nodes.append(GraphNode(rid, "rule", label, rule.span.line))
        graph.edges += [(node_id(dep), rid) for dep in reads([rule.condition] + [a.value for a in rule.sets])]
        found = fired_references(rule, rules, by_name) if checked.may_call(rule, "fired") else ()
        read = sorted({f"rule:{other.name}" for other, _ in found}, key=lambda other: order_of[other])
        graph.fired.update((other, rid) for other in read)
        graph.edges += [(other, rid) for other in read]
    setters: dict[str, list[ast.Rule]] = {}  # per output, the rules that `set` it (once each, in order)
    for rule in rules:
        for name in dict.fromkeys(a.name for a in rule.sets):
            setters.setdefault(name, []).append(rule)
    for output in checked.outputs:
        oid = f"output:{output.name}"
        graph.nodes.append(GraphNode(oid, "output", output.name, output.span.line))
        if output.value is None:
            graph.edges.append((node_id(output.name), oid))
        else:
            graph.edges += [(node_id(dep), oid) for dep in reads([output.value])]
        graph.edges += [(f"rule:{r.name}", oid) for r in setters.get(output.name, ())]
    graph.nodes.append(GraphNode("outcome", "outcome", f"outcome (default {checked.default.verb})", 0))
    graph.edges += [(f"rule:{r.name}", "outcome") for r in rules]
    return graph
