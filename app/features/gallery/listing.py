"""Finding images: the gallery's listing, search and filters.

The gallery lists images newest job first (then by their place in the job),
paged by a keyset cursor `(job id, image index)`, never OFFSET, so page 2,000
costs what page 1 does. Listing queries select named columns of `images` and
`jobs` only: never the thumbnails, never the blob store.

Which index walks the rows is chosen by the filters:
- no job-level filter: `images` in `(job_id, index)` order (its unique index),
  or `(favourite, job_id, index)` for favourites;
- a job-level filter (preset, model, size, status, dates): `jobs` through the
  composite index `(filter, id)`, then each job's images;
- a prompt search on SQLite: the FTS5 index hands over matching job ids newest
  first, a chunk at a time (`app.storage.db.sqlite.matching_job_ids`), and each chunk is
  joined as above. On PostgreSQL the prompt's `tsvector` is matched in the same
  query, one condition per term (`app.storage.db.postgres.prompt_term_matches`),
  planned for its words each time: knowing them, the planner walks the jobs newest first
  or reads the matches through the GIN index, whichever the statistics say costs less.
  Both tokenize alike, so they find the same jobs. (LIKE, substring matching, is only a
  reference for tests.)
Either way the rows come out already in page order and the database stops after
`limit + 1` of them; `tests/test_gallery_plans.py` checks the plans.

`user` narrows to one person's work (jobs.user_id, set when sign-in is on).

It stays one module, long as it is: the filters, the statement cache and both databases'
searches are one query builder, and a change to any of them is a change to the plans the
tests check. Lookups by id live in `app.features.gallery.lookups`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import anyio
import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.storage.db import postgres, sqlite
from app.storage.db.engine import Database
from app.storage.db.tables import (
    IMAGE_RECORD,
    ROW_ID_MAX,
    CollectionImage,
    Image,
    Job,
    JobStatus,
    User,
)

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 48
MAX_PAGE_SIZE = 100
# A prompt search reads matching job ids in chunks that grow by this factor, so
# a search that other filters make sparse needs few round trips.
_FTS_FIRST_CHUNK = 64
_FTS_CHUNK_GROWTH = 4
_FTS_MAX_CHUNK = 16_384

# images.index is a 32-bit INTEGER.
IMAGE_INDEX_MAX = 2**31 - 1

_TERM = re.compile(r'"([^"]*)"|(\S+)')
# Control characters (C0, DEL, C1). Both databases' tokenizers part words at them, as at any
# character that is not a letter or digit; left in a term, NUL ends the string FTS5 parses
# ("unterminated string") and PostgreSQL refuses text holding it, so they become spaces first.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class SearchTerm:
    text: str
    phrase: bool


def parse_search(text: str | None) -> list[SearchTerm]:
    """Words and "quoted phrases"; terms without a letter or digit are dropped. Any text is
    a search: nothing typed is an error."""
    if not text:
        return []
    terms = []
    for phrase, word in _TERM.findall(_CONTROL.sub(" ", text)):
        value = (phrase or word).strip().strip('"')
        if value and any(ch.isalnum() for ch in value):
            terms.append(SearchTerm(value, phrase=bool(phrase)))
    return terms


@dataclass(frozen=True)
class GalleryFilters:
    """Everything a gallery view can be narrowed by; each field is a URL query parameter."""

    q: str | None = None
    preset: str | None = None
    model: str | None = None
    image_size: str | None = None
    status: JobStatus | None = None
    since: date | None = None
    until: date | None = None
    favourite: bool = False
    collection: int | None = None
    user: int | None = None

    @property
    def terms(self) -> list[SearchTerm]:
        return parse_search(self.q)

    @property
    def has_job_conditions(self) -> bool:
        return bool(
            self.preset
            or self.model
            or self.image_size
            or self.status
            or self.since
            or self.until
            or self.user
            or self.terms
        )

    @property
    def is_empty(self) -> bool:
        return self == GalleryFilters()

    def query_items(self) -> list[tuple[str, str]]:
        """The filters as URL query parameters, empty ones left out."""
        items: list[tuple[str, str]] = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None or value is False or value == "":
                continue
            if value is True:
                value = "1"
            elif isinstance(value, date):
                value = value.isoformat()
            items.append((field.name, str(value)))
        return items

    def without(self, name: str) -> GalleryFilters:
        return replace(self, **{name: getattr(GalleryFilters(), name)})


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a page ends: the last image's job id and index. Opaque to clients."""

    job_id: int
    index: int

    def __str__(self) -> str:
        return f"{self.job_id}.{self.index}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        job_id, sep, index = text.partition(".")
        if not (sep and f"{job_id}{index}".isascii() and job_id.isdigit() and index.isdigit()):
            raise ValueError("is not a cursor this gallery handed out")
        cursor = cls(int(job_id), int(index))
        # Numbers no row can hold (PostgreSQL would refuse to compare them with its columns).
        if cursor.job_id > ROW_ID_MAX or cursor.index > IMAGE_INDEX_MAX:
            raise ValueError("is not a cursor this gallery handed out")
        return cursor


