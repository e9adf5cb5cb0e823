"""PixelDojo's model catalogue: which image models there are, and what each costs.

`GET /models` lists every model the upstream serves (60 to 140 of them) with its
modality and credit cost. The app reads it at start and every
`PLAYGROUND_SCHEMA_REFRESH_MINUTES`, like each model's schema (app/features/models/live_rules.py),
and keeps the last good copy in the database (`model_catalogues`), shared by every
worker and by the next start while PixelDojo cannot be reached. Nothing here is
hard-coded: the playground's model picker, `GET /api/models` and the cost estimate
shown before submitting all read what is in force.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import anyio
from sqlmodel import Session

from app.core.model_id import DEFAULT_MODEL
from app.domain.parameters import CREDITS_PER_IMAGE
from app.features.models.periodic_read import PeriodicRead
from app.storage.db.engine import Database
from app.storage.db.tables import ModelCatalogue as CatalogueRow
from app.storage.db.tables import utcnow
from app.storage.db.upsert import upsert
from app.upstream import MalformedResponse, PixelDojoClient, UpstreamError

log = logging.getLogger(__name__)

# How often a process looks at the shared row again (another worker may have read it).
RECHECK_SECONDS = 5.0
ERROR_MAX_CHARS = 300
# Cost types that charge once a job, whatever it makes; any other type (and none) is
# taken as per image, the larger estimate, so a budget is never under-reserved.
PER_JOB_COST_TYPES = frozenset(
    {"per_job", "per_request", "per_run", "per_generation", "fixed", "flat"}
)
# Modalities that are not still images (a model without one is listed: it may be).
NOT_IMAGE_MODALITIES = ("video", "audio", "text", "speech", "music", "3d")

Source = Literal["live", "last good copy", "none"]
# What a model the catalogue does not list (yet) is called.
KNOWN_NAMES = {DEFAULT_MODEL: "Seedream 4.5"}


class CatalogueUnreadable(ValueError):
    """The answer is not a model list this app can read."""


@dataclass(frozen=True)
class CatalogueModel:
    """One model of the catalogue, as the picker shows it."""

    api_id: str
    name: str
    description: str = ""
    modality: str | None = None
    # Credits a run costs (per image unless `per_job`); None: the catalogue does not say.
    credits: float | None = None
    cost_type: str | None = None

    @property
    def is_image(self) -> bool:
        """Whether it makes still images: its modality (or the output of `text-to-image`,
        `image-to-video`) says image, or says nothing that is not one."""
        made = (self.modality or "").lower()
        for separator in ("-to-", "_to_", " to "):
            made = made.rsplit(separator, 1)[-1]
        return "image" in made or not any(word in made for word in NOT_IMAGE_MODALITIES)

    @property
    def per_job(self) -> bool:
        return (self.cost_type or "").lower().replace("-", "_") in PER_JOB_COST_TYPES

    def estimate(self, num_images: int) -> float | None:
        """What a run of `num_images` images should cost, or None if unknown."""
        if self.credits is None:
            return None
        return self.credits if self.per_job else self.credits * num_images

    def cost_label(self) -> str:
        """`1 credit per image`, `4 credits per job`, or `cost unknown`."""
        if self.credits is None:
            return "cost unknown"
        unit = "per job" if self.per_job else "per image"
        return f"{self.credits:g} credit{'s' if self.credits != 1 else ''} {unit}"

    def to_json(self) -> dict[str, Any]:
        return {
            "apiId": self.api_id,
            "name": self.name,
            "description": self.description,
            "modality": self.modality,
            "creditCost": None
            if self.credits is None
            else {"amount": self.credits, "type": self.cost_type},
        }


def parse_catalogue(document: Any) -> list[CatalogueModel]:
    """The models in a `GET /models` answer: `{"models": [...]}`, `{"data": [...]}` or a bare
    list; each model's id as `apiId`, `api_id` or `id`. Entries without an id are skipped."""
    entries: Any = document
    if isinstance(document, Mapping):
        entries = next(
            (document[key] for key in ("models", "data", "items") if key in document), None
        )
    if not isinstance(entries, list):
        raise CatalogueUnreadable("the answer holds no list of models")
    models: dict[str, CatalogueModel] = {}
    for entry in entries:
        model = _model(entry)
        if model is not None:
            models.setdefault(model.api_id, model)
    return list(models.values())


def _model(entry: Any) -> CatalogueModel | None:
    if not isinstance(entry, Mapping):
        return None
    api_id = next(
        (entry[key] for key in ("apiId", "api_id", "id") if isinstance(entry.get(key), str)), None
    )
    if not api_id or len(api_id) > 100:
        return None
    name = entry.get("name")
    description = entry.get("description")
    modality = entry.get("modality") or entry.get("type")
    credits, cost_type = _cost(entry.get("creditCost", entry.get("credit_cost")))
    return CatalogueModel(
        api_id=api_id,
        name=name if isinstance(name, str) and name.strip() else api_id,
        description=description if isinstance(description, str) else "",
        modality=modality if isinstance(modality, str) else None,
        credits=credits,
        cost_type=cost_type,
    )


