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

Which models are read at all: a schema is stored, and read again on the timer, only for
the configured model and the models the catalogue lists (app/features/models/catalogue.py); a name
the
catalogue does not list is never sent upstream. Pages only show what is stored: a GET
reads nothing upstream and writes nothing, so a link or a cross-site `<img>` cannot make
the app store a name and read it with the team's key at every start. A model never read
is read when a page asks by POST (the form does on its own, once shown) or when a run of
it is submitted. A stored model the catalogue stops listing is no longer read, and is
forgotten once it has been unlisted for `FORGET_UNLISTED_AFTER`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import anyio
import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.domain.rule_changes import Difference, differences
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
from app.features.models.catalogue import CatalogueInForce
from app.features.models.periodic_read import PeriodicRead
from app.storage.db.engine import Database
from app.storage.db.tables import ModelSchema, utcnow
from app.storage.db.upsert import upsert
from app.upstream import MalformedResponse, NotFound, PixelDojoClient, UpstreamError

log = logging.getLogger(__name__)

# How often a process looks at the shared row again (another worker may have read it).
RECHECK_SECONDS = 5.0
# Past this many models in a process's cache, the entries older than RECHECK_SECONDS go
# (the names asked for are anyone's to choose).
CACHE_MAX_MODELS = 256
# A model nobody asked about before is looked up at most this long before submitting.
ON_DEMAND_WAIT_SECONDS = 10.0
ERROR_MAX_CHARS = 300
# A stored model the catalogue has stopped listing is kept this long (it may come back,
# its last good copy with it), then forgotten.
FORGET_UNLISTED_AFTER = timedelta(days=7)

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
    # Whether PixelDojo was ever asked (a stored read, or one just made), whatever it said.
    ever_read: bool = False
    # Never read, and the app may read it (the configured model, or one the catalogue
    # lists): a page showing it asks for it by POST.
    awaiting_read: bool = False

    def label(self, now: datetime | None = None) -> str:
        """`rules: live, fetched 3 min ago`, `rules: built-in`, ..."""
        if self.awaiting_read:
            return "rules: built-in until PixelDojo's are read"
        if self.source == "built-in" or self.fetched_at is None:
            return "rules: built-in"
        return f"rules: {self.source}, fetched {ago(self.fetched_at, now or utcnow())}"

    def differences(self) -> list[Difference]:
        if self.live is None or not has_builtin_record(self.model):
            return []
        return differences(self.live, builtin_rules(self.model))

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


def keeps(model: str, *, default: str, catalogue: CatalogueInForce) -> bool:
    """Whether `model`'s schema may be stored and read again on the timer: the configured
    model, or one the catalogue lists. While no catalogue was ever read, the configured one
    alone (any other name could be anything anyone typed)."""
    return model == default or catalogue.lists(model) is True


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


