"""Grids: one run made along up to three axes, like AUTOMATIC1111's X/Y/Z plot.

An axis varies one thing over a list of values; as text (the command line's
`--x`, the grid form's fields) it reads `NAME=VALUE,VALUE,...`:

    preset=cyberpunk-street,food-overhead   presets: each sets the size, and the prompt
                                            unless the request gives one of its own
    seed=1,2,3          seed=random:4       seeds: a list, or that many drawn at random
    size=square_hd,landscape_16_9,2048x1536 named sizes, or a custom width x height
    num_images=1,2      width=2048,2560     any numeric parameter of the run
    prompt=cat,dog,fox                      search and replace: the first value is the
                                            word to find, each value takes its place

The first axis runs along the columns (x), the second down the rows (y), the third
across tabs (z). A plan is every cell's run parameters, each validated by the same
function as every other submission before anything is sent, with the number of jobs
and their cost. Planning touches no database: presets saved by the team are looked
up through a function the caller passes in.

A preset axis with a prompt of the request's own draws that prompt in every cell, each
preset giving its size (`grid "a lighthouse at dawn" --x preset=...` is a lighthouse in
each preset's shape); without one, each preset draws its own prompt. The plan's notes
say which, and name any preset run at another size than its own because the rules in
force do not allow it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import product
from typing import Any

from app.core.errors import InvalidParameters
from app.core.text import STORED
from app.domain.grid_axes import (
    AXIS_NAMES,
    CUSTOM_SIZE_TEXT,
    HEIGHT,
    MAX_CELLS,
    PRESET,
    PROMPT,
    SEED,
    SIZE,
    TITLES,
    WIDTH,
    AxisSpec,
    GridRequest,
    axis_parameters,
    canonical_parameter,
    values_text,
)
from app.domain.grid_presets import (
    PresetChoice,
    TeamPresetLookup,
    fitted,
    no_team_presets,
    preset_choice,
    preset_notes,
)
from app.domain.parameters import (
    CUSTOM_SIZE,
    DEFAULT_IMAGE_SIZE,
    IMAGE_SIZE_LABELS,
    IMAGE_SIZES,
    NAMED_SIZE_PIXELS,
    SEED_MAX,
    GenerationParams,
)
from app.domain.rules import ModelRules, builtin_rules
from app.domain.runs import validate_parameters

__all__ = ["MAX_CELLS", "AxisSpec", "GridRequest", "PresetChoice", "TeamPresetLookup"]


@dataclass(frozen=True)
class Axis:
    """An axis as planned: its values made concrete (random seeds drawn), each labelled."""

    name: str
    param: str
    title: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]
    presets: tuple[PresetChoice, ...] = ()

    def __len__(self) -> int:
        return len(self.values)

    @property
    def search(self) -> str | None:
        return str(self.values[0]) if self.param == PROMPT else None

    def record(self) -> dict[str, Any]:
        """As stored with the grid and answered by the API."""
        return {
            "name": self.name,
            "param": self.param,
            "title": self.title,
            "values": list(self.values),
            "labels": list(self.labels),
        }

    def as_text(self) -> str:
        """The axis with its values as made (seeds as drawn): what a remix starts from."""
        return f"{self.param}={values_text(self.values)}"


@dataclass(frozen=True)
class PlannedCell:
    position: int
    x: int
    y: int
    z: int
    params: GenerationParams
    preset: str | None


@dataclass(frozen=True)
class GridPlan:
    model: str
    prompt: str
    axes: tuple[Axis, ...]
    cells: tuple[PlannedCell, ...]
    # What a person should know before making it: whose prompt the presets draw, and
    # presets run at another size than their own.
    notes: tuple[str, ...] = ()
    # Demo mode: nothing is charged, so nothing is estimated either.
    free: bool = False

    @property
    def jobs(self) -> int:
        return len(self.cells)

    @property
    def images(self) -> int:
        return sum(cell.params.num_images for cell in self.cells)

    @property
    def credits(self) -> float:
        return float(sum(self.cell_credits(cell) for cell in self.cells))

    def cell_credits(self, cell: PlannedCell) -> float:
        return 0.0 if self.free else float(cell.params.estimated_credits)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Columns, rows and tabs."""
        sizes = [len(axis) for axis in self.axes] + [1, 1, 1]
        return sizes[0], sizes[1], sizes[2]


