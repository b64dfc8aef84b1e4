"""Self-contained HTML reports of replay and backtest (`--html FILE`): one file, inline CSS and
SVG charts, no script and no network, so it opens offline and can be mailed to a credit committee.

Built from the report dicts (`to_dict()`), the same data `--json` writes. Every value is escaped.
"""

from __future__ import annotations

import html
from decimal import Decimal, InvalidOperation

OUTCOME_COLOURS = {"approve": "#2e7d32", "review": "#f9a825", "deny": "#c62828"}
SERIES_COLOURS = ("#1565c0", "#8e24aa", "#00897b", "#6d4c41")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:62rem;color:#222;
padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .6rem;border:1px solid #ddd;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.numbers{display:flex;flex-wrap:wrap;gap:1rem}.numbers div{border:1px solid #ddd;border-radius:.4rem;padding:.5rem 1rem}
.numbers b{display:block;font-size:1.4rem}svg text{font-size:12px;fill:#222}.note{color:#666;font-size:.9rem}
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _pct(value) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _money(value) -> str:
    """R$ 1.234,56 (Brazilian format), from a decimal as text."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return _e(value)
    sign = "-" if amount < 0 else ""
    whole, cents = f"{abs(amount):.2f}".split(".")
    groups = f"{int(whole):,}".replace(",", ".")
    return f"{sign}R$ {groups},{cents}"


def _table(columns: list[str], rows: list[list], raw: bool = False) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{v if raw else _e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bars(labels: list[str], series: list[tuple[str, list[float]]], percent: bool = False, width: int = 640) -> str:
    """Horizontal grouped bars: one group per label, one bar per series; an inline SVG."""
    if not labels or not series:
        return ""
    bar, gap, left, right = 14, 10, 170, 80
    group = bar * len(series) + gap
    height = group * len(labels) + 24 * (len(series) > 1) + 4
    top = 24 if len(series) > 1 else 4
    peak = max((v for _, values in series for v in values if v is not None), default=0) or 1
    scale = (width - left - right) / peak
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    if len(series) > 1:
        for i, (name, _) in enumerate(series):
            x = left + i * 160
            parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{SERIES_COLOURS[i % 4]}"/>'
                         f'<text x="{x + 16}" y="14">{_e(name)}</text>')
    for row, label in enumerate(labels):
        y0 = top + row * group
        parts.append(f'<text x="{left - 6}" y="{y0 + bar * len(series) / 2 + 4}" text-anchor="end">{_e(label)}</text>')
        for i, (_name, values) in enumerate(series):
            value = values[row] or 0
            colour = OUTCOME_COLOURS.get(label, SERIES_COLOURS[i % 4]) if len(series) == 1 else SERIES_COLOURS[i % 4]
            y = y0 + i * bar
            text = _pct(value) if percent else f"{value:g}"
            parts.append(f'<rect x="{left}" y="{y}" width="{max(value * scale, 0.5):.1f}" height="{bar - 2}" '
                         f'fill="{colour}"><title>{_e(label)}: {_e(text)}</title></rect>'
                         f'<text x="{left + value * scale + 4:.1f}" y="{y + bar - 4}">{_e(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(bins: list[list], high=None, width: int = 640, height: int = 180) -> str:
    """Vertical bars of (lower bound, count) bins: the distribution of money deltas, from the
    first bin's lower bound to `high` (the largest delta)."""
    if not bins:
        return ""
    peak = max(n for _, n in bins) or 1
    step = (width - 20) / len(bins)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 36}" role="img">']
    for i, (low, n) in enumerate(bins):
        h = n / peak * height
        x = 10 + i * step
        parts.append(f'<rect x="{x:.1f}" y="{height - h + 4:.1f}" width="{step - 2:.1f}" height="{h:.1f}" '
                     f'fill="{SERIES_COLOURS[0]}"><title>from {_e(_money(low))}: {n}</title></rect>')
    parts.append(f'<text x="10" y="{height + 22}">{_e(_money(bins[0][0]))}</text>'
                 f'<text x="{width - 10}" y="{height + 22}" text-anchor="end">'
                 f'{_e(_money(bins[-1][0] if high is None else high))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _page(title: str, body: list[str]) -> str:
    return (f'<!DOCTYPE html><html lang="pt-BR"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head>'
            f'<body><h1>{_e(title)}</h1>{"".join(body)}</body></html>\n')


def _numbers(items: list[tuple[str, object]]) -> str:
    return '<div class="numbers">' + "".join(f"<div><b>{_e(v)}</b>{_e(k)}</div>" for k, v in items) + "</div>"


def replay_html(data: dict) -> str:
    policy = data["policy"]
    window = data.get("window") or {}
    body = [f'<p class="note">Candidate {_e(policy["name"])} {_e(policy["version"])} replayed on the decisions of '
            f'{_e(window.get("policy", policy["name"]))}'
            + (f' from {_e(window["from"])}' if window.get("from") else "")
            + (f' to {_e(window["to"])}' if window.get("to") else "") + ".</p>",
            _numbers([("decisions read", data["total"]), ("replayed", data["replayed"]), ("changed", data["changed"]),
                      ("could not be replayed", data["errors"]),
                      ("need a live lookup", data["needs_live_lookup"]["decisions"])])]
    transitions = data["transitions"]
    outcomes = sorted({t["before"] for t in transitions} | {t["after"] for t in transitions})
    if outcomes:
        matrix = {(t["before"], t["after"]): t["count"] for t in transitions}
        peak = max(matrix.values()) or 1
        rows = []
        for b in outcomes:
            cells = []
            for a in outcomes:
                n = matrix.get((b, a), 0)
                shade = "#e3f2fd" if a == b else f"rgba(198,40,40,{0.1 + 0.6 * n / peak:.2f})" if n else "#fff"
                cells.append(f'<span style="display:block;background:{shade}">{n}</span>')
            rows.append([_e(b), *cells])
        before = [sum(matrix.get((b, a), 0) for a in outcomes) for b in outcomes]
        after = [sum(matrix.get((b, a), 0) for b in outcomes) for a in outcomes]
        body += ["<h2>Outcomes</h2>", bars(outcomes, [("before", before), ("after", after)]),
                 "<h2>Transitions (rows: before, columns: after)</h2>",
                 _table(["before \\ after", *outcomes], rows, raw=True)]
    for name, output in data["outputs"].items():
        distribution = output.get("distribution") or {}
        body += [f"<h2>Output {_e(name)}</h2>",
                 _table(["changed", "up", "down", "total delta", "min", "median", "max", "mean"],
                        [[output["changed"], output["up"], output["down"], _money(output["total_delta"]),
                          *[_money(distribution[k]) if k in distribution else "" for k in
                            ("min", "median", "max", "mean")]]])]
        if distribution.get("histogram"):
            body += ['<p class="note">Distribution of the deltas of the decisions whose value changed</p>',
                     histogram(distribution["histogram"], distribution.get("max"))]
    if data["rules"]:
        rules = data["rules"]
        body += ["<h2>Rules</h2>",
                 bars([r["rule"] for r in rules], [("fired before", [r["fired_before"] for r in rules]),
                                                   ("fired after", [r["fired_after"] for r in rules]),
                                                   ("changes caused", [r["changes"] for r in rules])]),
                 _table(["rule", "fired before", "fired after", "changes"],
                        [[r["rule"], r["fired_before"], r["fired_after"], r["changes"]] for r in rules])]
    for key, groups in data["cuts"].items():
        body += [f"<h2>By {_e(key)}</h2>",
                 _table([key, "replayed", "changed", "changed %"],
                        [[g["value"], g["replayed"], g["changed"], _pct(g["changed"] / g["replayed"] if g["replayed"]
                                                                        else None)] for g in groups])]
    if data["top_changes"]:
        body += ["<h2>Top changed decisions</h2>",
                 _table(["id", "date", "before", "after", "deltas", "rules on", "rules off"],
                        [[c["id"], c["as_of"], c["before"], c["after"],
                          " ".join(f"{k} {_money(v)}" for k, v in c["deltas"].items() if v is not None),
                          " ".join(c["rules_on"]), " ".join(c["rules_off"])] for c in data["top_changes"]])]
    if data["errors"]:
        body += ["<h2>Could not be replayed</h2>",
                 _table(["id", "code", "detail"], [[e["id"], e["code"], e["detail"]] for e in data["error_list"]])]
    return _page(f"Replay of {policy['name']} {policy['version']}", body)


def backtest_html(data: dict) -> str:
    policy = data["policy"]
    results = [(f'{policy["version"]}', data["result"])]
    if "against_result" in data:
        results.append((f'{data["against"]["version"]} (against)', data["against_result"]))
    first = data["result"]
    body = [_numbers([("rows", data["rows"]), ("evaluated", data["evaluated"]),
                      ("could not be read", data["errors"])]),
            "<h2>Outcome rates</h2>",
            bars(["approve", "review", "deny"], [(name, [r["rates"].get(o) or 0 for o in ("approve", "review", "deny")])
                                                 for name, r in results], percent=True)]
    rows = [["decisions", *[r["decisions"] for _, r in results]]]
    rows += [[o, *[_pct(r["rates"].get(o)) for _, r in results]] for o in ("approve", "review", "deny")]
    for money in first["approved_outputs"]:
        rows.append([f"{money}: average (approved)", *[_money(r["approved_outputs"][money]["average"] or 0)
                                                       for _, r in results]])
        rows.append([f"{money}: total (approved)", *[_money(r["approved_outputs"][money]["total"]) for _, r in results]])
    if "bad_rates" in first:
        rows.append(["bad rate: approved", *[_pct(r["bad_rate_approved"]) for _, r in results]])
        rows.append(["bad rate: declined", *[_pct(r["bad_rate_declined"]) for _, r in results]])
        body += ["<h2>Bad rates</h2>",
                 bars(["approved", "declined"], [(name, [r["bad_rate_approved"] or 0, r["bad_rate_declined"] or 0])
                                                 for name, r in results], percent=True)]
    if (first.get("expected_loss") or {}).get("approved") is not None:  # with --label and --amount
        losses = [(name, r["expected_loss"]) for name, r in results]
        for group in ("approved", "declined"):
            rows.append([f"expected loss: {group}", *[_money(loss[group]["expected_loss"]) for _, loss in losses]])
        for group in ("approved", "declined"):
            rows.append([f"expected loss rate: {group}", *[_pct(loss[group]["expected_loss_rate"]) for _, loss in losses]])
    body += ["<h2>Results</h2>", _table(["", *[name for name, _ in results]], rows)]
    if (first.get("expected_loss") or {}).get("approved") is not None:
        body.append('<p class="note">Expected loss: the amount of the applications that defaulted (loss given '
                    "default taken as 100%); its rate, the share of the labelled applications' amount.</p>")
    if "swap_sets" in data:
        swaps = data["swap_sets"]
        names = [n.replace("_", " ") for n in swaps]
        body += ["<h2>Swap sets</h2>",
                 '<p class="note">Swap-ins: approved by the policy, not by the one it is compared against; '
                 "swap-outs: the reverse.</p>",
                 bars(names, [("count", [s["count"] for s in swaps.values()])]),
                 _table(["set", "count", "amount", "labelled", "bad", "bad rate"],
                        [[n, s["count"], _money(s["amount"]), s["labelled"], s["bad"], _pct(s["bad_rate"])]
                         for n, s in zip(names, swaps.values())])]
    for key, groups in data.get("cuts", {}).items():
        outcomes = sorted({o for g in groups for o in g if o != "value"})
        body += [f"<h2>By {_e(key)}</h2>",
                 _table([key, *outcomes], [[g["value"], *[g.get(o, 0) for o in outcomes]] for g in groups])]
    if data["errors"]:
        body += ["<h2>Rows that could not be read</h2>",
                 _table(["row", "column", "message"], [[e["row"], e["column"], e["message"]] for e in data["error_list"]])]
    return _page(f"Backtest of {policy['name']} {policy['version']}", body)