@dataclass(frozen=True)
class JobWithImages:
    """A job and its images, as the gallery's job view and a job's own page show it."""

    job: Job
    images: list[Image]
    # Who made it; None when made without sign-in.
    author: str | None = None


# Not frozen: a page builds a hundred of these, and a frozen dataclass's __init__ sets each
# of its 22 fields through object.__setattr__, eight times the cost of plain slots (a
# tenth of a gallery listing's time). Nothing changes one after it is read.
@dataclass(slots=True)
class GalleryEntry:
    """One image in a listing with the parameters of the job that made it."""

    image_id: int
    job_id: int
    index: int
    width: int
    height: int
    content_type: str
    byte_size: int
    sha256: str
    favourite: bool
    deleted_at: datetime | None
    model: str
    preset: str | None
    prompt: str
    image_size: str
    custom_width: int | None
    custom_height: int | None
    seed: int | None
    num_images: int
    status: JobStatus
    created_at: datetime
    credit_cost: float | None
    user_id: int | None

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.job_id, self.index)


@dataclass(frozen=True)
class GalleryPage:
    items: list[GalleryEntry]
    next_cursor: Cursor | None


def _entry_column(name: str) -> Any:
    """Where a `GalleryEntry` field is read: the image's id, its job id and the image record
    from `images`, everything else from `jobs`."""
    if name == "image_id":
        return col(Image.id).label(name)
    table = Image if name == "job_id" or name in IMAGE_RECORD else Job
    return col(getattr(table, name)).label(name)


# In the dataclass's field order, so a row builds an entry positionally (`entry_of`).
ENTRY_COLUMNS: tuple[Any, ...] = tuple(_entry_column(field.name) for field in fields(GalleryEntry))


def entry_of(row: sa.Row[Any]) -> GalleryEntry:
    # Positional: the columns are selected in the dataclass's field order.
    values: tuple[Any, ...] = tuple(row)
    return GalleryEntry(*values)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class _Shape:
    """Which conditions a listing has, not their values: one prebuilt statement per shape.

    Building and keying a SQLAlchemy statement cost as much as running it on a page of
    rows; the values go in as bound parameters (`_params`)."""

    preset: bool = False
    model: bool = False
    image_size: bool = False
    status: bool = False
    user: bool = False
    since: bool = False
    until: bool = False
    like_terms: int = 0  # the reference search (tests): how many LIKE conditions
    # PostgreSQL's search: one tsvector condition per term, whether each is a phrase.
    text_terms: tuple[bool, ...] = ()
    favourite: bool = False
    collection: bool = False
    cursor: bool = False
    trash: bool = False
    trashed_after: bool = False  # the trash: only what was trashed after a moment
    job_ids: bool = False  # a chunk of job ids from the prompt index
    first_chunk: bool = False  # the prompt index's first chunk, in the same statement

    @classmethod
    def of(cls, filters: GalleryFilters, *, search: str | None, **more: bool) -> _Shape:
        return cls(
            preset=bool(filters.preset),
            model=bool(filters.model),
            image_size=bool(filters.image_size),
            status=bool(filters.status),
            user=filters.user is not None,
            since=bool(filters.since),
            until=bool(filters.until),
            like_terms=len(filters.terms) if search == LIKE else 0,
            text_terms=tuple(t.phrase for t in filters.terms) if search == TSVECTOR else (),
            favourite=filters.favourite,
            collection=filters.collection is not None,
            **more,
        )


