"""The emulator's state file: its jobs and credits, so they outlive a restart.

Demo mode keeps one in the data folder, so a job running when the app stops finishes
after it starts again, as it would at PixelDojo. The file is only ever replaced whole
(a new file, synced, renamed over the old), so a crash leaves the old state or the new,
never half of one; a file that cannot be read is a fresh start, not a refusal to start.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Saved:
    # Each job as a JSON object (app/emulator/jobs.py reads them back).
    jobs: list[dict[str, Any]]
    credits: dict[str, float]


@dataclass(frozen=True)
class StateFile:
    path: Path

    @property
    def references_folder(self) -> Path:
        """Where the reference images that outputs are made from are kept, beside the file."""
        return self.path.with_name(self.path.name + ".references")

    def load(self) -> Saved | None:
        """What was saved, or None for a fresh start (no file, or one torn or foreign)."""
        if not self.path.exists():
            return None
        try:
            saved = json.loads(self.path.read_text())
            jobs = [dict(item) for item in saved["jobs"]]
            credits = {str(key): float(value) for key, value in saved["credits"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return Saved(jobs, credits)

    def save(self, jobs: list[dict[str, Any]], credits: dict[str, float]) -> None:
        """Write jobs and credits in place of what was there."""
        handle, scratch = tempfile.mkstemp(dir=self.path.parent, prefix=".demo-upstream-")
        try:
            with os.fdopen(handle, "w") as stream:
                json.dump({"jobs": jobs, "credits": credits}, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(scratch, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
            raise
