"""The playground form: what the browser posts, turned into run parameters or field errors."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.errors import InvalidParameters
from app.jobs import RemixSource
from app.models import ROW_ID_MAX, Job
from app.parameters import (
    CUSTOM_SIZE,
    DEFAULT_IMAGE_SIZE,
    UPSTREAM_FIELDS,
    GenerationParams,
    ModelId,
)
from app.presets import PRESETS_BY_SLUG, Preset
from app.rules import SEEDREAM_RULES, ModelRules
from app.runs import parse_parameters, validate_parameters

# The record's whole-number fields: the form posts them as text.
INTEGER_FIELDS = tuple(
    name for name, prop in SEEDREAM_RULES.properties.items() if "integer" in prop.get("type", ())
)
# Images a remix may name: any job's, not just today's rules' maximum.
REMIX_IMAGE_MAX = 999
TOKEN_MAX = 64
_model_id = TypeAdapter(ModelId)


def new_submission_token() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class GenerateForm:
    """Values as typed (strings, for re-rendering) and the errors found in them.

    `token` is the form's one-time submission token: posting the same form twice (a
    double click, a resent request) names the same job, which is paid for once.
    """

    values: dict[str, str]
    model: str
    preset: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=new_submission_token)
    # A remix's source job and image, as posted back by the form (strings, like values).
    remix_of: str = ""
    remix_image: str = ""

    @classmethod
    def blank(cls, *, model: str) -> GenerateForm:
        return cls(values={"image_size": DEFAULT_IMAGE_SIZE, "num_images": "1"}, model=model)

    @classmethod
    def from_preset(cls, preset: Preset, *, model: str) -> GenerateForm:
        return cls.from_params(preset.params(), model=model, preset=preset.slug)

    @classmethod
    def from_params(
        cls, params: GenerationParams, *, model: str, preset: str | None = None
    ) -> GenerateForm:
        return cls(values=_as_strings(params.model_dump()), model=model, preset=preset)

    @classmethod
    def from_job(cls, job: Job, *, image_index: int | None = None) -> GenerateForm:
        """An earlier job's parameters (the body it sent), its model and preset: the start
        of a remix, which remembers where it came from."""
        values = GenerationParams.from_body(job.request_body).model_dump()
        preset = job.preset if job.preset in PRESETS_BY_SLUG else None
        return cls(
            values=_as_strings(values),
            model=job.model,
            preset=preset,
            remix_of=str(job.id),
            remix_image="" if image_index is None else str(image_index),
        )

    @classmethod
    def from_post(cls, form: Mapping[str, Any], *, model: str) -> GenerateForm:
        values = {name: str(form.get(name, "") or "").strip() for name in UPSTREAM_FIELDS}
        # The prompt keeps its inner whitespace; only the ends are trimmed by validation.
        values["prompt"] = str(form.get("prompt", "") or "")
        preset = str(form.get("preset", "") or "") or None
        chosen_model = str(form.get("model", "") or "").strip() or model
        token = str(form.get("submission_token", "") or "").strip()
        return cls(
            values=values,
            model=chosen_model,
            preset=preset if prompt_follows_preset(values["prompt"], preset) else None,
            token=token[:TOKEN_MAX] if token else new_submission_token(),
            remix_of=str(form.get("remix_of", "") or "").strip(),
            remix_image=str(form.get("remix_image", "") or "").strip(),
        )

    def model_id_is_valid(self) -> bool:
        try:
            _model_id.validate_python(self.model)
        except ValidationError:
            return False
        return True

    @property
    def preset_prompt(self) -> str:
        """The prompt of the form's preset, for the page to notice when it is edited away."""
        return PRESETS_BY_SLUG[self.preset].prompt if self.preset in PRESETS_BY_SLUG else ""

    @property
    def idempotency_key(self) -> str:
        return f"form:{self.token}"

    def remix_source(self) -> RemixSource | None:
        """The remix's source, if the form came from one; bad values in the hidden fields
        (a hand-edited form) are field errors, like any other."""
        if not self.remix_of:
            return None
        job_id = _whole_number(self.remix_of, maximum=ROW_ID_MAX)
        if job_id is None:
            raise InvalidParameters({"remix_of": "must be a job number"})
        image_index = _whole_number(self.remix_image, maximum=REMIX_IMAGE_MAX)
        if self.remix_image and image_index is None:
            raise InvalidParameters({"remix_image": "must be an image number"})
        return RemixSource(job_id=job_id, image_index=image_index)

    def to_params(self, rules: ModelRules | None = None) -> GenerationParams:
        """The parameters, checked against `rules` when given (submitting checks them
        anyway); on failure, fills `errors` and raises InvalidParameters."""
        parsed: dict[str, Any] = {"prompt": self.values.get("prompt", "")}
        errors: dict[str, str] = {}
        image_size = self.values.get("image_size") or DEFAULT_IMAGE_SIZE
        parsed["image_size"] = image_size
        for name in INTEGER_FIELDS:
            raw = self.values.get(name, "")
            if name in ("customWidth", "customHeight") and image_size != CUSTOM_SIZE:
                # Hidden fields keep what was typed before the size changed; ignore them.
                continue
            if raw == "":
                continue
            try:
                parsed[name] = int(raw)
            except ValueError:
                errors[name] = "must be a whole number"
        if not self.model_id_is_valid():
            errors["model"] = "must be a PixelDojo model id, like seedream-4"
        try:
            params = validate_parameters(parsed, rules) if rules else parse_parameters(parsed)
        except InvalidParameters as exc:
            errors = {**exc.field_errors, **errors}
        if errors:
            self.errors = errors
            raise InvalidParameters(errors)
        return params


def _whole_number(text: str, *, maximum: int) -> int | None:
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if not text.isascii() or not text.isdecimal() or len(text) > len(str(maximum)):
        return None
    number = int(text)
    return number if number <= maximum else None


def _as_strings(values: Mapping[str, Any]) -> dict[str, str]:
    return {name: "" if value is None else str(value) for name, value in values.items()}


def prompt_follows_preset(prompt: str, preset: str | None) -> bool:
    """A job is filed under a preset only while its prompt is still the preset's own:
    a prompt of one's own, written over a preset, is not that preset's work."""
    if preset not in PRESETS_BY_SLUG:
        return False
    return " ".join(prompt.split()) == " ".join(PRESETS_BY_SLUG[preset].prompt.split())
