"""`seedream-playground grid`: a grid along up to three axes, made on a running playground,
followed, and its contact sheet saved.

The plan (cells, jobs, cost, and its notes: whose prompt the presets draw) is printed
and confirmed first. The same command again is the same grid, paid once; `--new` makes
another.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from app.cli.credentials import token_for
from app.cli.files import prepare_folder
from app.cli.options import common, examples, output_for, run_remote, server_options
from app.cli.output import Output, credits_text, plural, waiting_text
from app.cli.remote import Remote, RemoteError, chosen_server
from app.cli.runs import field_names, read_prompt, run_key, size_fields, with_preset
from app.domain.grid_axes import AxisSpec
from app.web import urls

AXIS_HELP = (
    "preset=A,B; seed=1,2,3 or seed=random:N; size=square_hd,2560x1440; num_images=; "
    "width=; height=; prompt=FIND,REPLACEMENT,..."
)
AXIS_FIELDS = {"x": "--x", "y": "--y", "z": "--z", "axes": "--x/--y/--z"}


@click.command(
    epilog=examples(
        'grid "a lighthouse at dawn" \\',
        "    --x preset=cyberpunk-street,dramatic-landscape --y seed=1,2,3",
        'grid "a cat on a mat" --x prompt=cat,dog,fox \\',
        "    --y size=square_hd,landscape_16_9 --yes",
    )
)
@click.argument("prompt", required=False, metavar="[PROMPT|-]")
@click.option("--x", "x", metavar="NAME=V1,V2", required=True, help=f"The columns: {AXIS_HELP}")
@click.option("--y", "y", metavar="NAME=V1,V2", help="The rows, as --x.")
@click.option("--z", "z", metavar="NAME=V1,V2", help="The tabs, as --x.")
@click.option("-p", "--preset", metavar="SLUG", help="Start every cell from a preset.")
@click.option("-s", "--size", metavar="SIZE", help="Every cell's size, unless an axis sets it.")
@click.option("--width", type=int, metavar="W", help="Custom width, with --height.")
@click.option("--height", type=int, metavar="H", help="Custom height, with --width.")
@click.option("-n", "--num-images", type=int, metavar="N", help="Images per cell [default: 1]")
@click.option("--seed", type=int, metavar="N", help="Every cell's seed, unless an axis sets it.")
@click.option(
    "-m", "--model", metavar="ID", help="A PixelDojo model apiId [default: the server's]."
)
@click.option("-y", "--yes", is_flag=True, help="Make it without asking first.")
@click.option("--new", is_flag=True, help="A new grid, even if this command made one before.")
@click.option(
    "-O",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    metavar="DIR",
    help="The folder the contact sheet goes to (made if missing).",
)
@server_options
@common
def grid(
    prompt: str | None,
    x: str,
    y: str | None,
    z: str | None,
    preset: str | None,
    size: str | None,
    width: int | None,
    height: int | None,
    num_images: int | None,
    seed: int | None,
    model: str | None,
    yes: bool,
    new: bool,
    out: Path,
    server: str | None,
    as_json: bool,
) -> int:
    """Make a grid along up to three axes and save its contact sheet.

    Like AUTOMATIC1111's X/Y/Z plot: --x varies the columns, --y the rows, --z the
    tabs. With a PROMPT, a preset axis draws that prompt in every cell, each preset
    giving its size; without one, each preset draws its own prompt. The plan and its
    cost are shown and confirmed first (--yes does not ask; without a terminal it must
    be given).
    """
    output = output_for(as_json)
    return run_remote(
        output,
        make_grid(
            server=server,
            prompt=prompt,
            axes=[axis for axis in (x, y, z) if axis],
            size=(size, width, height),
            num_images=num_images,
            seed=seed,
            model=model,
            preset=preset,
            yes=yes,
            new=new,
            out=out,
            output=output,
        ),
    )


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise RemoteError("No terminal to ask for confirmation on: pass --yes to go ahead.")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


async def make_grid(
    *,
    server: str | None,
    prompt: str | None,
    axes: list[str],
    size: tuple[str | None, int | None, int | None],
    num_images: int | None,
    seed: int | None,
    model: str | None,
    preset: str | None,
    yes: bool,
    new: bool,
    out: Path,
    output: Output,
) -> int:
    where = chosen_server(server)
    try:
        specs = [AxisSpec.parse(text).model_dump(exclude_none=True) for text in axes]
    except ValueError as exc:
        raise RemoteError(f"Axis {exc}") from None
    parameters = {**size_fields(*size), "num_images": num_images, "seed": seed}
    parameters = {name: value for name, value in parameters.items() if value is not None}
    prompt = read_prompt(prompt)
    if prompt is not None:
        parameters["prompt"] = prompt
    folder = prepare_folder(out)
    names = {**field_names(size[0], size[1]), **AXIS_FIELDS}
    async with Remote(where, token=token_for(where), field_names=names) as remote:
        if preset is not None:
            start = {**parameters, "preset": preset}
            presets_vary = any(spec["param"] == "preset" for spec in specs)
            parameters = with_preset(
                start, await remote.presets(), output, keep_prompt=presets_vary
            )
            parameters.pop("preset")
        request = {"parameters": parameters, "axes": specs, "model": model, "preset": preset}
        request = {name: value for name, value in request.items() if value is not None}
        # The same command again is the same grid (paid once), unless --new.
        key = run_key(where, request, new=new, kind="grid")
        plan = await remote.post_json("/api/grids/plan", request, key=key)
        output.say(describe_plan(plan))
        if not yes and not confirm(f"Make these {plural(plan['jobs'], 'job')}?"):
            raise RemoteError("Nothing was made.", code="declined")
        made = await remote.post_json("/api/grids", request, key=key)
        output.interrupt_hint = (
            f"Grid {made['id']} goes on at the server: run the same command again to follow "
            "it; it is paid once."
        )
        output.say(f"Grid {made['id']}: {where}{made['url']}")
        finished = await follow_grid(remote, made, output)
        sheet = await remote.download(finished["contact_sheet_url"], folder)
    failed = [cell for cell in finished["cells"] if cell["status"] != "completed"]
    output.result({"grid": finished, "contact_sheet": str(sheet)}, [str(sheet)])
    if failed:
        output.say(f"{len(failed)} of {plural(len(finished['cells']), 'cell')} did not complete")
        return 1
    return 0


def describe_plan(plan: dict[str, Any]) -> str:
    lines = [
        f"{plural(plan['jobs'], 'job')}, {plural(plan['images'], 'image')}, "
        f"{credits_text(plan['estimated_credits'])} (model {plan['model']})"
    ]
    for place, axis in zip(("columns", "rows", "tabs"), plan["axes"], strict=False):
        lines.append(f"  {place:<8}{axis['title']}: {', '.join(axis['labels'])}")
    lines.extend(f"  {note}" for note in plan.get("notes") or ())
    return "\n".join(lines)


async def follow_grid(remote: Remote, made: dict[str, Any], output: Output) -> dict[str, Any]:
    total = len(made["cells"])
    done = made["done"]

    def describe(seconds: float) -> str:
        return waiting_text("Grid", seconds, None, f" · {done} of {plural(total, 'cell')} done")

    async with output.progress(describe) as progress:
        delay = 0.5
        while True:
            current: dict[str, Any] = await remote.get_json(urls.grid_api(made["id"]))
            if current["done"] != done:
                done, delay = current["done"], 0.5
                progress.draw()
                output.detail(f"grid {made['id']}: {done} of {total} cells done")
            if current["finished"]:
                return current
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 1.5)