def plan_grid(
    request: GridRequest,
    *,
    default_model: str,
    token: str | None = None,
    team_preset: TeamPresetLookup = no_team_presets,
    rules: ModelRules | None = None,
    free: bool = False,
) -> GridPlan:
    """Every cell's run parameters, validated against `rules` (the rules in force for the
    grid's model; default: the built-in ones); InvalidParameters names the axis at fault.
    `free`: nothing is charged (demo mode), so the plan costs nothing.

    `token` draws random seeds: the same token draws the same seeds, so a plan shown
    before submitting is the grid that a submission with the same token makes.
    """
    axes = _resolve_axes(request.axes, token=token, team_preset=team_preset)
    cols, rows, tabs = ([len(axis) for axis in axes] + [1, 1, 1])[:3]
    if cols * rows * tabs > MAX_CELLS:
        raise InvalidParameters(
            {"axes": f"{cols * rows * tabs} cells is more than {MAX_CELLS}; use fewer values"}
        )
    base = dict(request.parameters)
    rules = rules or builtin_rules(request.model or default_model)
    own_prompt = str(base.get(PROMPT) or "").strip()
    notes = preset_notes(varied=any(axis.param == PRESET for axis in axes), own_prompt=own_prompt)
    axes = [
        replace(axis, presets=fitted(axis.presets, rules, notes)) if axis.param == PRESET else axis
        for axis in axes
    ]
    errors: dict[str, str] = {}
    cells: list[PlannedCell] = []
    for position, (z, y, x) in enumerate(product(range(tabs), range(rows), range(cols))):
        indexes = (x, y, z)
        values = dict(base)
        preset = request.preset
        set_by: dict[str, str] = {}
        # Presets first: they replace the prompt, which a search and replace then edits.
        for axis in sorted(axes, key=lambda axis: _APPLY_ORDER.get(axis.param, 1)):
            index = indexes[AXIS_NAMES.index(axis.name)]
            problem = _apply(axis, index, values, set_by, keep_prompt=bool(own_prompt))
            if problem:
                errors.setdefault(axis.name, f"{axis.labels[index]}: {problem}")
            if axis.param == PRESET:
                # Filed under the preset only while the prompt is the preset's own.
                preset = None if own_prompt else axis.presets[index].slug
        try:
            params = validate_parameters(values, rules)
        except InvalidParameters as invalid:
            for field, message in invalid.field_errors.items():
                axis_name = set_by.get(field)
                if axis_name is None:
                    errors.setdefault(field, message)
                else:
                    axis = axes[AXIS_NAMES.index(axis_name)]
                    index = indexes[AXIS_NAMES.index(axis_name)]
                    errors.setdefault(axis_name, _cell_problem(axis, index, field, message))
            continue
        cells.append(PlannedCell(position, x, y, z, params, preset))
    if errors:
        raise InvalidParameters(errors)
    presets = next((axis for axis in axes if axis.param == PRESET), None)
    return GridPlan(
        model=request.model or default_model,
        # What a listing calls it: the prompt, unless presets replace it.
        prompt=f"Presets: {', '.join(presets.labels)}"
        if presets is not None and not own_prompt
        else str(own_prompt or cells[0].params.prompt),
        axes=tuple(axes),
        cells=tuple(cells),
        notes=tuple(notes),
        free=free,
    )


_APPLY_ORDER = {PRESET: 0, PROMPT: 2}


def _cell_problem(axis: Axis, index: int, field: str, message: str) -> str:
    if field == axis.param:
        return f"{field}={axis.values[index]}: {message}"
    return f"{axis.labels[index]}: {field} {message}"


