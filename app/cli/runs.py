"""A run as the command line asks for it: the prompt (an argument, `-`, or standard input),
a preset to start from, a size, `-o name=value` for any field of the model's live
schema, and reference images by gallery id or file. `generate` and `grid` read runs
this way; `batch` reads its rows (app/domain/batch_rows.py).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from app.cli.output import Output
from app.cli.remote import Remote, RemoteError

F = TypeVar("F", bound=Callable[..., Any])

# What the API's fields are called on the command line, in its errors.
FLAG_NAMES = {
    "prompt": "PROMPT",
    "image_size": "--size",
    "num_images": "--num-images",
    "seed": "--seed",
    "model": "--model",
    "preset": "--preset",
    "reference_images": "--reference",
}


def run_options(function: F) -> F:
    """The options of a run, shared by `generate` and `grid`."""
    decorators = [
        click.option(
            "-p", "--preset", metavar="SLUG", help="Start from a preset (`presets` lists them)."
        ),
        click.option(
            "-s",
            "--size",
            metavar="SIZE",
            help="A named size (square_hd, landscape_16_9, ...) or WIDTHxHEIGHT "
            "[default: auto_2K, or the first size the live schema allows].",
        ),
        click.option("--width", type=int, metavar="W", help="Custom width, with --height."),
        click.option("--height", type=int, metavar="H", help="Custom height, with --width."),
        click.option(
            "-n", "--num-images", type=int, metavar="N", help="Images per job [default: 1]."
        ),
        click.option("--seed", type=int, metavar="N", help="A fixed seed [default: drawn]."),
        click.option(
            "-m",
            "--model",
            metavar="ID",
            help="A PixelDojo model apiId (`models` lists them) [default: the server's].",
        ),
        click.option(
            "-o",
            "--option",
            "options",
            multiple=True,
            metavar="NAME=VALUE",
            help="Any field of the model's live schema, typed as it says (repeatable).",
        ),
        click.option(
            "-r",
            "--reference",
            "references",
            multiple=True,
            metavar="ID|FILE",
            help="A reference image for an edit model: a gallery image id, or an image "
            "file to upload (repeatable).",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def read_prompt(prompt: str | None) -> str | None:
    """The prompt: the argument, or standard input for `-` (or when piped and no prompt)."""
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        text = sys.stdin.read().strip()
        if not text and prompt == "-":
            raise RemoteError("PROMPT -: standard input was empty")
        return text or None
    return prompt


def size_fields(size: str | None, width: int | None, height: int | None) -> dict[str, Any]:
    if (width is None) != (height is None):
        raise RemoteError("--width and --height go together")
    if width is not None:
        if size is not None:
            raise RemoteError("give --size or --width and --height, not both")
        return {"image_size": "custom", "customWidth": width, "customHeight": height}
    if size is None:
        return {}
    parts = size.lower().replace("×", "x").split("x")
    if len(parts) == 2 and all(part.strip().isdecimal() for part in parts):
        width, height = (int(part) for part in parts)
        return {"image_size": "custom", "customWidth": width, "customHeight": height}
    return {"image_size": size}


def field_names(size: str | None, width: int | None) -> dict[str, str]:
    """What the person typed for the size, so an error names it (`--size`, not customWidth)."""
    names = dict(FLAG_NAMES)
    if width is not None:
        names.update(customWidth="--width", customHeight="--height", image_size="--width")
    else:
        names.update(customWidth="--size", customHeight="--size")
    return names


def with_preset(
    body: dict[str, Any],
    presets: dict[str, dict[str, Any]],
    output: Output,
    *,
    where: str = "",
    keep_prompt: bool = False,
) -> dict[str, Any]:
    """A request naming a preset starts from its parameters (as the rules in force let it
    run); what it gives itself wins."""
    slug = body.get("preset")
    if slug is None:
        return body
    preset = presets.get(str(slug))
    if preset is None:
        raise RemoteError(f"{where}there is no preset {slug!r}; one of: {', '.join(presets)}")
    if preset.get("available") is False:
        raise RemoteError(f"{where}{preset.get('note') or f'{slug} cannot run now'}")
    start = {
        name: value
        for name, value in preset["parameters"].items()
        if value is not None and name in ("prompt", "image_size", "customWidth", "customHeight")
    }
    if keep_prompt:
        start.pop("prompt", None)
    if body.get("image_size") not in (None, "custom"):
        start.pop("customWidth", None)
        start.pop("customHeight", None)
    if preset.get("note") and "image_size" not in body:
        output.say(f"{where}{preset['note']}.")
    return {**start, **body}


def typed_options(options: Sequence[str], rules: dict[str, Any]) -> dict[str, Any]:
    """`-o name=value` pairs, each value typed as the model's schema types its field."""
    fields: dict[str, dict[str, Any]] = rules.get("fields") or {}
    typed: dict[str, Any] = {}
    for option in options:
        name, equals, text = option.partition("=")
        name = name.strip()
        if not equals or not name:
            raise RemoteError(f"-o {option!r}: give NAME=VALUE")
        prop = fields.get(name)
        if prop is None:
            known = ", ".join(sorted(fields)) or "none"
            raise RemoteError(
                f"-o {name}: {rules.get('model')} has no such field; its fields: {known}"
            )
        typed[name] = _typed(name, text.strip(), prop)
    return typed


def _typed(name: str, text: str, prop: dict[str, Any]) -> Any:
    types = prop.get("type") or []
    try:
        if "integer" in types:
            return int(text)
        if "number" in types:
            return float(text)
    except ValueError:
        raise RemoteError(f"-o {name}={text}: must be a number") from None
    if "boolean" in types:
        if text.lower() in ("true", "yes", "1", "on"):
            return True
        if text.lower() in ("false", "no", "0", "off"):
            return False
        raise RemoteError(f"-o {name}={text}: must be true or false")
    if "array" in types:
        return [part.strip() for part in text.split(",") if part.strip()]
    if not types:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


async def reference_ids(
    remote: Remote, references: Sequence[str], rules: dict[str, Any]
) -> list[int]:
    """Gallery image ids for `--reference`s: ids as given, files uploaded (checked by the
    server like any upload). Refused before anything is uploaded if the model takes none."""
    if not references:
        return []
    found = rules.get("image_input")
    if not found:
        raise RemoteError(
            f"--reference: {rules.get('model')} takes no reference images; pick an edit model "
            "with --model (`seedream-playground models` lists them)"
        )
    if len(references) > int(found.get("max_items") or 0):
        raise RemoteError(f"--reference: {rules.get('model')} takes at most {found['max_items']}")
    for reference in references:
        if not reference.isdecimal() and not Path(reference).is_file():
            raise RemoteError(f"--reference {reference}: not a gallery image id nor a file")
    ids = []
    for reference in references:
        ids.append(
            int(reference) if reference.isdecimal() else await remote.upload(Path(reference))
        )
    return ids


def run_key(server: str, body: dict[str, Any], *, new: bool, kind: str = "run") -> str:
    """The Idempotency-Key of a run: from what it asks (its body and where it goes), so the
    same command again carries on with the same job instead of paying again; `new` asks
    for another."""
    if new:
        return f"cli-{kind}-{secrets.token_urlsafe(16)}"
    content = json.dumps({"server": server, "body": body}, sort_keys=True, ensure_ascii=False)
    return f"cli-{kind}-{hashlib.sha256(content.encode()).hexdigest()[:40]}"