def _cost(value: Any) -> tuple[float | None, str | None]:
    if _is_number(value):
        return float(value), None
    if isinstance(value, Mapping):
        amount = next(
            (value[key] for key in ("amount", "default") if _is_number(value.get(key))), None
        )
        kind = value.get("type")
        return (float(amount) if amount is not None else None), (
            kind if isinstance(kind, str) else None
        )
    return None, None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class CatalogueInForce:
    """The catalogue the app shows, and where it came from."""

    models: tuple[CatalogueModel, ...] = ()
    source: Source = "none"
    fetched_at: datetime | None = None
    problem: str | None = None

    def get(self, api_id: str) -> CatalogueModel | None:
        return next((model for model in self.models if model.api_id == api_id), None)

    def lists(self, api_id: str) -> bool | None:
        """Whether PixelDojo lists the model (live or in the last good copy); None while no
        catalogue was ever read, when nobody can tell."""
        if self.source == "none":
            return None
        return self.get(api_id) is not None

    def image_models(self, first: Iterable[str] = ()) -> list[CatalogueModel]:
        """The image models, `first` ones first (in that order, listed or not), then by name."""
        leading = [
            self.get(api_id) or CatalogueModel(api_id=api_id, name=KNOWN_NAMES.get(api_id, api_id))
            for api_id in dict.fromkeys(first)
        ]
        named = {model.api_id for model in leading}
        rest = sorted(
            (m for m in self.models if m.is_image and m.api_id not in named),
            key=lambda m: (m.name.lower(), m.api_id),
        )
        return leading + rest

    def estimate(self, api_id: str, num_images: int) -> float:
        """The credits a run should cost: the catalogue's figure, else the built-in one."""
        model = self.get(api_id)
        estimate = model.estimate(num_images) if model is not None else None
        return estimate if estimate is not None else float(num_images * CREDITS_PER_IMAGE)

    def credits_per_job(self, api_id: str) -> float:
        """A cost charged once a job (0: the cost is per image)."""
        model = self.get(api_id)
        return model.credits if model is not None and model.credits and model.per_job else 0.0

    def credits_per_image(self, api_id: str) -> float:
        """What the form multiplies the image count by (a per-job cost is shown whole)."""
        model = self.get(api_id)
        if model is None or model.credits is None:
            return float(CREDITS_PER_IMAGE)
        return 0.0 if model.per_job else model.credits


# --- What the database keeps -------------------------------------------------------------


def load_row(db: Database, *, upstream: str) -> CatalogueRow | None:
    with db.read() as session:
        return session.get(CatalogueRow, upstream)


def record_read(
    db: Database, *, upstream: str, models: list[CatalogueModel] | None, error: str | None
) -> None:
    """Keep how a read went; a failed read keeps the copy read before."""
    now = utcnow()

    def keep(session: Session) -> None:
        # Two workers may both insert the first row (app/storage/db/upsert.py).
        row = session.get(CatalogueRow, upstream) or CatalogueRow(upstream=upstream, checked_at=now)
        row.checked_at = now
        row.error = error[:ERROR_MAX_CHARS] if error else None
        if models is not None:
            row.models = [model.to_json() for model in models]
            row.fetched_at = now
        session.add(row)

    upsert(db, keep)


def catalogue_from_row(row: CatalogueRow | None) -> CatalogueInForce:
    if row is None or row.models is None:
        return CatalogueInForce(problem=row.error if row is not None else None)
    try:
        models = tuple(parse_catalogue(row.models))
    except CatalogueUnreadable:
        return CatalogueInForce(problem=row.error)
    return CatalogueInForce(
        models=models,
        source="live" if row.error is None else "last good copy",
        fetched_at=row.fetched_at,
        problem=row.error,
    )


async def read_catalogue(client: PixelDojoClient) -> tuple[list[CatalogueModel] | None, str | None]:
    """The upstream's models, or why they could not be had."""
    try:
        return parse_catalogue(await client.list_models()), None
    except CatalogueUnreadable as exc:
        return None, f"the model list could not be read: {exc}"
    except MalformedResponse as exc:
        return None, f"the model list could not be read: {exc.message}"
    except UpstreamError as exc:
        return None, exc.message


class ModelCatalogue(PeriodicRead):
    """Keeps the catalogue current for every page, like LiveRules keeps the schemas."""

    task_name = "model-catalogue"

    def __init__(
        self, *, db: Database, client: PixelDojoClient, upstream: str, minutes: float
    ) -> None:
        super().__init__(interval_seconds=minutes * 60)
        self.db = db
        self.client = client
        self.upstream = upstream
        self._cached: tuple[float, CatalogueInForce] | None = None
        self._lock = asyncio.Lock()

    def in_force(self) -> CatalogueInForce:
        """The catalogue as last read by any worker; blocking, cached briefly."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < RECHECK_SECONDS:
            return self._cached[1]
        found = catalogue_from_row(load_row(self.db, upstream=self.upstream))
        self._cached = (now, found)
        return found

    async def refresh(self) -> CatalogueInForce:
        async with self._lock:
            models, error = await read_catalogue(self.client)
            if error:
                log.warning("the model catalogue could not be read: %s", error)
            await anyio.to_thread.run_sync(
                lambda: record_read(self.db, upstream=self.upstream, models=models, error=error)
            )
            self._cached = None
        return await anyio.to_thread.run_sync(self.in_force)

    async def read_due(self, *, at_start: bool) -> None:
        try:
            if at_start or await anyio.to_thread.run_sync(self._due):
                await self.refresh()
        except Exception:
            log.exception("reading the model catalogue failed; the copy in force stays")

    def _due(self) -> bool:
        row = load_row(self.db, upstream=self.upstream)
        return self.is_stale(row.checked_at if row is not None else None)
