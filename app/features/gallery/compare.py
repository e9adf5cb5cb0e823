"""Comparing images side by side: which parameters differ, and which prompt words."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.core.errors import InvalidParameters, NotFoundError
from app.features.gallery import lookups
from app.features.gallery.listing import GalleryEntry
from app.storage.db.engine import Database
from app.storage.db.tables import Job

COMPARE_MAX = 12


@dataclass(frozen=True)
class CompareRow:
    name: str
    label: str
    values: list[str]
    differs: bool


def _size(entry: GalleryEntry) -> str:
    return f"{entry.width}×{entry.height}"


def _text(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_ROWS: tuple[tuple[str, str, Callable[[GalleryEntry, Job], object]], ...] = (
    ("prompt", "Prompt", lambda e, j: j.prompt),
    ("model", "Model", lambda e, j: j.model),
    (
        "references",
        "References",
        lambda e, j: ", ".join(f"#{image_id}" for image_id in j.reference_images or ()) or None,
    ),
    ("preset", "Preset", lambda e, j: j.preset),
    ("image_size", "image_size", lambda e, j: j.image_size),
    ("pixels", "Pixels", lambda e, j: _size(e)),
    ("seed", "seed", lambda e, j: j.seed if j.seed is not None else "random"),
    ("num_images", "num_images", lambda e, j: j.num_images),
    ("credit_cost", "Credits (job)", lambda e, j: j.credit_cost),
    ("created_at", "Created", lambda e, j: j.created_at.strftime("%Y-%m-%d %H:%M UTC")),
    ("upstream_job_id", "Upstream job", lambda e, j: j.upstream_job_id),
)


def compare_rows(entries: Sequence[GalleryEntry], jobs: dict[int, Job]) -> list[CompareRow]:
    rows = []
    for name, label, read in _ROWS:
        values = [_text(read(entry, jobs[entry.job_id])) for entry in entries]
        rows.append(CompareRow(name, label, values, differs=len(set(values)) > 1))
    return rows


def prompt_words(prompts: Sequence[str]) -> list[list[tuple[str, bool]]]:
    """Each prompt as (word, differs) pairs: a word differs if some other prompt lacks it."""
    word_sets = [set(prompt.lower().split()) for prompt in prompts]
    common = set.intersection(*word_sets) if word_sets else set()
    return [[(word, word.lower() not in common) for word in prompt.split()] for prompt in prompts]


def compare_entries(db: Database, ids: Sequence[int]) -> list[GalleryEntry]:
    """The images to compare, in the order asked: at least two, at most COMPARE_MAX."""
    unique = list(dict.fromkeys(ids))
    if len(unique) < 2:
        raise InvalidParameters({"ids": "pick at least two images"})
    if len(unique) > COMPARE_MAX:
        raise InvalidParameters({"ids": f"compare at most {COMPARE_MAX} images at once"})
    entries = lookups.get_entries(db, image_ids=unique)
    missing = sorted(set(unique) - {entry.image_id for entry in entries})
    if missing:
        raise NotFoundError(f"There is no image {', '.join(map(str, missing[:20]))}.")
    return entries
