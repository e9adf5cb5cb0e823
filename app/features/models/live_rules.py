"""The rules in force for each model: PixelDojo's live schema over the built-in rules.

With a key (and in demo mode, against the emulator), the model's card and run schema
(`GET /models/{apiId}` and `/models/{apiId}/schema`) are read at start and every
`PLAYGROUND_SCHEMA_REFRESH_MINUTES`. The last good copy is kept in the database with
the time it was read, so every worker uses it, and so does the next start while
PixelDojo cannot be reached. What is in force, in order:

    live             the latest read worked: its schema over the built-in rules
    last good copy   the latest read failed: the copy read before, over the built-in
    built-in         no copy was ever read: app/domain/parameters.py's rules alone

Every path that submits asks `for_submission()` and checks the run against the
answer before any upstream call (app/features/jobs/submission.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import anyio
from sqlmodel import Session, col, select

from app.domain.rules import (
    BUILTIN_RULES,
    ImageInput,
    ModelRules,
    SchemaUnreadable,
    builtin_rules,
    effective,
    has_builtin_record,
    image_input,
)
from app.features.models.periodic_read import PeriodicRead
from app.storage.db.engine import Database
from app.storage.db.tables import ModelSchema, utcnow
from app.storage.db.upsert import upsert
from app.upstream import MalformedResponse, NotFound, PixelDojoClient, UpstreamError

log = logging.getLogger(__name__)

# The first read is waited for this long at start, so the first page shows it; a slow
# upstream does not hold the app up longer (the read goes on in the background).
# How often a process looks at the shared row again (another worker may have read it).
RECHECK_SECONDS = 5.0
# A model nobody asked about before is looked up at most this long before submitting.
ON_DEMAND_WAIT_SECONDS = 10.0
ERROR_MAX_CHARS = 300

Source = Literal["live", "last good copy", "built-in"]


@dataclass(frozen=True)
class RulesInForce:
    """The rules a model's runs are checked against, and where they came from."""

    model: str
    rules: ModelRules
    source: Source
    fetched_at: datetime | None = None
    # Why the latest read failed, if it did.
    problem: str | None = None
    # False when PixelDojo said it has no such model.
    model_found: bool | None = None
    # The live schema's rules alone (for listing how they differ from the built-in ones).
    live: ModelRules | None = None

    def label(self, now: datetime | None = None) -> str:
        """`rules: live, fetched 3 min ago`, `rules: built-in`, ..."""
        if self.source == "built-in" or self.fetched_at is None:
            return "rules: built-in"
        return f"rules: {self.source}, fetched {ago(self.fetched_at, now or utcnow())}"

    def differences(self) -> list[str]:
        if self.live is None or not has_builtin_record(self.model):
            return []
        return self.live.differences(builtin_rules(self.model))

    @property
    def builtin_form(self) -> bool:
        """Whether runs are the Seedream record and its hand-made form: Seedream's own, and
        any model whose schema was never read. Other models' forms come from their schema."""
        return has_builtin_record(self.model) or self.live is None

    @property
    def image_input(self) -> ImageInput | None:
        """Where the model takes reference images, if it does."""
        return image_input(self.rules)


def ago(moment: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} days ago"


# --- What the database keeps -----------------------------------------------------------


def load_row(db: Database, *, upstream: str, model: str) -> ModelSchema | None:
    with db.read() as session:
        return session.get(ModelSchema, (upstream, model))


def known_models(db: Database, *, upstream: str) -> list[str]:
    with db.read() as session:
        return list(
            session.exec(select(ModelSchema.model).where(col(ModelSchema.upstream) == upstream))
        )


def record_read(
    db: Database,
    *,
    upstream: str,
    model: str,
    schema: dict[str, Any] | None,
    card: dict[str, Any] | None,
    error: str | None,
    model_found: bool | None,
) -> None:
    """Keep how a read went; a schema read keeps its copy, a failed one keeps the old copy."""
    now = utcnow()

    def keep(session: Session) -> None:
        # Two workers starting together may both insert the first row (app/storage/db/upsert.py).
        row = session.get(ModelSchema, (upstream, model))
        if row is None:
            row = ModelSchema(upstream=upstream, model=model, checked_at=now)
        row.checked_at = now
        row.error = error[:ERROR_MAX_CHARS] if error else None
        if model_found is not None:
            row.model_found = model_found
        if card is not None:
            row.model_card = card
        if schema is not None:
            row.json_schema = schema
            row.fetched_at = now
        session.add(row)

    upsert(db, keep)