def _params(filters: GalleryFilters, *, search: str | None) -> dict[str, Any]:
    """The values of the filters' bound parameters (see `_job_conditions`)."""
    params: dict[str, Any] = {
        "preset": filters.preset,
        "model": filters.model,
        "image_size": filters.image_size,
        "status": filters.status,
        "user": filters.user,
        "collection": filters.collection,
    }
    if filters.since:
        params["since"] = _day_start(filters.since)
    if filters.until:
        # Inclusive: the whole of the `until` day.
        params["until"] = _day_start(filters.until + timedelta(days=1))
    if search == LIKE:
        for number, term in enumerate(filters.terms):
            params[f"term_{number}"] = like_pattern(term.text)
    elif search == TSVECTOR:
        for number, term in enumerate(filters.terms):
            params[f"term_{number}"] = term.text
    return params


def _job_conditions(shape: _Shape) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if shape.preset:
        conditions.append(col(Job.preset) == sa.bindparam("preset"))
    if shape.model:
        conditions.append(col(Job.model) == sa.bindparam("model"))
    if shape.image_size:
        conditions.append(col(Job.image_size) == sa.bindparam("image_size"))
    if shape.status:
        conditions.append(col(Job.status) == sa.bindparam("status"))
    if shape.user:
        conditions.append(col(Job.user_id) == sa.bindparam("user"))
    if shape.since:
        conditions.append(col(Job.created_at) >= sa.bindparam("since"))
    if shape.until:
        conditions.append(col(Job.created_at) < sa.bindparam("until"))
    for number, phrase in enumerate(shape.text_terms):
        conditions.append(
            postgres.prompt_term_matches(
                sa.bindparam(f"term_{number}", type_=sa.Text), phrase=phrase
            )
        )
    # The reference search: every term somewhere in the prompt, case-insensitively.
    for number in range(shape.like_terms):
        conditions.append(
            sa.func.lower(col(Job.prompt)).like(sa.bindparam(f"term_{number}"), escape="\\")
        )
    return conditions


# How a search matches prompts: the database's full-text index, or LIKE (tests only).
FTS5, TSVECTOR, LIKE = "fts5", "tsvector", "like"


def _search(db: Database, filters: GalleryFilters, full_text: bool | None) -> str | None:
    """The seam: FTS5 on SQLite, tsvector on PostgreSQL (`full_text=False`: LIKE, for tests)."""
    if not filters.terms:
        return None
    if full_text is False:
        return LIKE
    return FTS5 if db.dialect == "sqlite" else TSVECTOR


def _planned_for_the_terms(
    connection: sa.Connection, search: str | None
) -> AbstractContextManager[None]:
    """PostgreSQL's search is planned for its words each time: a plan kept for any words
    reads every match (`app.storage.db.postgres.planned_for_their_values`)."""
    if search == TSVECTOR:
        return postgres.planned_for_their_values(connection)
    return nullcontext()


@functools.lru_cache(maxsize=512)
def _images_statement(shape: _Shape) -> sa.Select[Any]:
    """Parameters: the filters' (`_params`), `limit`, and as the shape says `cursor_job`
    and `cursor_index`, `job_ids` (a list), or `match`, `at_most` and `chunk` (the prompt
    index's first chunk: `app.storage.db.sqlite.matching_job_ids_select`)."""
    job_conditions = _job_conditions(shape)
    # Walk the table whose index yields page order directly (see the module docstring):
    # favourites by their own index, else jobs when a job-level filter narrows them.
    drive_by_jobs = (
        bool(job_conditions) or shape.job_ids or shape.first_chunk
    ) and not shape.favourite
    if shape.trash:
        # Few rows are trashed: the partial index finds them, and sorting them is cheap.
        drive_by_jobs = True
    order_key: Any = col(Job.id) if drive_by_jobs else col(Image.job_id)
    statement = (
        sa.select(*ENTRY_COLUMNS)
        .select_from(Image)
        .join(Job, col(Job.id) == col(Image.job_id))
        .where(
            col(Image.deleted_at).is_not(None) if shape.trash else col(Image.deleted_at).is_(None),
            *job_conditions,
        )
        .order_by(order_key.desc(), col(Image.index).asc())
        .limit(sa.bindparam("limit"))
    )
    if shape.job_ids:
        statement = statement.where(col(Job.id).in_(sa.bindparam("job_ids", expanding=True)))
    if shape.first_chunk:
        statement = statement.where(col(Job.id).in_(sqlite.matching_job_ids_select()))
    if shape.trashed_after:
        statement = statement.where(col(Image.deleted_at) > sa.bindparam("trashed_after"))
    if shape.favourite:
        statement = statement.where(col(Image.favourite).is_(True))
    if shape.collection:
        statement = statement.where(
            col(Image.id).in_(
                select(CollectionImage.image_id).where(
                    col(CollectionImage.collection_id) == sa.bindparam("collection")
                )
            )
        )
    if shape.cursor:
        cursor_job: sa.BindParameter[int] = sa.bindparam("cursor_job")
        statement = statement.where(
            order_key <= cursor_job,
            sa.or_(order_key < cursor_job, col(Image.index) > sa.bindparam("cursor_index")),
        )
    return statement


