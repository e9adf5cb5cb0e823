"""A doctor report: what `seedream-playground doctor` found, and the latest one kept.

The command (app/cli/doctor.py) prints it; the playground shows the latest beside the
form, where the key's status shows, read from the database (doctor runs in another
process). Exit codes: 0 when the app can work (schema differences are reported, not
fatal), 1 when something blocks it (the reason in one line), 2 when there is nothing
to check (no key).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.domain.rule_changes import Difference
from app.features.models.live_rules import ago
from app.storage.db.engine import Database
from app.storage.db.tables import DoctorReport, utcnow

EXIT_OK = 0
EXIT_BLOCKED = 1
EXIT_NOTHING_TO_CHECK = 2

# `skip`: not checked, because something before it made the check meaningless.
Status = Literal["ok", "note", "warn", "skip", "FAIL"]


@dataclass
class Check:
    name: str
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class DoctorResult:
    base_url: str
    model: str
    spent: bool
    ran_at: datetime = field(default_factory=utcnow)
    checks: list[Check] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    rate_limit_headers: dict[str, str] = field(default_factory=dict)
    clock_skew_seconds: float | None = None
    run: dict[str, Any] | None = None
    # Set when something blocks the app: the one-line reason.
    blocked: str | None = None

    def add(self, name: str, status: Status, summary: str, details: Sequence[str] = ()) -> None:
        self.checks.append(Check(name, status, summary, list(details)))

    def block(self, name: str, summary: str, reason: str) -> None:
        self.add(name, "FAIL", summary)
        self.blocked = self.blocked or reason

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCKED if self.blocked else EXIT_OK

    @property
    def headline(self) -> str:
        if self.blocked:
            return f"Blocked: {self.blocked}"
        parts = ["The app can work with this key"]
        if self.differences:
            count = len(self.differences)
            parts.append(
                f"{count} difference{'s' if count != 1 else ''} from the built-in rules "
                "(the live schema wins)"
            )
        if self.run and self.run.get("seconds") is not None:
            parts.append(f"the test job completed in {self.run['seconds']:.0f} s")
        return "; ".join(parts) + "."

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "ok": self.exit_code == EXIT_OK,
            "headline": self.headline,
            "blocked": self.blocked,
            "base_url": self.base_url,
            "model": self.model,
            "ran_at": self.ran_at.isoformat(),
            "spent": self.spent,
            "checks": [asdict(check) for check in self.checks],
            "differences": [change.to_json() for change in self.differences],
            "rate_limit_headers": self.rate_limit_headers,
            "clock_skew_seconds": self.clock_skew_seconds,
            "run": self.run,
        }


# --- Keeping the latest report ---------------------------------------------------------


def save_report(db: Database, *, upstream: str, result: DoctorResult) -> None:
    with db.write() as session:
        row = session.get(DoctorReport, upstream) or DoctorReport(
            upstream=upstream, ran_at=result.ran_at, exit_code=0, headline="", report={}
        )
        row.ran_at = result.ran_at
        row.exit_code = result.exit_code
        row.headline = result.headline
        row.report = result.to_json()
        session.add(row)


def latest_report(db: Database, *, upstream: str) -> DoctorReport | None:
    with db.read() as session:
        return session.get(DoctorReport, upstream)


class LastDoctorReport:
    """The latest doctor report for the app's upstream, as pages show it (looked up at most
    every few seconds: doctor runs in another process)."""

    CACHE_SECONDS = 5.0

    def __init__(self, db: Database, upstream: str) -> None:
        self._db = db
        self._upstream = upstream
        self._cached: tuple[float, DoctorReport | None] | None = None

    def latest(self) -> DoctorReport | None:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.CACHE_SECONDS:
            return self._cached[1]
        found = latest_report(self._db, upstream=self._upstream)
        self._cached = (now, found)
        return found

    @staticmethod
    def when(report: DoctorReport) -> str:
        return ago(report.ran_at, utcnow())