def rules_from_row(row: ModelSchema | None, model: str) -> RulesInForce:
    builtin = builtin_rules(model)
    live: ModelRules | None = None
    if row is not None and row.json_schema is not None:
        with contextlib.suppress(SchemaUnreadable):
            live = ModelRules.from_json_schema(row.json_schema, model=model)
    if row is None or live is None:
        return RulesInForce(
            model=model,
            rules=builtin,
            source="built-in",
            problem=row.error if row is not None else None,
            model_found=row.model_found if row is not None else None,
        )
    return RulesInForce(
        model=model,
        # A model without a built-in record follows its schema alone (no Seedream field
        # creeps into another model's form).
        rules=effective(BUILTIN_RULES.get(model), live),
        source="live" if row.error is None else "last good copy",
        fetched_at=row.fetched_at,
        problem=row.error,
        model_found=row.model_found,
        live=live,
    )


# --- Reading PixelDojo's schema --------------------------------------------------------


@dataclass(frozen=True)
class SchemaRead:
    """One read of a model's card and schema."""

    card: dict[str, Any] | None
    schema: dict[str, Any] | None
    live: ModelRules | None
    error: str | None
    model_found: bool | None


async def read_schema(client: PixelDojoClient, model: str) -> SchemaRead:
    """The model's card and run schema, or why they could not be had."""
    card: dict[str, Any] | None = None
    try:
        card = await client.model(model)
    except NotFound:
        return SchemaRead(None, None, None, f"PixelDojo has no model {model!r}", False)
    except UpstreamError as exc:
        # The card is a nicety; the schema decides. Carry on and try it.
        log.info("could not read the card of %s: %s", model, exc.message)
    try:
        document = await client.model_schema(model)
        live = ModelRules.from_json_schema(document, model=model)
    except NotFound:
        return SchemaRead(card, None, None, f"PixelDojo publishes no schema for {model!r}", True)
    except (UpstreamError, SchemaUnreadable) as exc:
        reason = exc.message if isinstance(exc, UpstreamError) else str(exc)
        if isinstance(exc, MalformedResponse | SchemaUnreadable):
            reason = f"the schema could not be read: {reason}"
        return SchemaRead(card, None, None, reason, True if card is not None else None)
    return SchemaRead(card, dict(document), live, None, True)


class LiveRules(PeriodicRead):
    """Keeps each model's rules in force current, for every page and submission."""

    task_name = "live-schema"

    def __init__(
        self, *, db: Database, client: PixelDojoClient, upstream: str, model: str, minutes: float
    ) -> None:
        super().__init__(interval_seconds=minutes * 60)
        self.db = db
        self.client = client
        self.upstream = upstream
        self.model = model
        self._cache: dict[str, tuple[float, RulesInForce]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._asked: set[str] = set()

    # --- Reading what is in force -------------------------------------------------

    def in_force(self, model: str | None = None) -> RulesInForce:
        """The rules for `model` (default: the configured one); blocking, cached briefly."""
        model = model or self.model
        now = time.monotonic()
        cached = self._cache.get(model)
        if cached is not None and now - cached[0] < RECHECK_SECONDS:
            return cached[1]
        found = rules_from_row(load_row(self.db, upstream=self.upstream, model=model), model)
        self._cache[model] = (now, found)
        return found

    async def for_submission(self, model: str) -> RulesInForce:
        """The rules to check a run against; a model never looked up is looked up first."""
        if model not in self._asked and model != self.model:
            row = await anyio.to_thread.run_sync(
                lambda: load_row(self.db, upstream=self.upstream, model=model)
            )
            if row is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ON_DEMAND_WAIT_SECONDS):
                        await self.refresh(model)
        return await anyio.to_thread.run_sync(self.in_force, model)

    # --- Refreshing ---------------------------------------------------------------

    async def refresh(self, model: str | None = None) -> RulesInForce:
        """Read the model's schema now, keep it (or the failure), and answer what is in force."""
        model = model or self.model
        self._asked.add(model)
        async with self._locks.setdefault(model, asyncio.Lock()):
            read = await read_schema(self.client, model)
            if read.error:
                log.warning("the live schema of %s could not be read: %s", model, read.error)
            await anyio.to_thread.run_sync(
                lambda: record_read(
                    self.db,
                    upstream=self.upstream,
                    model=model,
                    schema=read.schema,
                    card=read.card,
                    error=read.error,
                    model_found=read.model_found,
                )
            )
            self._cache.pop(model, None)
        return await anyio.to_thread.run_sync(self.in_force, model)

    async def read_due(self, *, at_start: bool) -> None:
        try:
            models = await anyio.to_thread.run_sync(
                lambda: known_models(self.db, upstream=self.upstream)
            )
            for model in dict.fromkeys([self.model, *models]):
                if at_start or await anyio.to_thread.run_sync(self._due, model):
                    await self.refresh(model)
        except Exception:
            log.exception("reading the live schema failed; the rules in force stay as they were")

    def _due(self, model: str) -> bool:
        """Whether a model's schema needs reading (another worker may have just read it)."""
        row = load_row(self.db, upstream=self.upstream, model=model)
        return self.is_stale(row.checked_at if row is not None else None)
