"""The playground form: what the browser posts, turned into run parameters or field errors."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.core.errors import InvalidParameters
from app.core.model_id import ModelId
from app.core.text import line_problem
from app.domain.model_params import IMAGE_COUNT_FIELDS, ModelParams, RunParams
from app.domain.parameters import (
    CUSTOM_SIZE,
    DEFAULT_IMAGE_SIZE,
    UPSTREAM_FIELDS,
    GenerationParams,
)
from app.domain.presets import PRESETS_BY_SLUG, Preset, preset_run
from app.domain.rules import SEEDREAM_RULES, ModelRules, default_size, has_builtin_record
from app.domain.runs import REFERENCES_FIELD, REFERENCES_MAX, check_run, parse_parameters
from app.features.jobs.creation import RemixSource
from app.features.models.catalogue import CatalogueInForce
from app.features.models.live_rules import RulesInForce
from app.storage.db.tables import ROW_ID_MAX, Job
from app.web import schema_form

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


def posted_token(form: Any) -> str:
    """The form's one-time token as posted (a new one if it has none): it becomes an
    idempotency key, a line like any other key."""
    token = str(form.get("submission_token", "") or "").strip()
    if problem := line_problem(token):
        raise InvalidParameters({"submission_token": problem})
    return token[:TOKEN_MAX] or new_submission_token()


def posted_model(form: Any, default: str) -> str:
    """The model the form names (the configured one if none): read before it is validated
    (a refused form shows it back), so only its kind is checked here."""
    model = str(form.get("model", "") or "").strip()
    if problem := line_problem(model):
        raise InvalidParameters({"model": problem})
    return model or default


@dataclass(frozen=True)
class FormCost:
    """The cost the form shows before submitting, and what the browser recounts it from."""

    per_image: float
    per_job: float
    # The element whose value is the number of images (None: always one).
    count_input: str | None
    credits: float


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
    # Gallery image ids picked as references, in order (strings, as posted).
    references: list[str] = field(default_factory=list)
    # Filled with nothing in particular (no preset, remix or earlier post): the browser may
    # put back the model, size and count the person used last (static/form.js).
    fresh: bool = False

    @classmethod
    def blank(cls, *, model: str, rules: ModelRules | None = None) -> GenerateForm:
        if not has_builtin_record(model):
            return cls(values={}, model=model, fresh=True)  # its schema's defaults
        size = (default_size(rules) if rules is not None else None) or DEFAULT_IMAGE_SIZE
        return cls(values={"image_size": size, "num_images": "1"}, model=model, fresh=True)

    @classmethod
    def from_preset(
        cls, preset: Preset, *, model: str, rules: ModelRules | None = None
    ) -> GenerateForm:
        """The form filled from a preset, at the nearest size the rules in force allow when
        they do not allow its own."""
        run = preset_run(preset, rules) if rules is not None else None
        params = run.params if run is not None and run.params is not None else preset.params()
        return cls.from_params(params, model=model, preset=preset.slug)

    @classmethod
    def from_params(
        cls, params: GenerationParams, *, model: str, preset: str | None = None
    ) -> GenerateForm:
        return cls(values=_as_strings(params.model_dump()), model=model, preset=preset)

    @classmethod
    def from_job(cls, job: Job, *, image_index: int | None = None) -> GenerateForm:
        """An earlier job's parameters (the body it sent), its model, preset and references:
        the start of a remix, which remembers where it came from."""
        if has_builtin_record(job.model):
            values = _as_strings(GenerationParams.from_body(job.request_body).model_dump())
        else:
            values = schema_form.as_form_values(job.request_body, ())
        preset = job.preset if job.preset in PRESETS_BY_SLUG else None
        return cls(
            values=values,
            model=job.model,
            preset=preset,
            remix_of=str(job.id),
            remix_image="" if image_index is None else str(image_index),
            references=[str(image_id) for image_id in job.reference_images or ()],
        )

    @classmethod
    def from_post(cls, form: Any, *, model: str) -> GenerateForm:
        # Another model's form posts its fields as `param.<name>`; Seedream's by their names.
        values = schema_form.posted_values(form) or {
            name: str(form.get(name, "") or "").strip() for name in UPSTREAM_FIELDS
        }
        if "prompt" in form:
            # The prompt keeps its inner whitespace; only the ends are trimmed by validation.
            values["prompt"] = str(form.get("prompt", "") or "")
        preset = str(form.get("preset", "") or "") or None
        chosen_model = posted_model(form, model)
        return cls(
            values=values,
            model=chosen_model,
            preset=preset if prompt_follows_preset(values["prompt"], preset) else None,
            token=posted_token(form),
            remix_of=str(form.get("remix_of", "") or "").strip(),
            remix_image=str(form.get("remix_image", "") or "").strip(),
            references=[
                str(value).strip() for value in form.getlist(REFERENCES_FIELD) if str(value).strip()
            ][: REFERENCES_MAX + 1],
        )

    def cost(self, in_force: RulesInForce, catalogue: CatalogueInForce | None) -> FormCost:
        """What this run would cost: the catalogue's figure for the model where it gives one,
        else the built-in one credit an image."""
        catalogue = catalogue or CatalogueInForce()
        count_field: str | None = "num_images"
        count_input: str | None = "num_images"
        if not in_force.builtin_form:
            count_field = next(
                (n for n in IMAGE_COUNT_FIELDS if n in in_force.rules.properties), None
            )
            count_input = schema_form.dom_id(count_field) if count_field else None
        count = 1
        if count_field is not None:
            typed = self.values.get(count_field) or in_force.rules.keyword(count_field, "default")
            count = _whole_number(str(typed or 1), maximum=10**6) or 1
        per_image = catalogue.credits_per_image(self.model)
        per_job = catalogue.credits_per_job(self.model)
        return FormCost(per_image, per_job, count_input, per_job + per_image * count)

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

    def reference_ids(self) -> list[int]:
        """The references picked, as image ids; a hand-edited value is a field error."""
        ids = [_whole_number(text, maximum=ROW_ID_MAX) for text in self.references]
        if any(image_id is None or image_id < 1 for image_id in ids):
            raise InvalidParameters({REFERENCES_FIELD: "must be image numbers"})
        if len(ids) > REFERENCES_MAX:
            raise InvalidParameters({REFERENCES_FIELD: f"at most {REFERENCES_MAX} images"})
        return [image_id for image_id in ids if image_id is not None]

    def to_run(self, in_force: RulesInForce) -> RunParams:
        """The run this form asks for under the rules in force: Seedream's record from its
        hand-made form, or another model's values typed by its schema. On failure, fills
        `errors` (every wrong field at once) and raises InvalidParameters."""
        errors: dict[str, str] = {}
        try:
            references = len(self.reference_ids())
        except InvalidParameters as invalid:
            errors.update(invalid.field_errors)
            references = 0
        if in_force.builtin_form:
            return self.to_params(in_force.rules, references=references, errors=errors)
        fields = schema_form.form_fields(in_force.rules, in_force.image_input)
        values, typing_errors = schema_form.typed_values(fields, self.values)
        errors.update(typing_errors)
        if not self.model_id_is_valid():
            errors["model"] = "must be a PixelDojo model id, like seedream-4"
        params = ModelParams(values)
        try:
            check_run(params, in_force.rules, references=references)
        except InvalidParameters as invalid:
            errors = {**invalid.field_errors, **errors}
        if errors:
            self.errors = errors
            raise InvalidParameters(errors)
        return params

    def to_params(
        self,
        rules: ModelRules | None = None,
        *,
        references: int = 0,
        errors: dict[str, str] | None = None,
    ) -> GenerationParams:
        """The parameters, checked against `rules` when given (submitting checks them
        anyway); on failure, fills `errors` and raises InvalidParameters."""
        parsed: dict[str, Any] = {"prompt": self.values.get("prompt", "")}
        errors = dict(errors or {})
        image_size = (
            self.values.get("image_size")
            or (default_size(rules) if rules is not None else None)
            or DEFAULT_IMAGE_SIZE
        )
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
            params = parse_parameters(parsed)
            if rules is not None:
                check_run(params, rules, references=references)
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
