"""The grid form: what the browser posts, turned into a grid request or field errors.

Values stay strings as typed, so a refused form comes back exactly as it was sent.
Errors are keyed by field (`prompt`, `seed`) or by axis (`x`, `y`, `z`), the same
keys the planner (app/domain/grid_plans.py) uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import InvalidParameters
from app.domain.grid_axes import AXIS_NAMES, PRESET, SEED, AxisSpec, GridRequest, values_text
from app.domain.grid_plans import request_from_record
from app.domain.parameters import CUSTOM_SIZE, DEFAULT_IMAGE_SIZE
from app.domain.presets import PRESETS_BY_SLUG, Preset
from app.storage.db.tables import Grid
from app.web.forms import new_submission_token, posted_token

BASE_FIELDS = ("prompt", "image_size", "customWidth", "customHeight", "seed", "num_images")
INTEGER_FIELDS = ("customWidth", "customHeight", "seed", "num_images")
# What a new grid starts with: presets along the columns, three random seeds down the rows.
STARTING_AXES = {"x": (PRESET, ""), "y": (SEED, "random 3"), "z": ("", "")}


@dataclass
class GridForm:
    values: dict[str, str]
    axes: dict[str, tuple[str, str]]
    # Presets ticked for an axis that varies presets: axis name → slugs.
    preset_choices: dict[str, list[str]] = field(default_factory=dict)
    preset: str | None = None
    remix_of: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=new_submission_token)

    @classmethod
    def blank(cls, *, size: str | None = None) -> GridForm:
        """A new grid's form; `size` is the default size of the rules in force."""
        return cls(
            values={"image_size": size or DEFAULT_IMAGE_SIZE, "num_images": "1"},
            axes=dict(STARTING_AXES),
            preset_choices={"x": list(PRESETS_BY_SLUG)[:2]},
        )

    @classmethod
    def from_preset(cls, preset: Preset, *, size: str | None = None) -> GridForm:
        form = cls.blank(size=size)
        form.values.update(prompt=preset.prompt, image_size=preset.image_size)
        form.preset = preset.slug
        # A preset's own grid: its prompt against seeds and sizes, not against other presets.
        form.axes = {"x": (SEED, "random 3"), "y": ("", ""), "z": ("", "")}
        form.preset_choices = {}
        return form

    @classmethod
    def from_grid(cls, grid: Grid) -> GridForm:
        """A grid's request, its seeds as drawn: change one axis and make another."""
        request = request_from_record(grid.request)
        values = {
            name: "" if value is None else str(value) for name, value in request.parameters.items()
        }
        axes: dict[str, tuple[str, str]] = {name: ("", "") for name in AXIS_NAMES}
        choices: dict[str, list[str]] = {}
        for made in grid.axes:
            values_list = list(made["values"])
            if made["param"] == PRESET:
                choices[made["name"]] = [str(value) for value in values_list]
            axes[made["name"]] = (made["param"], values_text(values_list))
        return cls(
            values=values,
            axes=axes,
            preset_choices=choices,
            preset=request.preset,
            remix_of=str(grid.id),
        )

    @classmethod
    def from_post(cls, posted: Mapping[str, Any], *, getlist: Any = None) -> GridForm:
        values = {name: str(posted.get(name, "") or "").strip() for name in BASE_FIELDS}
        values["prompt"] = str(posted.get("prompt", "") or "")
        axes = {
            name: (
                str(posted.get(f"axis_{name}", "") or "").strip(),
                str(posted.get(f"axis_{name}_values", "") or "").strip(),
            )
            for name in AXIS_NAMES
        }
        choices = {
            name: [str(slug) for slug in getlist(f"axis_{name}_presets")]
            for name in AXIS_NAMES
            if getlist is not None
        }
        preset = str(posted.get("preset", "") or "") or None
        return cls(
            values=values,
            axes=axes,
            preset_choices={name: slugs for name, slugs in choices.items() if slugs},
            preset=preset if preset in PRESETS_BY_SLUG else None,
            remix_of=str(posted.get("remix_of", "") or "").strip(),
            token=posted_token(posted),
        )

    def to_request(self) -> GridRequest:
        """The request, or field errors (kept in `errors`) for what cannot even be read."""
        errors: dict[str, str] = {}
        parameters: dict[str, Any] = {"prompt": self.values.get("prompt", "")}
        size = self.values.get("image_size") or DEFAULT_IMAGE_SIZE
        parameters["image_size"] = size
        for name in INTEGER_FIELDS:
            raw = self.values.get(name, "")
            if raw == "" or (name in ("customWidth", "customHeight") and size != CUSTOM_SIZE):
                continue
            try:
                parameters[name] = int(raw)
            except ValueError:
                errors[name] = "must be a whole number"
        specs = []
        for name in AXIS_NAMES:
            param, text = self.axes.get(name, ("", ""))
            if not param:
                continue
            if param == PRESET and self.preset_choices.get(name):
                text = values_text(self.preset_choices[name])
            try:
                specs.append(AxisSpec.from_text(param, text))
            except ValueError as exc:
                errors[name] = str(exc)
        if not specs and not errors:
            errors["x"] = "choose what the columns vary"
        remix_of = (
            int(self.remix_of) if self.remix_of.isdecimal() and len(self.remix_of) < 19 else None
        )
        if errors:
            self.errors = errors
            raise InvalidParameters(errors)
        return GridRequest(parameters=parameters, axes=specs, preset=self.preset, remix_of=remix_of)

    @property
    def idempotency_key(self) -> str:
        return f"form:grid:{self.token}"
