"""How a model's live schema differs from the built-in rules, one change at a time.

Each change is a record a script can read (`field`, `keyword`, `live`, `builtin`) and a
line a person can (`text`): doctor prints the lines and answers the records with
`--json`, `GET /api/rules` lists the lines. Two enums with the same values in another
order are the same rule, and no change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from app.domain.rules import CHECKED_KEYWORDS, ModelRules, describe, number_text


@dataclass(frozen=True)
class Difference:
    """One way the live schema differs. `field` is None for the body's own keywords
    (`required`, `additionalProperties`); `live` or `builtin` is None where that side says
    nothing (a field only one of them has)."""

    field: str | None
    keyword: str
    live: Any
    builtin: Any
    text: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def differences(live: ModelRules, builtin: ModelRules) -> list[Difference]:
    """Every way the live rules differ from the built-in ones."""
    found: list[Difference] = []
    for name in sorted(set(live.properties) | set(builtin.properties)):
        ours, theirs = builtin.properties.get(name), live.properties.get(name)
        if theirs is None:
            never = "" if live.additional_properties is not False else ", so it is never sent"
            found.append(
                Difference(
                    name,
                    "properties",
                    None,
                    describe(ours or {}),
                    f"{name}: not in the live schema{never}",
                )
            )
            continue
        if ours is None:
            shown = describe(theirs)
            found.append(
                Difference(
                    name, "properties", shown, None, f"{name}: only in the live schema ({shown})"
                )
            )
            continue
        for keyword in CHECKED_KEYWORDS:
            change = _keyword_change(name, keyword, theirs.get(keyword), ours.get(keyword))
            if change is not None:
                found.append(change)
    if live.required is not None and live.required != builtin.required_fields:
        now, before = sorted(live.required), sorted(builtin.required_fields)
        found.append(
            Difference(
                None,
                "required",
                now,
                before,
                f"required: {', '.join(now) or 'nothing'} "
                f"(built-in: {', '.join(before) or 'nothing'})",
            )
        )
    if (
        live.additional_properties is not None
        and live.additional_properties != builtin.additional_properties
    ):
        found.append(
            Difference(
                None,
                "additionalProperties",
                live.additional_properties,
                builtin.additional_properties,
                f"additionalProperties: {str(live.additional_properties).lower()} (built-in: "
                f"{str(builtin.additional_properties).lower()})",
            )
        )
    return found


def _keyword_change(name: str, keyword: str, live: Any, built: Any) -> Difference | None:
    if live is None or live == built:
        return None
    if keyword == "enum" and isinstance(live, list) and isinstance(built, list):
        missing = [value for value in built if value not in live]
        extra = [value for value in live if value not in built]
        if not missing and not extra:
            return None  # the same values in another order: the same rule
        parts = []
        if missing:
            parts.append("lacks " + ", ".join(map(str, missing)))
        if extra:
            parts.append("adds " + ", ".join(map(str, extra)))
        return Difference(name, keyword, live, built, f"{name}: enum {'; '.join(parts)}")
    if keyword == "type" and tuple(live) == tuple(built or ()):
        return None
    shown = "any" if keyword == "type" and not live else _shown(live)
    was = "none" if built is None else _shown(built)
    return Difference(
        name,
        keyword,
        list(live) if isinstance(live, tuple) else live,
        list(built) if isinstance(built, tuple) else built,
        f"{name}: {keyword} {shown} (built-in: {was})",
    )


def _shown(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "/".join(str(v) for v in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_text(value)
    return str(value)
