"""The emulator's knobs: how long jobs take, which keys pass, how odd its answers are.

One dataclass, changed at any time by a test (or over HTTP at `/_emulator/config`,
app/emulator/control.py): every part of the emulator reads it at the moment it answers,
so a change applies to the next request without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class EmulatorConfig:
    job_seconds: float = 3.0
    latency_seconds: float = 0.0
    api_keys: frozenset[str] | None = None  # None: any key that looks like `pd_...`
    initial_credits: float = 1000.0
    # Refuse `aspect_ratio` too (the contract's other unknown fields are always refused).
    strict: bool = False
    retention_seconds: float = 24 * 3600.0
    output_shape: Literal["images", "image", "assets", "objects"] = "images"
    error_style: Literal["nested", "flat"] = "nested"
    credits_status: Literal[402, 403] = 403
    # Where image URLs point; None: this server's own origin.
    image_base_url: str | None = None
    # Jobs whose prompt contains these markers fail upstream, or never finish.
    fail_marker: str = "[[fail]]"
    never_marker: str = "[[never]]"
    # Seedream's run schema as served: per property, keywords to change (a None value
    # removes the keyword; a None property removes the property; an unknown name adds one).
    schema_overrides: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    schema_required: list[str] | None = None
    # `wrapped`: {"apiId": ..., "schema": {...}} (the SDK's `.schema`); `bare`: the schema.
    schema_shape: Literal["wrapped", "bare"] = "wrapped"
    # Odd answers: the word a finished job says, how expiresAt is written, code casing.
    completed_word: str = "completed"
    expires_format: Literal["iso", "unix", "unix_ms"] = "iso"
    error_codes_upper: bool = False
    # Models added to (or replacing in) the catalogue: apiId -> {"card": {...}, "schema":
    # {...}}; the card needs at least a name.
    extra_models: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Whether references may come as data: URIs, and as URLs (what doctor --run finds out).
    accept_data_uris: bool = True
    accept_reference_urls: bool = True
    # Whether a run's webhook_url is called when its job ends, and how late.
    callbacks: bool = True
    callback_delay_seconds: float = 0.0
    # Demo mode's upstream: every model costs nothing, in its catalogue and in its runs, so
    # the app, its API, the command line and budgets all count the 0 credits demo mode says.
    free: bool = False
