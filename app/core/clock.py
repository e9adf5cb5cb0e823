"""The app's wall clock: what stamps rows and reads the calendar.

Everything that dates a row (a job's times, a session's end, a lease) or asks the
calendar (a day's or a month's spend, the trash's purge dates, whether a page
writes the year) takes now from `utcnow`, so all of it reads one clock.

Tests of what the date decides set that clock to a day of their choosing
(`calendar_at`): it then runs on from there at its real rate, so leases, polls
and deadlines behave as ever, and only the date is fixed. Only past moments:
what other machines say (PixelDojo's expiry times) stays on the real clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_shift = timedelta(0)


def utcnow() -> datetime:
    """Now, in UTC, on the app's clock."""
    return datetime.now(UTC) + _shift


@contextmanager
def calendar_at(moment: datetime) -> Iterator[None]:
    """Run the app's clock from `moment` (aware, in the past) while the block runs, in every
    thread of this process; then back to the real time."""
    global _shift
    before = _shift
    _shift = moment - datetime.now(UTC)
    try:
        yield
    finally:
        _shift = before
