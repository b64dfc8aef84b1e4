"""Charts drawn on the server as SVG (no chart library, nothing for the browser to run): a line
chart (DSO trend, a customer's limit history as a step line) and stacked bars (aging). Every label
goes through Markup escaping; colours come from classes in console.css."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 80, 16, 16, 48


@dataclass(frozen=True)
class Series:
    label: str
    values: list[Decimal | None]


def _scale(top: Decimal) -> Decimal:
    return top if top > 0 else Decimal(1)


def _frame(title: str, body: list[str], labels: list[str], top: Decimal, fmt) -> Markup:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for i in range(5):  # horizontal grid with values
        y = TOP + plot_h - plot_h * i / 4
        value = top * Decimal(i) / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(value))}</text>')
    step = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % step == 0 or i == len(labels) - 1:
            x = LEFT + (plot_w * (i + 0.5) / max(1, len(labels)))
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">'
                         f"{escape(label)}</text>")
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(title: str, labels: list[str], series: list[Series], fmt=str, step: bool = False) -> Markup:
    """Points joined by lines (or steps, for a value that holds until it changes); gaps where None."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _scale(max((v for s in series for v in s.values if v is not None), default=Decimal(0)) * Decimal("1.1"))
    body = []
    for index, one in enumerate(series):
        points = []
        for i, value in enumerate(one.values):
            if value is None:
                continue
            x = LEFT + plot_w * (i + 0.5) / max(1, len(labels))
            y = TOP + plot_h - float(value / top) * plot_h
            if step and points:
                points.append(f"{x:.1f},{points[-1].split(',')[1]}")
            points.append(f"{x:.1f},{y:.1f}")
            body.append(f'<circle class="dot s{index}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                        f"<title>{escape(labels[i])}: {escape(fmt(value))}</title></circle>")
        if points:
            body.insert(0, f'<polyline class="line s{index}" points="{" ".join(points)}"/>')
    legend = [f'<text class="legend s{i}" x="{LEFT + 150 * i}" y="{HEIGHT - 8}">{escape(s.label)}</text>'
              for i, s in enumerate(series)]
    return _frame(title, body + legend, labels, top, fmt)


def stacked_bars(title: str, labels: list[str], series: list[Series], fmt=str) -> Markup:
    """One bar per label, one stacked segment per series."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum((s.values[i] or Decimal(0) for s in series), Decimal(0)) for i in range(len(labels))]
    top = _scale(max(totals, default=Decimal(0)) * Decimal("1.1"))
    slot = plot_w / max(1, len(labels))
    body = []
    for i, label in enumerate(labels):
        base = Decimal(0)
        for index, one in enumerate(series):
            value = one.values[i] or Decimal(0)
            if value <= 0:
                continue
            y = TOP + plot_h - float((base + value) / top) * plot_h
            h = float(value / top) * plot_h
            body.append(f'<rect class="bar s{index}" x="{LEFT + slot * i + slot * 0.15:.1f}" y="{y:.1f}" '
                        f'width="{slot * 0.7:.1f}" height="{h:.1f}"><title>{escape(label)} · {escape(one.label)}: '
                        f"{escape(fmt(value))}</title></rect>")
            base += value
    legend = [f'<text class="legend s{i}" x="{LEFT + 110 * i}" y="{HEIGHT - 8}">{escape(s.label)}</text>'
              for i, s in enumerate(series)]
    return _frame(title, body + legend, labels, top, fmt)