def _resolve_axes(
    specs: Sequence[AxisSpec], *, token: str | None, team_preset: TeamPresetLookup
) -> list[Axis]:
    axes: list[Axis] = []
    errors: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name, spec in zip(AXIS_NAMES, specs, strict=False):
        try:
            axis = _resolve(name, spec, token=token, team_preset=team_preset)
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        if axis.param in seen:
            errors[name] = f"{seen[axis.param]} varies {axis.param} already; vary something else"
            continue
        seen[axis.param] = name
        axes.append(axis)
    if errors:
        raise InvalidParameters(errors)
    return axes


def _resolve(
    name: str, spec: AxisSpec, *, token: str | None, team_preset: TeamPresetLookup
) -> Axis:
    param = canonical_parameter(spec.param)
    if param is None:
        raise ValueError(
            f"{spec.param!r} cannot be an axis; one of: {', '.join(axis_parameters())}"
        )
    if spec.random is not None:
        if param != SEED:
            raise ValueError("only seeds can be drawn at random")
        if spec.values:
            raise ValueError("give seeds or a number to draw at random, not both")
        seeds = draw_seeds(spec.random, token=token, salt=name)
        return Axis(name, param, TITLES[SEED], tuple(seeds), tuple(map(str, seeds)))
    values = list(spec.values)
    if not values:
        raise ValueError(f"give at least one {TITLES.get(param, param).lower()}")
    if param == PROMPT and len(values) < 2:
        raise ValueError("give the word to find, then at least one word to put in its place")
    duplicates = sorted({str(v) for v in values if [str(w) for w in values].count(str(v)) > 1})
    if duplicates:
        raise ValueError(f"{', '.join(duplicates)} is listed twice")
    if param == PRESET:
        choices = tuple(preset_choice(value, team_preset) for value in values)
        return Axis(
            name,
            param,
            TITLES[PRESET],
            tuple(choice.value for choice in choices),
            tuple(choice.label for choice in choices),
            presets=choices,
        )
    if param == SIZE:
        sizes = tuple(_size_value(value) for value in values)
        return Axis(name, param, TITLES[SIZE], sizes, tuple(size_label(size) for size in sizes))
    if param == PROMPT:
        texts = tuple(str(value) for value in values)
        return Axis(name, param, f"Prompt: “{texts[0]}” replaced", texts, texts)
    numbers = tuple(_whole_number(value) for value in values)
    return Axis(name, param, TITLES.get(param, param), numbers, tuple(map(str, numbers)))


def _size_value(value: int | str) -> str:
    text = str(value).strip()
    if text in IMAGE_SIZES and text != CUSTOM_SIZE:
        return text
    custom = CUSTOM_SIZE_TEXT.match(text)
    if custom:
        return f"{int(custom.group(1))}x{int(custom.group(2))}"
    named = ", ".join(size for size in IMAGE_SIZES if size != CUSTOM_SIZE)
    raise ValueError(f"{text!r} is not a size; one of: {named}, or WIDTHxHEIGHT")


def size_label(size: str) -> str:
    if "x" in size and size not in IMAGE_SIZE_LABELS:
        width, height = size.split("x")
        return f"{width}×{height}"
    return IMAGE_SIZE_LABELS.get(size, size)


