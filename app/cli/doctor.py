"""`seedream-playground doctor`: the first contact with PixelDojo, checked
(app/features/doctor/), and the report printed as a table for an 80-column terminal.

While it checks, a line on a terminal says which step it is on, its clock ticking; with
`--run` each step is also said as it starts (a paid job's wait is the longest).
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from typing import TYPE_CHECKING

import click

from app.cli.local import load_settings, open_gallery
from app.cli.options import common, examples, output_for
from app.cli.output import Output, clock

if TYPE_CHECKING:
    from app.core.config import Settings
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


@click.command(
    short_help="Check PixelDojo with your key (spends nothing).",
    epilog=examples("doctor", "doctor --run", "doctor --json", "doctor --model seedream-4-edit"),
)
@click.option("--run", is_flag=True, help="Also spend one 1-image job at the cheapest size.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--model", metavar="ID", help="Check this model apiId instead of PLAYGROUND_MODEL.")
@common
def doctor(run: bool, as_json: bool, model: str | None) -> int:
    """Check the key, the model and its live schema against PixelDojo (spends nothing).

    Checks that the app can work with PixelDojo: the base URL, the key, the model, its
    live schema and every way it differs from the built-in rules (and what that changes:
    the default size, presets), the rate-limit headers and the clock. Spends nothing
    unless --run, which shows each step as it goes. Exit status: 0 the app can work, 1
    something blocks it (the reason in the last line), 2 no key to check.
    """
    from app.features.doctor.report import EXIT_NOTHING_TO_CHECK

    output = output_for(as_json)
    settings = load_settings()
    # The model to check; the app's own (settings.model) decides what doctor's read may keep.
    if model:
        from pydantic import TypeAdapter, ValidationError

        from app.core.model_id import ModelId

        try:
            model = TypeAdapter(ModelId).validate_python(model)
        except ValidationError:
            raise SystemExit(f"--model {model!r} is not a PixelDojo model id") from None
    if settings.pixeldojo_api_key is None:
        message = (
            "No PixelDojo key: PIXELDOJO_API_KEY is unset, so the app runs in demo mode "
            "and there is nothing upstream to check. Set it and run doctor again."
        )
        if as_json:
            print(
                json.dumps({"exit_code": EXIT_NOTHING_TO_CHECK, "ok": False, "headline": message})
            )
        else:
            print(message, file=sys.stderr)
        return EXIT_NOTHING_TO_CHECK
    result = asyncio.run(_diagnose(settings, run=run, output=output, model=model))
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(render(result), end="")
    return result.exit_code


async def _diagnose(
    settings: Settings, *, run: bool, output: Output, model: str | None
) -> DoctorResult:
    from app.features.doctor.checks import diagnose
    from app.features.doctor.paid_run import Gallery
    from app.features.doctor.report import save_report
    from app.features.people.access import load_secret

    db, blobs = open_gallery(settings)
    # With --run on a model that takes references and PLAYGROUND_PUBLIC_URL set, the test
    # picture is kept in the gallery for the app to serve by a signed link.
    gallery = Gallery(db, blobs, load_secret(settings, db), settings.scratch_dir)
    step: dict[str, str | float] = {"text": "Starting", "since": 0.0}

    def describe(seconds: float) -> str:
        since = seconds - float(step["since"])
        return f"{step['text']} · {clock(since)} ({clock(seconds)} in all)"

    try:
        async with output.progress(describe) as progress:

            def on_step(text: str) -> None:
                if run:
                    # A person watching a paid run sees each step, and how long it took.
                    output.say(f"  {clock(progress.elapsed)}  {text}")
                step.update(text=text, since=progress.elapsed)
                progress.draw()

            result = await diagnose(
                settings, db=db, run=run, gallery=gallery, on_step=on_step, model=model
            )
        await asyncio.to_thread(save_report, db, upstream=settings.upstream_name, result=result)
    finally:
        blobs.close()
        db.dispose()
    return result
