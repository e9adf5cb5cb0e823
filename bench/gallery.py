"""Gallery latency at two sizes, each figure as a ratio to the same server's floor.

The floor is `/healthz`: the gate (sign-in by API token: the data is a team's),
routing, a thread-pool hop and a JSON answer, i.e. what any request to this app
costs before it does any work. A listing that is
"O(page)" costs a constant multiple of that at any gallery size; one that scans
or sorts the table grows with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote_plus

from bench.generate import Dataset
from bench.measure import BenchError, Connection, interleaved_latencies, percentile
from bench.report import Report
from bench.server import AppProcess

SECTION = "gallery latency"
FLOOR_PATH = "/healthz"
# How far down the gallery the deep page is: near the oldest images.
DEEP = 0.95
# Searches: a subject about one prompt in 27 has, and it with a style (one in 300).
SEARCH_WORD = "lighthouse"
SEARCH_WORDS = "lighthouse watercolor"
# Targets (issue 7): p50 within this many floors at the large size ...
FLOOR_MULTIPLE_MAX = 3.0
# ... and within this factor of its own floor multiple at the small size.
GROWTH_MAX = 1.5


@dataclass(frozen=True)
class Probe:
    name: str
    path: str
    # Text the answer must contain, so an error page or an empty one cannot pass as fast.
    expect: bytes


def probes(dataset: Dataset) -> list[Probe]:
    """What is measured: adding a listing to the benchmark is one line here."""
    deep_job = dataset.job_cursor(DEEP)
    more, tile, next_page = b'class="gallery-more"', b'class="gallery-item"', b'"next_cursor":"'
    return [
        Probe("/gallery first page", "/gallery", more),
        Probe("/gallery deep page", f"/gallery?cursor={deep_job}.0", more),
        Probe("/gallery search, one word", f"/gallery?q={quote_plus(SEARCH_WORD)}", tile),
        Probe("/gallery search, two words", f"/gallery?q={quote_plus(SEARCH_WORDS)}", tile),
        Probe("/api/gallery first page", "/api/gallery", next_page),
        Probe("/api/gallery deep page", f"/api/gallery?cursor={deep_job}.0", next_page),
        Probe("/api/jobs first page", "/api/jobs", next_page),
        Probe("/api/jobs deep page", f"/api/jobs?cursor={deep_job}", next_page),
    ]


@dataclass(frozen=True)
class Latency:
    p50: float
    p99: float


@dataclass(frozen=True)
class GalleryRun:
    size: int
    images: int
    floor: Latency
    probes: dict[str, Latency]

    def ratio(self, name: str, which: str) -> float:
        value: float = getattr(self.probes[name], which)
        return value / float(getattr(self.floor, which))


def measure(app: AppProcess, dataset: Dataset, *, rounds: int, warmup: int) -> GalleryRun:
    measured = probes(dataset)
    connection = Connection(app.port, token=dataset.token)
    try:
        for probe in measured:
            if probe.expect not in connection.get_ok(probe.path):
                raise BenchError(f"{probe.path} did not answer with {probe.expect!r}")
        paths = {probe.name: probe.path for probe in measured}
        paths[FLOOR_PATH] = FLOOR_PATH
        samples = interleaved_latencies(connection, paths, rounds=rounds, warmup=warmup)
    finally:
        connection.close()

    def latency(name: str) -> Latency:
        return Latency(percentile(samples[name], 0.5), percentile(samples[name], 0.99))

    return GalleryRun(
        size=dataset.jobs,
        images=dataset.images,
        floor=latency(FLOOR_PATH),
        probes={probe.name: latency(probe.name) for probe in measured},
    )


def report(report: Report, small: GalleryRun, large: GalleryRun) -> None:
    for run in (small, large):
        report.info(
            SECTION,
            f"floor {FLOOR_PATH} at N={run.size:,}: p50 / p99",
            run.floor.p50 * 1000,
            "ms",
            note=f"p99 {run.floor.p99 * 1000:.2f} ms; for scale only",
        )
    for name in large.probes:
        for run in (small, large):
            report.info(
                SECTION,
                f"{name} N={run.size:,}: p99 in floors",
                run.ratio(name, "p99"),
                "×",
            )
        report.info(
            SECTION, f"{name} N={small.size:,}: p50 in floors", small.ratio(name, "p50"), "×"
        )
        large_ratio = large.ratio(name, "p50")
        report.at_most(
            SECTION, f"{name} N={large.size:,}: p50 in floors", large_ratio, FLOOR_MULTIPLE_MAX, "×"
        )
        report.at_most(
            SECTION,
            f"{name} N={large.size:,} against N={small.size:,} (p50)",
            large_ratio / small.ratio(name, "p50"),
            GROWTH_MAX,
            "×",
        )
