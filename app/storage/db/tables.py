"""Database tables: every table, the job's status enum and the column types they share.

Tables hold rows; what leaves the server is shaped in app/web/schemas.py. Image bytes are
not here at all: they live in the blob store (app/storage/db/sqlite.py), keyed by sha256,
so no query over these tables can read them by accident.

It stays one module, long as it is: importing it registers the whole schema on
`SQLModel.metadata`, which the migrations are compared against as one
(tests/test_database.py), and the tables' foreign keys point at one another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow as utcnow
from app.storage.db import sqlite

# Named constraints, so migrations can alter them on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC: comparisons work the same on every backend."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Any:
        if dialect.name == "sqlite":
            return sqlite.utc_datetime_from_text(
                self.impl_instance.result_processor(dialect, coltype)
            )
        return super().result_processor(dialect, coltype)


def _utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


# The largest record number the database can hold (SQLite's and PostgreSQL's BIGINT).
ROW_ID_MAX = 2**63 - 1

# Record numbers and the columns that point at them: BIGINT on PostgreSQL. On SQLite an
# INTEGER PRIMARY KEY is already 64-bit and is the table's rowid (a BIGINT one would not
# be), so it stays INTEGER there, as the first migrations made it.
RecordId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id_column() -> Any:
    return Field(default=None, primary_key=True, sa_type=RecordId)


class JobStatus(StrEnum):
    # The row exists and the upstream call is under way (or its process died).
    SUBMITTING = "submitting"
    # The submit's answer was lost: looking for the job in PixelDojo's recent jobs.
    RECONCILING = "reconciling"
    # The upstream accepted the job and it has not finished.
    PENDING = "pending"
    # The upstream finished it; the images are being stored.
    DOWNLOADING = "downloading"
    COMPLETED = "completed"
    FAILED = "failed"
    # The images' temporary URLs expired before they could be stored.
    EXPIRED = "expired"
    # The submit's outcome is unknown: it may or may not have been accepted.
    UNKNOWN = "unknown"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATUSES

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


FINISHED_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.UNKNOWN}
)
STATUS_LABELS = {
    JobStatus.SUBMITTING: "Submitting",
    JobStatus.RECONCILING: "Checking with PixelDojo",
    JobStatus.PENDING: "Generating",
    JobStatus.DOWNLOADING: "Saving images",
    JobStatus.COMPLETED: "Done",
    JobStatus.FAILED: "Failed",
    JobStatus.EXPIRED: "Expired upstream",
    JobStatus.UNKNOWN: "Outcome unknown",
}


STOPPED_LABEL = "Stopped by you"


def is_stopped(status: JobStatus, stopped_at: datetime | None) -> bool:
    """Stopped by the person before it finished: no longer waited for on any page (a job, or
    a listing's row of one, asks this)."""
    return stopped_at is not None and status is not JobStatus.COMPLETED


def state_label(status: JobStatus, stopped_at: datetime | None) -> str:
    """What pages call a job's state: its status, or that the person stopped it."""
    return STOPPED_LABEL if is_stopped(status, stopped_at) else status.label


# Stored as the plain value (VARCHAR), read back as the enum member.
_status_type = sa.Enum(
    JobStatus,
    native_enum=False,
    length=20,
    values_callable=lambda members: [member.value for member in members],
)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_status_next_poll", "status", "next_poll_at"),
        # The gallery's filters, each with the id it pages by (newest first), so a
        # filtered page is a short index range scan, never a sort (app/features/gallery/listing.py).
        sa.Index("ix_jobs_preset_id", "preset", "id"),
        sa.Index("ix_jobs_model_id", "model", "id"),
        sa.Index("ix_jobs_image_size_id", "image_size", "id"),
        sa.Index("ix_jobs_status_id", "status", "id"),
        sa.Index("ix_jobs_created_at", "created_at"),
        sa.Index("ix_jobs_user_id_id", "user_id", "id"),
        # Ids are never reused, so a link to a deleted job never shows another one.
        {"sqlite_autoincrement": True},
    )

    id: int | None = _id_column()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

    # Who asked; None when the app runs for a single person without sign-in.
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True, sa_type=RecordId)
    # What was asked for, column by column for filtering, and the exact body sent.
    model: str = Field(max_length=100)
    preset: str | None = Field(default=None, max_length=100)
    prompt: str
    image_size: str = Field(max_length=32)
    custom_width: int | None = None
    custom_height: int | None = None
    seed: int | None = None
    num_images: int
    request_body: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    # Where a remix (or "same prompt, new seed") came from: the job, and the image the
    # person was looking at. Not a foreign key: a source purged from the trash later
    # still leaves the remix saying where it came from.
    remix_of_job_id: int | None = Field(default=None, sa_type=RecordId)
    remix_of_image_index: int | None = None
    # The gallery images sent with the run as references (an edit), by image id, in the
    # order sent; None: none. Ids, not foreign keys, for the reason above; the bytes sent
    # are made from the images when the job is submitted, never stored twice.
    reference_images: list[int] | None = Field(default=None, sa_type=sa.JSON)

    # What happened.
    status: JobStatus = Field(default=JobStatus.SUBMITTING, sa_type=_status_type, nullable=False)
    upstream_job_id: str | None = Field(default=None, max_length=200, unique=True)
    upstream_status: str | None = Field(default=None, max_length=50)
    error: str | None = None
    submitted_at: datetime | None = _utc_column()
    # How long PixelDojo took, as far as polls can tell, in seconds after submission: the
    # last poll that found it running, and when the poll that found it done was due (None
    # when that poll ran late: the app was down, and the job ended some time before).
    # They time the next jobs' polls (app/features/jobs/timing.py).
    seen_running_seconds: float | None = None
    done_by_seconds: float | None = None
    # Whether PixelDojo was asked to call this app back when the job ends (with
    # PLAYGROUND_PUBLIC_URL set), and when it last did: a call makes the job due for a poll
    # at once, and the polls it would otherwise need become a rare safety net
    # (app/features/jobs/callbacks.py).
    webhook_requested: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    webhook_at: datetime | None = _utc_column()
    upstream_completed_at: datetime | None = _utc_column()
    finished_at: datetime | None = _utc_column()
    # When the person stopped it (app/features/jobs/stopping.py). PixelDojo has no cancel: a
    # job it has is still polled and its images kept; one not yet sent never is.
    stopped_at: datetime | None = _utc_column()
    expires_at: datetime | None = _utc_column()
    # Reserved against budgets at submission; the reported credit_cost settles it.
    estimated_credits: float = 0.0
    credit_cost: float | None = None
    credits_remaining: float | None = None
    output_urls: list[str] | None = Field(default=None, sa_type=sa.JSON)

    # Polling bookkeeping: which worker owns the job, and until when.
    poll_count: int = 0
    next_poll_at: datetime | None = _utc_column()
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = _utc_column()
    # Raised by every claim: a worker's writes name the token it claimed with, so one whose
    # lease was taken over (even by its own process, after its heartbeat lagged) is fenced off.
    lease_token: int = Field(
        default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"}
    )

    @property
    def stopped(self) -> bool:
        return is_stopped(self.status, self.stopped_at)

    @property
    def state_label(self) -> str:
        return state_label(self.status, self.stopped_at)


