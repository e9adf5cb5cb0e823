"""The benchmarks' two sizes: the full run and the short run CI does (`--quick`), each a
`Profile` of every suite's size, rounds and pace, chosen by bench/cli.py."""

from __future__ import annotations

from dataclasses import dataclass

from bench.upstream import Pace


@dataclass(frozen=True)
class Profile:
    name: str
    small_jobs: int
    large_jobs: int
    pool_images: int
    latency_rounds: int
    latency_warmup: int
    serving_rounds: int
    full_per_round: int
    thumbnails_per_round: int
    # Serving from PostgreSQL's and S3's stores too: a server of each to start, some 40 s.
    serving_stores: bool
    poller_jobs: int
    # The upstream's pace: lognormal job times around this median, spread ×/÷ this much,
    # and a spell this many times slower (bench/poller.py).
    poller_median_seconds: float
    poller_spread: float
    poller_slow_factor: float
    poller_submit_per_second: float
    poller_history: int
    database_jobs: int
    database_rounds: int
    database_warmup: int
    # Clients at once; blocks of each side per concurrency; seconds a block; jobs stored.
    load_concurrencies: tuple[int, ...]
    load_rounds: int
    load_seconds: float
    load_batch: int
    storing_rounds: int
    browser_rounds: int

    @property
    def pace(self) -> Pace:
        return Pace(
            median_seconds=self.poller_median_seconds,
            spread=self.poller_spread,
            slow_factor=self.poller_slow_factor,
        )


FULL = Profile(
    name="full",
    small_jobs=1_000,
    large_jobs=100_000,
    pool_images=8,
    latency_rounds=500,
    latency_warmup=30,
    serving_rounds=15,
    full_per_round=10,
    thumbnails_per_round=100,
    serving_stores=True,
    # 1,000 jobs over 80 s, each a minute or so: some 800 in flight at the peak (storing an
    # image takes ~0.15 s of CPU: more at once than 2 cores store, and polls wait for them).
    poller_jobs=1_000,
    poller_median_seconds=60.0,
    poller_spread=1.5,
    poller_slow_factor=2.0,
    poller_submit_per_second=12.0,
    poller_history=30,
    database_jobs=2_000,
    database_rounds=200,
    database_warmup=20,
    load_concurrencies=(1, 8, 32, 128),
    load_rounds=3,
    load_seconds=4.0,
    load_batch=1_000,
    storing_rounds=20,
    browser_rounds=5,
)
QUICK = Profile(
    name="quick",
    small_jobs=1_000,
    large_jobs=10_000,
    pool_images=2,
    latency_rounds=150,
    latency_warmup=15,
    serving_rounds=5,
    full_per_round=6,
    thumbnails_per_round=60,
    serving_stores=False,
    poller_jobs=100,
    poller_median_seconds=10.0,
    poller_spread=1.5,
    poller_slow_factor=2.0,
    poller_submit_per_second=10.0,
    poller_history=10,
    database_jobs=500,
    database_rounds=60,
    database_warmup=10,
    load_concurrencies=(1, 8, 32),
    load_rounds=2,
    load_seconds=1.0,
    load_batch=100,
    storing_rounds=8,
    browser_rounds=3,
)
