"""What this process counts, in Prometheus' terms: one home for every metric's name and help.

The counters and histograms here are the process's own, kept whether or not metrics are
served (an increment costs a microsecond or so, less than deciding whether to make it).
They are served only with PLAYGROUND_METRICS=true: by a web process at /metrics
(app/web/ops.py) and by a worker on its health port (app/worker/health.py), each with the
figures read from the database at that moment beside them (app/features/ops/job_gauges.py).

Every process counts its own calls, so Prometheus adds them up across its targets; the
figures from the database are the same whichever process is asked.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector

# The same buckets for every duration: from a fast page (5 ms) to a slow poll (a minute).
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

UPSTREAM_REQUESTS = Counter(
    "playground_upstream_requests",
    "Requests to the PixelDojo API by endpoint and answer: the HTTP status, or "
    "unreachable (no answer: refused, timed out, broken)",
    ["endpoint", "status"],
    registry=None,
)
UPSTREAM_RATE_LIMITED = Counter(
    "playground_upstream_rate_limited",
    "429 answers from the PixelDojo API, by endpoint",
    ["endpoint"],
    registry=None,
)
UPSTREAM_RETRIES = Counter(
    "playground_upstream_retries",
    "Submissions sent again at once because PixelDojo certainly did not take them "
    "(a 429 within the wait allowed, a connection never made), by reason",
    ["reason"],
    registry=None,
)
JOB_RETRIES = Counter(
    "playground_job_retries",
    "Jobs put back to be tried again later, by what failed: a status poll, storing the "
    "images, or looking for a submission whose answer was lost",
    ["stage"],
    registry=None,
)
DOWNLOADS = Counter(
    "playground_downloads",
    "Image downloads from PixelDojo's image host: ok, refused (host, size) or failed "
    "(unreachable, an error status)",
    ["outcome"],
    registry=None,
)
DOWNLOAD_BYTES = Counter("playground_download_bytes", "Bytes of images downloaded", registry=None)
CALLBACKS = Counter(
    "playground_callbacks",
    "PixelDojo's calls back to this app: accepted (a job's poll brought forward) or "
    "refused (no such signed address)",
    ["outcome"],
    registry=None,
)
POLL_DELAY = Histogram(
    "playground_poll_delay_seconds",
    "How long after it was due each status poll was sent: a worker short of slots, "
    "or held up, shows here first",
    buckets=SECONDS_BUCKETS,
    registry=None,
)
REQUEST_DURATION = Histogram(
    "playground_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route (its path template) and status class",
    ["method", "route", "status"],
    buckets=SECONDS_BUCKETS,
    registry=None,
)

PROCESS_METRICS: tuple[Collector, ...] = (
    UPSTREAM_REQUESTS,
    UPSTREAM_RATE_LIMITED,
    UPSTREAM_RETRIES,
    JOB_RETRIES,
    DOWNLOADS,
    DOWNLOAD_BYTES,
    CALLBACKS,
    POLL_DELAY,
    REQUEST_DURATION,
)


def registry(*collectors: Collector) -> CollectorRegistry:
    """What one /metrics answer holds: this process's counters and histograms, its CPU and
    memory, and `collectors` (the database's figures, read when asked)."""
    from prometheus_client import ProcessCollector

    built = CollectorRegistry(auto_describe=True)
    for collector in (*PROCESS_METRICS, *collectors):
        built.register(collector)
    ProcessCollector(registry=built)
    return built