# The job record: the columns of `jobs` a job's answer is made from, in the order listings
# select them (app/features/jobs/reads.py); not the request body, the output URLs nor the
# worker's bookkeeping. Declared here once: tests/test_job_record.py holds the read models,
# the answers' models and the gallery's rows to it.
JOB_RECORD: tuple[str, ...] = (
    "id",
    "status",
    "model",
    "preset",
    "prompt",
    "image_size",
    "custom_width",
    "custom_height",
    "seed",
    "num_images",
    "upstream_job_id",
    "error",
    "credit_cost",
    "credits_remaining",
    "created_at",
    "submitted_at",
    "finished_at",
    "expires_at",
    "remix_of_job_id",
    "remix_of_image_index",
    "reference_images",
    "stopped_at",
)


class User(SQLModel, table=True):
    """A person who signs in. Removed people keep their rows, so their work stays attributed."""

    __tablename__ = "users"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = _id_column()
    name: str = Field(max_length=64)
    # Lower-cased: "Alice" and "alice" are one person.
    name_key: str = Field(max_length=64, unique=True)
    password_hash: str
    is_admin: bool = False
    daily_budget: float | None = None
    monthly_budget: float | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    removed_at: datetime | None = _utc_column()


class UserSession(SQLModel, table=True):
    """A signed-in browser. The cookie carries a random token; only its hash is stored."""

    __tablename__ = "sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE", sa_type=RecordId)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    ip: str | None = Field(default=None, max_length=64)