def _whole_number(value: int | str) -> int:
    if isinstance(value, int):
        return value
    text = value.strip()
    if not re.fullmatch(r"-?\d{1,12}", text):
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def _apply(
    axis: Axis,
    index: int,
    values: dict[str, Any],
    set_by: dict[str, str],
    *,
    keep_prompt: bool = False,
) -> str | None:
    """Set this axis's value in a cell's parameters; returns a problem, if any. A preset
    sets the size, and the prompt unless `keep_prompt` (the request has its own)."""
    value = axis.values[index]
    fields: tuple[str, ...]
    if axis.param == PRESET:
        choice = axis.presets[index]
        _set_size(values, choice.image_size, choice.custom_width, choice.custom_height)
        fields = (SIZE, WIDTH, HEIGHT)
        if not keep_prompt:
            values[PROMPT] = choice.prompt
            fields = (PROMPT, *fields)
    elif axis.param == SIZE:
        if "x" in value:
            width, height = (int(side) for side in value.split("x"))
            _set_size(values, CUSTOM_SIZE, width, height)
        else:
            _set_size(values, value, None, None)
        fields = (SIZE, WIDTH, HEIGHT)
    elif axis.param == PROMPT:
        prompt = str(values.get(PROMPT) or "")
        if axis.search is None or axis.search not in prompt:
            return f"the prompt has no “{axis.search}” to replace"
        values[PROMPT] = prompt.replace(str(axis.search), str(value))
        fields = (PROMPT,)
    elif axis.param in (WIDTH, HEIGHT):
        # A custom side: the other side stays as it was, or as the named size had it.
        size = str(values.get(SIZE) or DEFAULT_IMAGE_SIZE)
        if size != CUSTOM_SIZE:
            width, height = NAMED_SIZE_PIXELS.get(size, NAMED_SIZE_PIXELS[DEFAULT_IMAGE_SIZE])
            values.setdefault(WIDTH, width)
            values.setdefault(HEIGHT, height)
            if values[WIDTH] is None:
                values[WIDTH] = width
            if values[HEIGHT] is None:
                values[HEIGHT] = height
            values[SIZE] = CUSTOM_SIZE
        values[axis.param] = value
        fields = (WIDTH, HEIGHT, SIZE)
    else:
        values[axis.param] = value
        fields = (axis.param,)
    for field in fields:
        set_by[field] = axis.name
    return None


def _set_size(values: dict[str, Any], size: str, width: int | None, height: int | None) -> None:
    values[SIZE] = size
    values.pop(WIDTH, None)
    values.pop(HEIGHT, None)
    if size == CUSTOM_SIZE:
        values[WIDTH] = width
        values[HEIGHT] = height


def draw_seeds(count: int, *, token: str | None, salt: str) -> list[int]:
    """`count` different seeds; with a token, the same ones every time for that token."""
    seeds: list[int] = []
    attempt = 0
    while len(seeds) < count:
        if token is None:
            seed = secrets.randbelow(SEED_MAX + 1)
        else:
            digest = hashlib.sha256(f"{token}:{salt}:{attempt}".encode()).digest()
            seed = int.from_bytes(digest[:8], "big") % (SEED_MAX + 1)
        attempt += 1
        if seed not in seeds:
            seeds.append(seed)
    return seeds


def plan_summary(plan: GridPlan) -> dict[str, Any]:
    """What a person is shown before submitting: the shape, the count and the cost."""
    cols, rows, tabs = plan.shape
    return {
        "model": plan.model,
        "columns": cols,
        "rows": rows,
        "tabs": tabs,
        "jobs": plan.jobs,
        "images": plan.images,
        "estimated_credits": plan.credits,
        "axes": [axis.record() for axis in plan.axes],
        "notes": list(plan.notes),
    }


def cell_records(plan: GridPlan) -> list[dict[str, Any]]:
    return [
        {
            "position": cell.position,
            "x": cell.x,
            "y": cell.y,
            "z": cell.z,
            "preset": cell.preset,
            "parameters": cell.params.upstream_body(),
            "estimated_credits": plan.cell_credits(cell),
        }
        for cell in plan.cells
    ]


def request_from_record(record: Mapping[str, Any]) -> GridRequest:
    return GridRequest.model_validate(record, context=STORED)


def shape(axes: Sequence[Mapping[str, Any]]) -> tuple[int, int, int]:
    """Columns, rows and tabs of a grid with these axes (a missing axis counts one)."""
    sizes = [len(axis["values"]) for axis in axes] + [1, 1, 1]
    return sizes[0], sizes[1], sizes[2]
