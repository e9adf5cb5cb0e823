"""`seedream-playground doctor`: the report printed as a table for an 80-column terminal."""

from __future__ import annotations

import textwrap

from app.features.doctor.report import DoctorResult

WIDTH = 80


def render(result: DoctorResult, width: int = WIDTH) -> str:
    """The report as a table that reads well in a terminal `width` columns wide."""
    lines = [
        "Seedream Playground doctor",
        *textwrap.wrap(f"PixelDojo at {result.base_url}, model {result.model}", width),
        "One 1-image job was spent."
        if result.spent
        else "Nothing was spent (doctor --run spends one 1-image job).",
        "",
    ]
    name_width = max(len(check.name) for check in result.checks) + 2 if result.checks else 12
    indent = " " * (2 + 6 + name_width)
    text_width = max(20, width - len(indent))
    for check in result.checks:
        first, *rest = textwrap.wrap(check.summary, text_width) or [""]
        lines.append(f"  {check.status:<6}{check.name:<{name_width}}{first}")
        lines.extend(indent + line for line in rest)
        for detail in check.details:
            wrapped = textwrap.wrap(detail, text_width, initial_indent="- ", subsequent_indent="  ")
            lines.extend(indent + line for line in wrapped)
    lines.append("")
    lines.extend(textwrap.wrap(result.headline, width))
    return "\n".join(lines) + "\n"