def forget_unlisted(
    db: Database, *, upstream: str, listed: Collection[str], keep: str, checked_before: datetime
) -> list[str]:
    """Delete the stored reads of models the catalogue does not list, last read before
    `checked_before`; answer their names. A stored model is read again only while it is
    listed, so its `checked_at` is when it was last listed, give or take one refresh: no
    column of its own is needed to tell how long it has been gone."""
    with db.write() as session:
        old = session.exec(
            select(ModelSchema.model).where(
                col(ModelSchema.upstream) == upstream,
                col(ModelSchema.model) != keep,
                col(ModelSchema.checked_at) < checked_before,
            )
        ).all()
        gone = [model for model in old if model not in listed]
        if gone:
            # A statement, not ORM deletes: another process forgetting the same rows at the
            # same moment is no error.
            session.execute(
                sa.delete(ModelSchema).where(
                    col(ModelSchema.upstream) == upstream, col(ModelSchema.model).in_(gone)
                )
            )
    return gone


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
            ever_read=row is not None,
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
        ever_read=True,
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
        self,
        *,
        db: Database,
        client: PixelDojoClient,
        upstream: str,
        model: str,
        minutes: float,
        catalogue: Callable[[], CatalogueInForce],
    ) -> None:
        super().__init__(interval_seconds=minutes * 60)
        self.db = db
        self.client = client
        self.upstream = upstream
        self.model = model
        # The catalogue in force (blocking, cached briefly): which models may be read at all.
        self._catalogue = catalogue
        self._cache: dict[str, tuple[float, RulesInForce]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # --- Reading what is in force -------------------------------------------------

    def in_force(self, model: str | None = None) -> RulesInForce:
        """The rules for `model` (default: the configured one); blocking, cached briefly.
        Reads only what is stored: nothing upstream, nothing written."""
        model = model or self.model
        now = time.monotonic()
        cached = self._cache.get(model)
        if cached is not None and now - cached[0] < RECHECK_SECONDS:
            return cached[1]
        row = load_row(self.db, upstream=self.upstream, model=model)
        found = rules_from_row(row, model)
        if row is None and keeps(model, default=self.model, catalogue=self._catalogue()):
            found = replace(found, awaiting_read=True)
        self._remember(model, found, now)
        return found

    async def for_submission(self, model: str) -> RulesInForce:
        """The rules to check a run against; a model never read is read first (and kept only
        if `keeps` says so). The configured model is the timer's to read."""
        found = await anyio.to_thread.run_sync(self.in_force, model)
        if found.ever_read or model == self.model:
            return found
        return await self.read_on_request(model)

    # --- Refreshing ---------------------------------------------------------------

    async def read_on_request(self, model: str) -> RulesInForce:
        """`refresh`, for someone waiting: a slow upstream leaves the rules as they were."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ON_DEMAND_WAIT_SECONDS):
                return await self.refresh(model)
        return await anyio.to_thread.run_sync(self.in_force, model)

    async def refresh(self, model: str | None = None) -> RulesInForce:
        """Read the model's schema now and answer what is in force. Kept (and read again on
        the timer) for a model `keeps` allows; a model the catalogue does not list is not
        read at all; another, while no catalogue was ever read, is read for the run at hand
        and kept by this process for a few seconds only."""
        model = model or self.model
        catalogue = await anyio.to_thread.run_sync(self._catalogue)
        if not keeps(model, default=self.model, catalogue=catalogue):
            if catalogue.lists(model) is False:
                return await anyio.to_thread.run_sync(self.in_force, model)
            read = await read_schema(self.client, model)
            found = rules_from_row(_unkept_row(self.upstream, model, read), model)
            self._remember(model, found, time.monotonic())
            return found
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
            catalogue = await anyio.to_thread.run_sync(self._catalogue)
            if catalogue.source != "none":
                await anyio.to_thread.run_sync(self._forget_unlisted, catalogue)
            models = await anyio.to_thread.run_sync(
                lambda: known_models(self.db, upstream=self.upstream)
            )
            for model in dict.fromkeys([self.model, *models]):
                if not keeps(model, default=self.model, catalogue=catalogue):
                    continue
                if at_start or await anyio.to_thread.run_sync(self._due, model):
                    await self.refresh(model)
        except Exception:
            log.exception("reading the live schema failed; the rules in force stay as they were")

    def _forget_unlisted(self, catalogue: CatalogueInForce) -> None:
        gone = forget_unlisted(
            self.db,
            upstream=self.upstream,
            listed={model.api_id for model in catalogue.models},
            keep=self.model,
            checked_before=utcnow() - FORGET_UNLISTED_AFTER,
        )
        if gone:
            log.info("forgot the schemas of models PixelDojo no longer lists: %s", ", ".join(gone))
        for model in gone:
            self._cache.pop(model, None)

    def _due(self, model: str) -> bool:
        """Whether a model's schema needs reading (another worker may have just read it)."""
        row = load_row(self.db, upstream=self.upstream, model=model)
        return self.is_stale(row.checked_at if row is not None else None)

    def _remember(self, model: str, found: RulesInForce, now: float) -> None:
        if len(self._cache) >= CACHE_MAX_MODELS:
            for name, (at, _) in list(self._cache.items()):
                if now - at >= RECHECK_SECONDS:
                    del self._cache[name]
        self._cache[model] = (now, found)


def _unkept_row(upstream: str, model: str, read: SchemaRead) -> ModelSchema:
    """A read as a row would keep it, for the rules it gives; never stored."""
    now = utcnow()
    return ModelSchema(
        upstream=upstream,
        model=model,
        json_schema=read.schema,
        model_card=read.card,
        fetched_at=now if read.schema is not None else None,
        checked_at=now,
        error=read.error,
        model_found=read.model_found,
    )