def search_images(
    db: Database,
    *,
    filters: GalleryFilters | None = None,
    cursor: Cursor | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    trash: bool = False,
    trashed_after: datetime | None = None,
    full_text: bool | None = None,
) -> GalleryPage:
    """One page of images matching `filters`, newest first; `trash` lists the trash instead
    (only what was trashed after `trashed_after`: older is due to be purged)."""
    filters = filters or GalleryFilters()
    search = _search(db, filters, full_text)
    wanted = limit + 1
    params = _params(filters, search=search)
    if cursor is not None:
        params.update(cursor_job=cursor.job_id, cursor_index=cursor.index)
    trash_cut = trash and trashed_after is not None
    if trash_cut:
        params["trashed_after"] = trashed_after
    shape = _Shape.of(
        filters, search=search, cursor=cursor is not None, trash=trash, trashed_after=trash_cut
    )
    if search != FTS5:
        with db.read_rows() as connection, _planned_for_the_terms(connection, search):
            rows = connection.execute(_images_statement(shape), {**params, "limit": wanted}).all()
    else:
        rows = _fts_search(db, shape, params, filters, wanted=wanted, cursor=cursor)
    items = [entry_of(row) for row in rows[:limit]]
    next_cursor = items[-1].cursor if len(rows) > limit and items else None
    return GalleryPage(items, next_cursor)


def _fts_search(
    db: Database,
    shape: _Shape,
    params: dict[str, Any],
    filters: GalleryFilters,
    *,
    wanted: int,
    cursor: Cursor | None,
) -> Sequence[sa.Row[Any]]:
    """The rows of a search on SQLite: matching jobs from the prompt index, chunk by chunk.

    In one transaction, unlike other listings: where the next chunk begins is read in a
    statement of its own, and a job committed between two statements would move it (one
    image shown twice, or one skipped)."""
    match = sqlite.fts_match_expression([(t.text, t.phrase) for t in filters.terms])
    assert match is not None
    top = cursor.job_id if cursor else ROW_ID_MAX
    rows: list[sa.Row[Any]] = []
    with db.read_engine.connect() as connection, connection.begin():
        # The first chunk of matching jobs in the same statement as their images: a common
        # search fills its page from it, and sending a list of ids back and forth cost
        # more than finding them.
        rows.extend(
            connection.execute(
                _images_statement(replace(shape, first_chunk=True)),
                {
                    **params,
                    "limit": wanted,
                    "match": match,
                    "at_most": top,
                    "chunk": _FTS_FIRST_CHUNK,
                },
            ).all()
        )
        # Fewer than a page: on, chunk by chunk, below the first chunk's last job.
        statement = _images_statement(replace(shape, job_ids=True))
        first = (
            sqlite.matching_job_ids(connection, match, at_most=top, limit=_FTS_FIRST_CHUNK)
            if len(rows) < wanted
            else []
        )
        below = first[-1] - 1 if len(first) == _FTS_FIRST_CHUNK else 0
        chunk = _FTS_FIRST_CHUNK * _FTS_CHUNK_GROWTH
        while len(rows) < wanted and below > 0:
            job_ids = sqlite.matching_job_ids(connection, match, at_most=below, limit=chunk)
            if not job_ids:
                break
            rows.extend(
                connection.execute(
                    statement, {**params, "limit": wanted - len(rows), "job_ids": job_ids}
                ).all()
            )
            if len(job_ids) < chunk:
                break
            below = job_ids[-1] - 1
            chunk = min(chunk * _FTS_CHUNK_GROWTH, _FTS_MAX_CHUNK)
    return rows


