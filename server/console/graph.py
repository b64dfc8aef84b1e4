"""A policy's rule graph (PolicyMeta.graph: inputs → lets, lookups, tables → rules → outputs and
the outcome) drawn on the server as SVG: one column per depth (the longest path from an input),
nodes in source order within a column, an edge per dependency."""

from __future__ import annotations

from markupsafe import Markup, escape

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 220, 26, 50, 10, 10
MAX_LABEL = 34


def rule_graph(graph: dict, fired_rules: set[str] = frozenset()) -> Markup:
    nodes = {n["id"]: n for n in graph.get("nodes", [])}
    incoming: dict[str, list[str]] = {nid: [] for nid in nodes}
    for edge in graph.get("edges", []):
        if edge["from"] in nodes and edge["to"] in nodes:
            incoming[edge["to"]].append(edge["from"])
    depth: dict[str, int] = {}

    def depth_of(nid: str, seen: frozenset = frozenset()) -> int:
        if nid not in depth:
            parents = [p for p in incoming[nid] if p not in seen]  # a cycle cannot happen; be safe anyway
            depth[nid] = 1 + max((depth_of(p, seen | {nid}) for p in parents), default=-1)
        return depth[nid]

    columns: dict[int, list[str]] = {}
    for nid in sorted(nodes, key=lambda i: (nodes[i].get("line") or 10**9, i)):
        columns.setdefault(depth_of(nid), []).append(nid)
    where = {}
    for col, ids in columns.items():
        for row, nid in enumerate(ids):
            where[nid] = (PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    width = PAD * 2 + (max(columns, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(ids) for ids in columns.values()), default=1) * (NODE_H + GAP_Y) - GAP_Y
    parts = [f'<svg class="graph" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>Grafo de regras</title>']
    for target, sources in incoming.items():
        tx, ty = where[target]
        for source in sources:
            sx, sy = where[source]
            parts.append(f'<line class="edge" x1="{sx + NODE_W}" y1="{sy + NODE_H / 2}" x2="{tx}" y2="{ty + NODE_H / 2}"/>')
    for nid, node in nodes.items():
        x, y = where[nid]
        label = node.get("label") or nid
        short = label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 1] + "…"
        fired = " fired" if node["kind"] == "rule" and nid.removeprefix("rule:") in fired_rules else ""
        parts.append(f'<g class="node {escape(node["kind"])}{fired}"><rect x="{x}" y="{y}" width="{NODE_W}" '
                     f'height="{NODE_H}" rx="4"/><text x="{x + 8}" y="{y + 17}">{escape(short)}</text>'
                     f"<title>{escape(label)} (linha {escape(node.get('line'))})</title></g>")
    parts.append("</svg>")
    return Markup("".join(parts))
