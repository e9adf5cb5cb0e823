"""The calendar the tests whose expectations depend on the date run on."""

from __future__ import annotations

from datetime import UTC, datetime

# The day tests whose expectations depend on the date run on (`fixed_calendar`): noon in
# the middle of a month and of a year, so no test crosses a day, a month or a year; in the
# past, as app/core/clock.py asks.
FIXED_DAY = datetime(2025, 6, 16, 12, 0, tzinfo=UTC)