class ApiToken(SQLModel, table=True):
    """A personal token for scripts; only its hash is stored, it is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = _id_column()
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE", sa_type=RecordId)
    name: str = Field(max_length=80)
    token_hash: str = Field(max_length=64, unique=True)
    # The first characters, so a person can tell their tokens apart.
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_used_at: datetime | None = _utc_column()
    revoked_at: datetime | None = _utc_column()


class SignInThrottle(SQLModel, table=True):
    """Failed sign-ins per name at an address, and per address (app/features/people/throttle.py)."""

    __tablename__ = "sign_in_throttles"

    key: str = Field(primary_key=True, max_length=300)
    failures: int = 0
    last_failure_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # No attempt on this key is checked before then.
    blocked_until: datetime | None = _utc_column()


class AuditEvent(SQLModel, table=True):
    """Who did what, when, from where: sign-ins, submissions, deletions, account changes."""

    __tablename__ = "audit_events"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = _id_column()
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    user_id: int | None = Field(default=None, foreign_key="users.id", sa_type=RecordId)
    # The name at the time, so the log reads the same after a rename or removal.
    actor: str = Field(max_length=64)
    action: str = Field(max_length=50, index=True)
    detail: str = ""
    ip: str | None = Field(default=None, max_length=64)


class Worker(SQLModel, table=True):
    """A running app process. Its heartbeat tells others whether its leases still mean anything:
    a crashed worker's jobs are taken over as soon as its heartbeat stops, not when its
    longest lease would have run out."""

    __tablename__ = "workers"

    id: str = Field(primary_key=True, max_length=200)
    started_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    heartbeat_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class KeyStatus(SQLModel, table=True):
    """A refusal of the API key, shared by every worker until the key works again.

    Keyed by a fingerprint (a truncated hash), never the key itself.
    """

    __tablename__ = "key_status"

    fingerprint: str = Field(primary_key=True, max_length=64)
    failed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    message: str


class AppSecret(SQLModel, table=True):
    """A secret every process of the app must agree on (the signing key when
    PLAYGROUND_SECRET_KEY is unset): made once by whichever process starts first."""

    __tablename__ = "app_secrets"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class RateBudget(SQLModel, table=True):
    """The upstream rate limit's token bucket for one API key, shared by every process.

    Keyed by the key's fingerprint. Times are seconds since the epoch: every process
    reads the same wall clock, where each one's monotonic clock is its own.
    """

    __tablename__ = "rate_budgets"

    fingerprint: str = Field(primary_key=True, max_length=64)
    tokens: float
    updated_at: float
    paused_until: float = 0.0


class ModelSchema(SQLModel, table=True):
    """The last good copy of a model's live schema, and how the latest fetch went.

    One row per upstream (demo mode's emulator, or a base URL) and model, shared by
    every worker: a fetch by one process serves all of them, and survives a restart
    (the rules stay as narrow as PixelDojo last said while it cannot be reached).
    """

    __tablename__ = "model_schemas"

    upstream: str = Field(primary_key=True, max_length=500)
    model: str = Field(primary_key=True, max_length=100)
    # The run body's JSON Schema and the model's card, as last read; None before any.
    json_schema: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    model_card: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    fetched_at: datetime | None = _utc_column()
    # The latest attempt, good or not, and why it failed (None: it worked).
    checked_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    error: str | None = None
    # False once PixelDojo said it has no such model (a 404), None when not known.
    model_found: bool | None = None


class ModelCatalogue(SQLModel, table=True):
    """The last good copy of the upstream's model catalogue (`GET /models`), and how the
    latest read went; one row per upstream, shared by every worker like `model_schemas`."""

    __tablename__ = "model_catalogues"

    upstream: str = Field(primary_key=True, max_length=500)
    # The answer's models as last read; None before any read worked.
    models: list[dict[str, Any]] | None = Field(default=None, sa_type=sa.JSON)
    fetched_at: datetime | None = _utc_column()
    checked_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    error: str | None = None


class DoctorReport(SQLModel, table=True):
    """The latest `seedream-playground doctor` result for an upstream (never the key)."""

    __tablename__ = "doctor_reports"

    upstream: str = Field(primary_key=True, max_length=500)
    ran_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    exit_code: int
    # One line: what the app can do, or what blocks it.
    headline: str
    report: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)


class Image(SQLModel, table=True):
    __tablename__ = "images"
    __table_args__ = (
        sa.UniqueConstraint("job_id", "index", name="uq_images_job_index"),
        # Favourites in gallery order: "starred only" is an index range, not a scan.
        sa.Index("ix_images_favourite", "favourite", "job_id", "index"),
        # Partial: only trashed rows are in it, so the planner never mistakes
        # "not in the trash" (deleted_at IS NULL) for a selective condition.
        sa.Index(
            "ix_images_deleted_at",
            "deleted_at",
            sqlite_where=sa.text("deleted_at IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: int | None = _id_column()
    job_id: int = Field(foreign_key="jobs.id", ondelete="CASCADE", sa_type=RecordId)
    index: int
    content_type: str = Field(max_length=50)
    width: int
    height: int
    byte_size: int
    sha256: str = Field(max_length=64, index=True)
    source_url: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # Gallery state: starred, and moved to the trash (purged some days later).
    favourite: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    deleted_at: datetime | None = _utc_column()


# The image record: the columns of `images` that every answer about an image carries, in the
# order answers write them. Declared here once: listings select these columns by name and
# answers are built from them (app/features/jobs/reads.py, app/web/views.py,
# app/web/gallery_views.py), and tests/test_image_record.py holds every other list of an
# image's fields (the answers' models, the fast writers, the gallery's rows, the download's
# metadata, the export) to this one. Not `source_url` (PixelDojo's temporary link, kept for
# the record) nor `created_at` (answers give the job's).
IMAGE_RECORD: tuple[str, ...] = (
    "id",
    "index",
    "width",
    "height",
    "content_type",
    "byte_size",
    "sha256",
    "favourite",
    "deleted_at",
)


class Thumbnail(SQLModel, table=True):
    """Where galleries made before thumbnails moved into the blob store kept them.

    Nothing writes here any more: the app moves these rows into the store in the
    background and serves them from here until then (app.storage.thumbnails).
    """

    __tablename__ = "thumbnails"

    image_id: int = Field(
        foreign_key="images.id", primary_key=True, ondelete="CASCADE", sa_type=RecordId
    )
    content_type: str = Field(max_length=50)
    width: int
    height: int
    data: bytes = Field(sa_type=sa.LargeBinary, nullable=False)


class TeamPreset(SQLModel, table=True):
    """A preset someone saved for the team; shown beside the eight built-in ones."""

    __tablename__ = "team_presets"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = _id_column()
    name: str = Field(max_length=80)
    # The name case-folded: "Moody Portrait" and "moody portrait" are one preset.
    name_key: str = Field(max_length=80, unique=True)
    description: str = Field(default="", max_length=300)
    # The run body exactly as it would be sent upstream (GenerationParams.upstream_body()).
    parameters: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    created_by: int | None = Field(default=None, foreign_key="users.id", sa_type=RecordId)


class Collection(SQLModel, table=True):
    """A named board of images that everyone on the team sees."""

    __tablename__ = "collections"

    id: int | None = _id_column()
    name: str = Field(max_length=100, unique=True)
    description: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class CollectionImage(SQLModel, table=True):
    __tablename__ = "collection_images"
    __table_args__ = (sa.Index("ix_collection_images_image_id", "image_id"),)

    collection_id: int = Field(
        foreign_key="collections.id", primary_key=True, ondelete="CASCADE", sa_type=RecordId
    )
    image_id: int = Field(
        foreign_key="images.id", primary_key=True, ondelete="CASCADE", sa_type=RecordId
    )
    added_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Grid(SQLModel, table=True):
    """Jobs made along up to three axes (app/domain/grid_plans.py): what was asked, and who runs it.

    Its cells are ordinary jobs; `grid_cells` says which job fills which cell.
    """

    __tablename__ = "grids"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = _id_column()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True, sa_type=RecordId)
    model: str = Field(max_length=100)
    # The base prompt, for listings; each cell's own prompt is in its parameters.
    prompt: str
    # The request as asked (base parameters, preset, axes as typed), to replay or remix it.
    request: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    # The axes as planned: each one's parameter, title, values and their labels.
    axes: list[dict[str, Any]] = Field(sa_type=sa.JSON, nullable=False)
    estimated_credits: float = 0.0
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    # Not a foreign key, like a job's remix source: the source may be gone one day.
    remix_of_grid_id: int | None = Field(default=None, sa_type=RecordId)
    # The worker submitting its cells now; another takes over if that one stops beating.
    runner: str | None = Field(default=None, max_length=200)


class GridCell(SQLModel, table=True):
    """One cell of a grid: where it sits, what it asks for, and the job that made it."""

    __tablename__ = "grid_cells"

    grid_id: int = Field(
        foreign_key="grids.id", primary_key=True, ondelete="CASCADE", sa_type=RecordId
    )
    # Submission order: row by row, tab by tab.
    position: int = Field(primary_key=True)
    x: int
    y: int
    z: int
    preset: str | None = Field(default=None, max_length=100)
    # The run body exactly as it is sent upstream (GenerationParams.upstream_body()).
    parameters: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    # None until submitted. Not a foreign key: the cell keeps its place whatever happens.
    job_id: int | None = Field(default=None, unique=True, sa_type=RecordId)
    # Why it was never submitted (a budget, a refused key), if so.
    refused: str | None = None
    # When the runner took it to send it, and when the person stopped it before that
    # (app/features/grids/stopping.py): each changes this row, so only one of them can win.
    sent_at: datetime | None = _utc_column()
    stopped_at: datetime | None = _utc_column()
