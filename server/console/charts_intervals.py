"""A chart of rates with their confidence intervals, drawn on the server as SVG like the console's
other charts (server/console/charts.py): one slot per category (an experiment's arms), one dot per
series in it (approval rate, bad rate) with a whisker from the interval's low to its high end.

Rates are fractions (0.125) as the experiment report gives them; the axis reads in percent with a
decimal comma. Every label goes through Markup escaping (arm names are operator-chosen)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

from .charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, _frame

CAP = 5  # half the width of a whisker's ends, in pixels


@dataclass(frozen=True)
class Interval:
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class IntervalSeries:
    label: str
    points: list[Interval | None]  # one per category; None where the rate is undefined (no decisions)


def percent(value) -> str:
    return f"{float(value) * 100:.1f}".replace(".", ",") + "%"


def interval_chart(title: str, categories: list[str], series: list[IntervalSeries]) -> Markup:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    highest = max((p.high for s in series for p in s.points if p is not None), default=0.0)
    top = Decimal(str(min(1.0, round(highest * 1.15 + 0.005, 2)))) if highest > 0 else Decimal(1)
    slot = plot_w / max(1, len(categories))

    def y(value: float) -> float:
        return TOP + plot_h - value / float(top) * plot_h

    body = []
    for k, one in enumerate(series):
        for i, point in enumerate(one.points):
            if point is None:
                continue
            x = LEFT + slot * i + slot * (k + 1) / (len(series) + 1)
            tip = escape(f"{categories[i]} · {one.label}: {percent(point.rate)} "
                         f"(IC 95%: {percent(point.low)} a {percent(point.high)})")
            body.append(f'<g class="interval s{k}"><title>{tip}</title>'
                        f'<line class="whisker s{k}" x1="{x:.1f}" x2="{x:.1f}" y1="{y(point.low):.1f}" '
                        f'y2="{y(point.high):.1f}"/>'
                        f'<line class="whisker s{k}" x1="{x - CAP:.1f}" x2="{x + CAP:.1f}" y1="{y(point.low):.1f}" '
                        f'y2="{y(point.low):.1f}"/>'
                        f'<line class="whisker s{k}" x1="{x - CAP:.1f}" x2="{x + CAP:.1f}" y1="{y(point.high):.1f}" '
                        f'y2="{y(point.high):.1f}"/>'
                        f'<circle class="dot s{k}" cx="{x:.1f}" cy="{y(point.rate):.1f}" r="4"/></g>')
    legend = [f'<text class="legend s{k}" x="{LEFT + 170 * k}" y="{HEIGHT - 8}">{escape(s.label)}</text>'
              for k, s in enumerate(series)]
    return _frame(title, body + legend, categories, top, percent)


def from_report(report: dict) -> tuple[list[str], list[IntervalSeries]]:
    """Categories and series of an experiment report (server.experiment_report.build_report): the
    approval rate of every arm, shadows included (what they would have approved), and, once the
    portfolio knows how customers paid, the bad rate of the arms customers met."""
    arms = report["arms"]
    approval = []
    bad = []
    for arm in arms:
        outcome = arm["outcomes"]["approve"]
        approval.append(Interval(outcome["rate"], *outcome["ci"]) if outcome["rate"] is not None else None)
        rate = arm.get("bad_rate")
        bad.append(Interval(rate["rate"], *rate["ci"]) if rate and rate["rate"] is not None else None)
    series = [IntervalSeries("aprovação", approval)]
    if any(p is not None for p in bad):
        series.append(IntervalSeries("inadimplência", bad))
    return [a["arm"] + (" (sombra)" if a["shadow"] else "") for a in arms], series
