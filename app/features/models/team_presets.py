"""Presets the team saves for itself: validated like a run, shown beside the built-in eight.

The parameters are checked against the same rules in force as a submission, so a
saved preset can be run, and stored as the exact upstream body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from app.core.errors import Conflict, InvalidParameters, NotFoundError
from app.core.model_id import DEFAULT_MODEL
from app.core.text import line_problem
from app.domain.parameters import GenerationParams
from app.domain.rules import ModelRules, builtin_rules
from app.domain.runs import validate_parameters
from app.features.people.permissions import Actor
from app.storage.db.engine import Database
from app.storage.db.tables import TeamPreset

NAME_MAX_CHARS = 80
DESCRIPTION_MAX_CHARS = 300


def clean_labels(*, name: str, description: str) -> tuple[str, str, dict[str, str]]:
    """The name (inner whitespace collapsed) and description, and what is wrong with them."""
    errors: dict[str, str] = {}
    name = " ".join(name.split())
    description = description.strip()
    if problem := line_problem(name):
        errors["name"] = problem
    elif not name:
        errors["name"] = "must not be empty"
    elif len(name) > NAME_MAX_CHARS:
        errors["name"] = f"must be at most {NAME_MAX_CHARS} characters"
    if problem := line_problem(description):
        errors["description"] = problem
    elif len(description) > DESCRIPTION_MAX_CHARS:
        errors["description"] = f"must be at most {DESCRIPTION_MAX_CHARS} characters"
    return name, description, errors


def check_preset(
    *,
    name: str,
    description: str,
    parameters: Mapping[str, Any],
    rules: ModelRules | None = None,
) -> tuple[str, str, GenerationParams]:
    """The cleaned name, description and run parameters; every problem is named at once."""
    name, description, errors = clean_labels(name=name, description=description)
    params: GenerationParams | None = None
    try:
        params = validate_parameters(parameters, rules or builtin_rules(DEFAULT_MODEL))
    except InvalidParameters as exc:
        errors.update(exc.field_errors)
    if errors or params is None:
        raise InvalidParameters(errors)
    return name, description, params


def create_preset(
    db: Database,
    *,
    name: str,
    description: str,
    parameters: Mapping[str, Any],
    created_by: int | None = None,
    rules: ModelRules | None = None,
) -> TeamPreset:
    name, description, params = check_preset(
        name=name, description=description, parameters=parameters, rules=rules
    )
    preset = TeamPreset(
        name=name,
        name_key=name.casefold(),
        description=description,
        parameters=params.upstream_body(),
        created_by=created_by,
    )
    try:
        with db.write() as session:
            session.add(preset)
            session.flush()
    except sa.exc.IntegrityError:
        raise Conflict({"name": "a team preset with this name exists"}) from None
    return preset


def list_presets(db: Database) -> list[TeamPreset]:
    with db.read() as session:
        return list(session.exec(select(TeamPreset).order_by(col(TeamPreset.name_key))).all())


def get_preset(db: Database, *, preset_id: int) -> TeamPreset:
    with db.read() as session:
        preset = session.get(TeamPreset, preset_id)
    if preset is None:
        raise NotFoundError(f"There is no team preset {preset_id}.")
    return preset


def delete_preset(db: Database, *, preset_id: int, actor: Actor) -> None:
    """Delete a saved preset: only whoever saved it, or an admin, may."""
    actor.ensure_may_change(get_preset(db, preset_id=preset_id).created_by, what="this team preset")
    with db.write() as session:
        deleted = session.execute(sa.delete(TeamPreset).where(col(TeamPreset.id) == preset_id))
        if not deleted.rowcount:  # type: ignore[attr-defined]
            raise NotFoundError(f"There is no team preset {preset_id}.")


def preset_params(preset: TeamPreset) -> GenerationParams:
    return GenerationParams.from_body(preset.parameters)
