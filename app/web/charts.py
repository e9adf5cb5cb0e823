"""Charts drawn on the server as SVG geometry: no chart library, nothing to load."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from app.features.gallery.usage import DayUsage

WIDTH = 720
HEIGHT = 240
LEFT = 44
BOTTOM = 28
TOP = 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    x_labels: list[tuple[float, str]]
    baseline: float
    left: int


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def credits_chart(days: Sequence[DayUsage]) -> BarChart:
    """Credits per day as bars, with a few y ticks and about eight date labels."""
    top = _nice_max(max((day.credits for day in days), default=0.0))
    plot_width = WIDTH - LEFT - 8
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    slot = plot_width / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        height = plot_height * day.credits / top
        bars.append(
            Bar(
                x=round(LEFT + i * slot + slot * 0.1, 2),
                y=round(baseline - height, 2),
                width=round(max(slot * 0.8, 1.0), 2),
                height=round(height, 2),
                label=day.day.isoformat(),
                value=day.credits,
                title=f"{day.day.isoformat()}: {day.credits:g} credits, {day.jobs} jobs, "
                f"{day.images} images",
            )
        )
    ticks = [
        Tick(y=round(baseline - plot_height * k / 4, 2), label=f"{top * k / 4:g}") for k in range(5)
    ]
    every = max(1, math.ceil(len(days) / 8))
    x_labels = [
        (round(LEFT + i * slot + slot / 2, 2), day.day.strftime("%b %d"))
        for i, day in enumerate(days)
        if i % every == 0
    ]
    return BarChart(WIDTH, HEIGHT, bars, ticks, x_labels, baseline, LEFT)
