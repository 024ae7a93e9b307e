"""The dashboard's chart of invoiced against paid per month: an SVG drawn on the server (no script,
nothing fetched), ``{% invoiced_paid_chart dashboard.months %}``. Amounts stay Decimal; coordinates
are rounded to 0.1 px."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django import template

from invoices.dashboard import Month

register = template.Library()

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 120, 10, 30, 44  # room for the amount axis, the legend and the months
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
TICKS = 4


def _px(value: Decimal | int) -> str:
    return str(Decimal(value).quantize(Decimal("0.1")))


def _step(maximum: Decimal) -> Decimal:
    """A round amount (1, 2, 2.5 or 5 times a power of ten) giving at most TICKS grid lines."""
    if maximum <= 0:
        return Decimal(100)
    raw = maximum / TICKS
    magnitude = Decimal(1).scaleb(raw.adjusted())
    return next(m * magnitude for m in (1, 2, Decimal("2.5"), 5, 10) if m * magnitude >= raw)


@dataclass
class Bar:
    x: str
    y: str
    width: str
    height: str
    amount: Decimal


@dataclass
class MonthBars:
    start: date
    label_x: str
    show_year: bool
    invoiced: Bar
    paid: Bar


@dataclass
class Tick:
    y: str
    amount: Decimal


@dataclass
class Chart:
    width: int
    height: int
    left: int
    right: int
    baseline: str
    months: list[MonthBars]
    ticks: list[Tick]


@register.inclusion_tag("admin/dashboard/chart.svg")
def invoiced_paid_chart(months: list[Month]) -> dict:
    return {"chart": chart_geometry(months)}


def chart_geometry(months: list[Month]) -> Chart:
    highest = max((max(m.invoiced, m.paid) for m in months), default=Decimal(0))
    step = _step(highest)
    top = step * max(1, math.ceil(highest / step))
    group = Decimal(PLOT_WIDTH) / len(months)
    bar_width = group * Decimal("0.36")
    baseline = Decimal(TOP + PLOT_HEIGHT)

    def bar(amount: Decimal, x: Decimal) -> Bar:
        height = max(amount, Decimal(0)) / top * PLOT_HEIGHT
        return Bar(
            x=_px(x), y=_px(baseline - height), width=_px(bar_width), height=_px(height), amount=amount
        )

    bars = []
    for i, month in enumerate(months):
        left = LEFT + group * i
        start = left + group * Decimal("0.12")
        bars.append(
            MonthBars(
                start=month.start,
                label_x=_px(left + group / 2),
                show_year=i == 0 or month.start.month == 1,
                invoiced=bar(month.invoiced, start),
                paid=bar(month.paid, start + bar_width + 2),
            )
        )
    ticks = [
        Tick(y=_px(baseline - step * n / top * PLOT_HEIGHT), amount=step * n)
        for n in range(int(top / step) + 1)
    ]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=WIDTH - RIGHT,
        baseline=_px(baseline),
        months=bars,
        ticks=ticks,
    )
