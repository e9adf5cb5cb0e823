"""Settings: every knob of the app, read from the environment and an optional `.env`.

The caller builds one `Settings` and hands it to `create_app`; nothing reads
the environment at import time, so tests build apps with settings of their own.
Environment names are `PIXELDOJO_*` for the upstream and `PLAYGROUND_*` for the rest.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core import extras
from app.core.database_url import POSTGRES_SCHEMES, engine_url
from app.core.errors import MissingExtra
from app.core.model_id import DEFAULT_MODEL, ModelId

PUBLIC_API_BASE_URL = "https://pixeldojo.ai/api/v1"
DEFAULT_RATE_LIMIT_PER_MINUTE = 10.0
# What the demo mode's upstream is called where the app remembers things about it.
DEMO_UPSTREAM = "demo"
# S3 refuses presigned URLs that live longer than a week.
S3_PRESIGN_MAX_SECONDS = 7 * 24 * 3600
# S3's own rule for bucket names (3–63 lowercase letters, digits, dots and hyphens).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

APP_NAME = "seedream-playground"
# A signing key shorter than this is refused: HMAC-SHA256 is only as strong as its key.
SECRET_KEY_MIN_BYTES = 32


def default_data_dir() -> Path:
    """The person's own data folder (e.g. ~/.local/share/seedream-playground on Linux).

    Not a path relative to the current directory: every command, run from any folder,
    finds the same playground. PLAYGROUND_DATA_DIR overrides it.
    """
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PLAYGROUND_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    pixeldojo_api_key: SecretStr | None = Field(
        None,
        validation_alias="PIXELDOJO_API_KEY",
        description="PixelDojo API key; unset runs demo mode against the built-in emulator",
    )
    pixeldojo_base_url: str = Field(
        PUBLIC_API_BASE_URL,
        validation_alias="PIXELDOJO_BASE_URL",
        description="Base URL of the PixelDojo API",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the database and everything the app writes live; "
        "unset: the per-user data folder",
    )
    # Secret: the URL may carry the database password.
    database_url: SecretStr | None = Field(
        None,
        description="The database: unset, a SQLite file in the data dir; "
        "postgresql://user:password@host:port/name for PostgreSQL (through psycopg 3)",
    )
    model: ModelId = Field(DEFAULT_MODEL, description="PixelDojo model apiId to run")

    rate_limit_per_minute: float | None = Field(
        None,
        ge=0,
        validation_alias="PIXELDOJO_RATE_LIMIT_PER_MINUTE",
        description="Upstream API calls a minute; unset: 10 against PixelDojo, none in demo mode",
    )
    request_timeout_seconds: float = Field(
        60.0, gt=0, description="Timeout of one upstream API request"
    )
    max_submit_wait_seconds: float = Field(
        30.0,
        ge=0,
        description="Longest a submission waits for the rate limit before it is refused",
    )
    reconcile_window_seconds: float = Field(
        120.0,
        gt=0,
        description="How long a submission whose answer was lost is looked for upstream",
    )
    download_timeout_seconds: float = Field(
        120.0, gt=0, description="Overall deadline of one image download"
    )
    download_max_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Largest image the app will download"
    )
    image_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra hosts image downloads may come from, besides the API's domain "
        "and its sub-domains (comma-separated; *.example.com names every sub-domain)",
    )
    schema_refresh_minutes: float = Field(
        15.0,
        ge=0,
        description="How often the model's live schema is read again (0: only at start)",
    )
    poll_initial_seconds: float = Field(
        2.0, gt=0, description="Delay before the first status poll of a job"
    )
    poll_max_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest delay between two polls of a job within its usual time "
        "(past it, up to a tenth of the time the job has run)",
    )
    job_deadline_seconds: float = Field(
        900.0, gt=0, description="A job unfinished this long after submission has failed"
    )
    lease_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a worker owns a job without renewing; a crashed worker's jobs "
        "are taken over after this",
    )
    poller_concurrency: int = Field(8, ge=1, description="Jobs a worker handles at once")
    secret_key: SecretStr | None = Field(
        None,
        description="Signs session cookies; unset: a random key kept in the data dir",
    )
    session_days: float = Field(14.0, gt=0, description="How long a sign-in lasts")
    forwarded_allow_ips: str | None = Field(
        None,
        description="Addresses of reverse proxies whose X-Forwarded-For/-Proto to trust "
        "(comma-separated); set it behind an HTTPS proxy so cookies are marked Secure",
    )
    demo_job_seconds: float = Field(
        3.0, ge=0, description="How long a demo-mode job takes in the built-in emulator"
    )
    public_url: str | None = Field(
        None,
        description="The address PixelDojo can reach this app at (https://...); when set, "
        "reference images go as signed, expiring links to it instead of inside the request",
    )
    webhooks: bool = Field(
        True,
        description="With PLAYGROUND_PUBLIC_URL set, ask PixelDojo to call this app back when "
        "each job ends, so its images are stored within a second or so and polls become a "
        "rare safety net; false: poll only",
    )
    trash_days: int = Field(
        30, ge=0, description="Days a deleted image can be restored from the trash before purge"
    )
    metrics: bool = Field(
        False,
        description="Serve Prometheus metrics: at /metrics of a web process (to admins once "
        "sign-in is on) and on a worker's --health-port",
    )
    blob_url: str | None = Field(
        None,
        description="Where image bytes live: s3://bucket/prefix for an S3-compatible store; "
        "unset: beside the database (images.db in the data dir, or tables in PostgreSQL)",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="The S3-compatible service to use (MinIO, R2); unset: AWS. Credentials "
        "and region come from the standard AWS variables",
    )
    s3_redirect_seconds: int = Field(
        0,
        ge=0,
        le=S3_PRESIGN_MAX_SECONDS,
        description="With an S3 store: send browsers to a presigned URL valid this many "
        "seconds instead of streaming images through the app; 0: stream",
    )

    @property
    def callback_base_url(self) -> str | None:
        """Where PixelDojo calls the app back when a job ends (app/features/jobs/callbacks.py);
        None when callbacks are off (no public URL, or PLAYGROUND_WEBHOOKS=false)."""
        return self.public_url if self.webhooks else None

    @model_validator(mode="before")
    @classmethod
    def _blank_means_unset(cls, data: object) -> object:
        """A blank or all-whitespace value is no value, for every setting and from every
        source: `${VAR:-}` in a compose file hands the app an empty string for a variable
        the host never set, and taken as a value that was a signing key of no bytes
        (anyone could sign a session, a form token or a link), a proxy list of nobody,
        an empty key for demo mode."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if not _is_blank(value)}
        return data

    @field_validator("pixeldojo_base_url")
    @classmethod
    def _base_url_is_http(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("PIXELDOJO_BASE_URL must be an http(s) URL")
        return url.rstrip("/")

    @field_validator("public_url", mode="before")
    @classmethod
    def _public_url_is_http(cls, value: object) -> object:
        if isinstance(value, str):
            parts = urlsplit(value.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("PLAYGROUND_PUBLIC_URL must be an http(s) URL")
            if parts.query or parts.fragment:
                raise ValueError("PLAYGROUND_PUBLIC_URL must have no query or fragment")
            return value.strip().rstrip("/")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_supported(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value().strip()
        scheme = url.partition("://")[0].lower().partition("+")[0]
        if scheme not in POSTGRES_SCHEMES:
            raise ValueError(
                "PLAYGROUND_DATABASE_URL must be a postgresql:// URL; leave it unset for the "
                "SQLite database in the data dir"
            )
        _require(extras.POSTGRES)
        return SecretStr(url)

    @field_validator("image_hosts", mode="before")
    @classmethod
    def _comma_separated_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip().lower() for host in value.split(",") if host.strip()]
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_is_long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().encode()) < SECRET_KEY_MIN_BYTES:
            raise ValueError(
                f"PLAYGROUND_SECRET_KEY is shorter than {SECRET_KEY_MIN_BYTES} bytes, too short "
                "to sign with: make one with `openssl rand -hex 32`, or leave it unset for a "
                "random key kept in the database"
            )
        return key

    @field_validator("blob_url")
    @classmethod
    def _blob_url_names_a_bucket(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme, _, rest = url.partition("://")
        bucket = rest.partition("/")[0]
        if scheme != "s3" or not _BUCKET_NAME.match(bucket):
            raise ValueError(
                "PLAYGROUND_BLOB_URL must be s3://bucket or s3://bucket/prefix "
                "(unset keeps images beside the database)"
            )
        _require(extras.S3)
        return url

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("PLAYGROUND_S3_ENDPOINT_URL must be an http(s) URL")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _s3_settings_need_an_s3_store(self) -> Settings:
        if self.blob_url is None and (self.s3_endpoint_url or self.s3_redirect_seconds):
            raise ValueError(
                "PLAYGROUND_S3_ENDPOINT_URL and PLAYGROUND_S3_REDIRECT_SECONDS apply to an "
                "S3 store: set PLAYGROUND_BLOB_URL=s3://bucket/prefix as well"
            )
        return self

    @model_validator(mode="after")
    def _key_never_travels_in_clear(self) -> Settings:
        parts = urlsplit(self.pixeldojo_base_url)
        if (
            self.pixeldojo_api_key is not None
            and parts.scheme == "http"
            and not is_loopback_host(parts.hostname or "")
        ):
            raise ValueError(
                "PIXELDOJO_BASE_URL uses plain http to a remote host; the API key would "
                "travel unencrypted. Use https, or a loopback address for a local emulator."
            )
        return self

    @property
    def submit_window_seconds(self) -> float:
        """The longest one submission can take: its wait for the rate limit and its request."""
        return self.max_submit_wait_seconds + self.request_timeout_seconds

    def upstream_rate_limit(self) -> float | None:
        """Calls a minute to allow upstream; None for no limit."""
        if self.rate_limit_per_minute is not None:
            return self.rate_limit_per_minute or None
        # The contract's most careful figure for the real service; the emulator has none.
        return None if self.demo_mode else DEFAULT_RATE_LIMIT_PER_MINUTE

    @property
    def demo_mode(self) -> bool:
        return self.pixeldojo_api_key is None

    @property
    def upstream_name(self) -> str:
        """Which upstream the app talks to, for what it remembers of it (schemas, checks):
        demo mode's emulator, or the base URL."""
        return DEMO_UPSTREAM if self.demo_mode else self.pixeldojo_base_url

    @property
    def database_path(self) -> Path:
        """The default SQLite database (see `database_url`)."""
        return self.data_dir / "playground.db"

    @property
    def sqlalchemy_url(self) -> str:
        """The database to open, as SQLAlchemy names it: PostgreSQL through psycopg 3."""
        if self.database_url is None:
            return f"sqlite:///{self.database_path}"
        return engine_url(self.database_url.get_secret_value())

    @property
    def uses_postgres(self) -> bool:
        return self.database_url is not None

    @property
    def image_store_path(self) -> Path:
        return self.data_dir / "images.db"

    @property
    def scratch_dir(self) -> Path:
        return self.data_dir / "tmp"


def env_name(field: str) -> str:
    """The environment variable that sets a Settings field."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"PLAYGROUND_{field.upper()}"


def _is_blank(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and not value.strip()


def _require(extra: extras.Extra) -> None:
    """A setting that needs an extra is refused, in one line, where the extra is missing."""
    try:
        extras.require(extra)
    except MissingExtra as missing:
        raise ValueError(missing.message) from None


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