def tidy_search(db: Database) -> None:
    """A little upkeep of the prompt index (SQLite's); nothing elsewhere."""
    if sqlite.is_sqlite(db.write_engine):
        with db.write_engine.begin() as connection:
            sqlite.tidy_search_index(connection)


async def tidy_search_periodically(db: Database, *, every_seconds: float = 600.0) -> None:
    while True:
        await anyio.sleep(every_seconds)
        try:
            await anyio.to_thread.run_sync(lambda: tidy_search(db))
        except Exception:  # upkeep: tried again next time, never stops the app
            log.exception("tidying the prompt search index failed")


def iter_matching_image_ids(db: Database, *, filters: GalleryFilters, at_most: int) -> list[int]:
    """Up to `at_most` image ids matching `filters`, in gallery order (for zips)."""
    page = search_images(db, filters=filters, limit=at_most)
    return [entry.image_id for entry in page.items]


def search_jobs(
    db: Database,
    *,
    filters: GalleryFilters | None = None,
    before_id: int | None = None,
    limit: int = 20,
    full_text: bool | None = None,
) -> tuple[list[JobWithImages], int | None]:
    """Jobs matching `filters` (status included), newest first, with their visible images.

    The gallery's view of jobs that have no images to show: failed, expired,
    outcome unknown, still running.
    """
    filters = filters or GalleryFilters()
    search = _search(db, filters, full_text)
    conditions = _job_conditions(_Shape.of(filters, search=search))
    params = _params(filters, search=search)
    image_conditions: list[sa.ColumnElement[bool]] = []
    if filters.favourite:
        image_conditions.append(col(Image.favourite).is_(True))
    if filters.collection is not None:
        image_conditions.append(
            col(Image.id).in_(
                select(CollectionImage.image_id).where(
                    col(CollectionImage.collection_id) == sa.bindparam("collection")
                )
            )
        )
    if image_conditions:
        conditions.append(
            sa.exists().where(
                col(Image.job_id) == col(Job.id),
                col(Image.deleted_at).is_(None),
                *image_conditions,
            )
        )
    wanted = limit + 1

    def statement(job_ids: Sequence[int] | None, remaining: int) -> Any:
        query = select(Job).where(*conditions).order_by(col(Job.id).desc()).limit(remaining)
        if before_id is not None:
            query = query.where(col(Job.id) < before_id)
        if job_ids is not None:
            query = query.where(col(Job.id).in_(job_ids))
        return query

    with db.read() as session:
        found: list[Job] = []
        if search != FTS5:
            with _planned_for_the_terms(session.connection(), search):
                found = list(session.exec(statement(None, wanted), params=params).all())
        else:
            match = sqlite.fts_match_expression([(t.text, t.phrase) for t in filters.terms])
            assert match is not None
            below = before_id - 1 if before_id is not None else None
            chunk = _FTS_FIRST_CHUNK
            while len(found) < wanted:
                job_ids = sqlite.matching_job_ids(
                    session.connection(), match, at_most=below, limit=chunk
                )
                if not job_ids:
                    break
                found.extend(
                    session.exec(statement(job_ids, wanted - len(found)), params=params).all()
                )
                if len(job_ids) < chunk:
                    break
                below = job_ids[-1] - 1
                chunk = min(chunk * _FTS_CHUNK_GROWTH, _FTS_MAX_CHUNK)
        page = found[:limit]
        images_by_job: dict[int, list[Image]] = {job.id: [] for job in page if job.id is not None}
        if images_by_job:
            for image in session.exec(
                select(Image)
                .where(col(Image.job_id).in_(list(images_by_job)), col(Image.deleted_at).is_(None))
                .order_by(col(Image.job_id), col(Image.index))
            ).all():
                images_by_job[image.job_id].append(image)
        authors = author_names(session, {job.user_id for job in page})
    next_before = page[-1].id if len(found) > limit and page else None
    items = [
        JobWithImages(job, images_by_job.get(job.id or 0, []), authors.get(job.user_id))
        for job in page
    ]
    return items, next_before


def author_names(session: Session, user_ids: Iterable[int | None]) -> dict[int | None, str]:
    """Names of the people who made jobs, in one query."""
    wanted = {user_id for user_id in user_ids if user_id is not None}
    if not wanted:
        return {}
    rows = session.exec(select(User.id, User.name).where(col(User.id).in_(wanted))).all()
    return {user_id: name for user_id, name in rows}
