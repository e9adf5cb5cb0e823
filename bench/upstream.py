"""The PixelDojo emulator as the benchmarks run it: in this process, over loopback HTTP.

Its stand-in images come from a few pre-rendered pictures per size instead of a
fresh render per job: rendering a 2K PNG costs about as much CPU as the app
spends storing it, and this process must not compete with the app under test
for the machine's two cores. Each image is still distinct (a text chunk names
it), so the app downloads, checks, hashes and stores every one as it would
real output.
"""

from __future__ import annotations

import math
import random
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.core.loopback import LoopbackServer
from app.emulator import API_PREFIX, EmulatedJob, Emulator, EmulatorConfig
from app.emulator.render import render_png
from bench.imagery import with_text_chunk

VARIANTS = 3
# The app's settings against this emulator: like demo mode, no upstream rate limit (the
# real service's default of 10 calls a minute would make many jobs in flight impossible).
EMULATOR_SETTINGS = {"rate_limit_per_minute": 0}


@dataclass(frozen=True)
class Pace:
    """How long the upstream takes: lognormal durations around `median_seconds`, spread
    ×/÷`spread` (the geometric standard deviation; 1 for every job alike). Jobs submitted
    while `slow_window` (Unix times, set as the benchmark runs) is open take `slow_factor`
    times as long: PixelDojo having a slow spell, then recovering."""

    median_seconds: float
    spread: float = 1.0
    slow_factor: float = 1.0
    seed: int = 1


class BenchEmulator(Emulator):
    def __init__(
        self,
        config: EmulatorConfig,
        pictures: dict[tuple[int, int], list[bytes]] | None = None,
        pace: Pace | None = None,
    ) -> None:
        super().__init__(config)
        self._pictures = dict(pictures or {})
        self._pictures_lock = threading.Lock()
        self.pace = pace or Pace(config.job_seconds)
        self.slow_window: tuple[float, float] | None = None
        self._durations: dict[str, float] = {}

    def job_seconds(self, job: EmulatedJob) -> float:
        """Drawn once per job, from its id: the same job always takes as long."""
        seconds = self._durations.get(job.job_id)
        if seconds is None:
            draw = random.Random(f"{self.pace.seed}:{job.job_id}").gauss(0.0, 1.0)
            seconds = self.pace.median_seconds * math.exp(math.log(self.pace.spread) * draw)
            window = self.slow_window
            if window is not None and window[0] <= job.created_at < window[1]:
                seconds *= self.pace.slow_factor
            self._durations[job.job_id] = seconds
        return seconds

    def prepare(self, width: int, height: int) -> None:
        """Render the stand-ins for one size now, before anything is timed."""
        with self._pictures_lock:
            if (width, height) in self._pictures:
                return
        rendered = [
            render_png(
                prompt=f"benchmark stand-in {variant + 1} of {VARIANTS}",
                seed=variant,
                index=0,
                width=width,
                height=height,
            )
            for variant in range(VARIANTS)
        ]
        with self._pictures_lock:
            self._pictures.setdefault((width, height), rendered)

    def _render(self, job: EmulatedJob, index: int, name: str) -> bytes:
        self.prepare(job.width, job.height)
        with self._pictures_lock:
            pictures = self._pictures[(job.width, job.height)]
        picture = pictures[zlib.crc32(name.encode()) % len(pictures)]
        return with_text_chunk(picture, name)


@dataclass
class RunningUpstream:
    emulator: BenchEmulator
    url: str
    api_key: str

    @property
    def base_url(self) -> str:
        return self.url + API_PREFIX


@contextmanager
def serve_upstream(
    *,
    job_seconds: float,
    pictures: dict[tuple[int, int], list[bytes]] | None = None,
    pace: Pace | None = None,
) -> Iterator[RunningUpstream]:
    api_key = "pd_bench_upstream"
    emulator = BenchEmulator(
        EmulatorConfig(
            job_seconds=job_seconds,
            api_keys=frozenset({api_key}),
            initial_credits=1e12,
            strict=True,
        ),
        pictures,
        pace,
    )
    with LoopbackServer(emulator.app) as server:
        yield RunningUpstream(emulator, server.url, api_key)
