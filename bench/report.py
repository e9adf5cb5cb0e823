"""Figures beside their targets: printed as they come, summed up at the end."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RAN = "runs"


@dataclass
class Figure:
    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    passed: bool | None = None  # None: reported, no target
    note: str = ""

    def value_text(self) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "—"
        if self.unit == "×":
            return f"{self.value:.2f}×"
        if abs(self.value) >= 100 or float(self.value).is_integer():
            return f"{self.value:,.0f} {self.unit}".rstrip()
        return f"{self.value:.3g} {self.unit}".rstrip()

    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: ""}[self.passed]


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    def section(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        line = f"  {figure.name:<58} {figure.value_text():>14}"
        if figure.target:
            line += f"   target {figure.target:<16} {figure.verdict()}"
        if figure.note:
            line += f"   ({figure.note})"
        print(line, flush=True)
        return figure

    def info(self, section: str, name: str, value: float | None, unit: str, note: str = "") -> None:
        self.add(Figure(section, name, value, unit, note=note))

    def at_most(
        self, section: str, name: str, value: float, limit: float, unit: str, note: str = ""
    ) -> None:
        limit_text = Figure(section, "", limit, unit).value_text()
        self.add(Figure(section, name, value, unit, f"≤ {limit_text}", value <= limit, note))

    def at_least(
        self, section: str, name: str, value: float, limit: float, unit: str, note: str = ""
    ) -> None:
        limit_text = Figure(section, "", limit, unit).value_text()
        self.add(Figure(section, name, value, unit, f"≥ {limit_text}", value >= limit, note))

    def pending(self, section: str, name: str, note: str) -> None:
        self.add(Figure(section, name, None, "", note=note))

    def failure(self, section: str, name: str, note: str) -> None:
        """A benchmark that could not produce its figure: that is a miss, not a skip."""
        self.add(Figure(section, name, None, "", RAN, False, note))

    @property
    def misses(self) -> list[Figure]:
        return [f for f in self.figures if f.passed is False]

    @property
    def broken(self) -> list[Figure]:
        """The benchmarks that could not run at all (a crash, a job lost), not a slow figure."""
        return [f for f in self.misses if f.target == RAN]

    def summary(self) -> None:
        checked = [f for f in self.figures if f.passed is not None]
        print(f"\n{len(checked) - len(self.misses)} of {len(checked)} targets met.")
        for figure in self.misses:
            print(
                f"  missed: [{figure.section}] {figure.name}: {figure.value_text()} "
                f"(target {figure.target}) {figure.note}".rstrip()
            )
        sys.stdout.flush()

    def write_json(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {"context": self.context, "figures": [asdict(f) for f in self.figures]}, indent=2
            )
        )
