"""Many people at once: throughput and tail latency under concurrent keep-alive clients.

Every other benchmark asks one thing at a time. Here N clients, each on its own
keep-alive connection, ask as fast as they are answered for a fixed span, in a mix
a team makes (MIX: gallery pages and scrolls, searches, job status and submits).
The floor is the bare FastAPI app (bench/server.py's `bare_app`) in a process of its
own, under the same clients at the same concurrency, in blocks alternating with the
app's: throughput is reported as a fraction of the bare app's, p50 and p99 as
multiples of the bare app's at the same concurrency.

Then the same at STORING_CONCURRENCY while the worker stores a batch of jobs from
the emulator (bench/upstream.py, varying pace, full-weight 2K PNGs): its p99 against
the idle app's. The emulator runs in a process of its own, so serving downloads does
not take the client's core; until the batch starts it holds every job for hours
(a slow spell with no end), so the idle app's worker polls but never stores.

The client is asyncio with raw HTTP/1.1 on streams: a full-featured client costs
more per request than the bare app does, and would measure itself.

It stays one module, long as it is: the idle and the storing runs share the clients,
the alternating blocks and the bare-app floor, and their figures are only comparable
while they are measured by the same code.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import random
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from urllib.parse import quote_plus

from bench import poller, prompts
from bench.generate import Dataset
from bench.imagery import PoolImage
from bench.measure import BenchError, Connection, percentile
from bench.report import Report
from bench.server import AppProcess, serve_app_process
from bench.upstream import EMULATOR_SETTINGS, Pace, serve_upstream

SECTION = "load"
# Share of requests by kind, and the requests of each kind (`requests`).
MIX = {"gallery": 0.70, "search": 0.20, "status": 0.07, "submit": 0.03}
# The targets are set at this many clients.
TARGET_CONCURRENCY = 32
THROUGHPUT_MIN = 0.25  # the app's throughput, as a fraction of the bare app's
P99_MAX = 10.0  # the app's p99, in bare p99s at the same concurrency
STORING_P99_MAX = 2.0  # p99 while the worker stores, in the idle app's p99
IMAGE_SIZE = "auto_2K"
# Upstream job times while the batch runs: short, so storing starts soon and overlaps.
BATCH_PACE = Pace(median_seconds=1.0, spread=1.5, slow_factor=1e6)


@dataclass(frozen=True)
class Request:
    kind: str
    raw: bytes
    expect: int


@dataclass
class Side:
    """What one server answered at one concurrency, over every block it was measured in."""

    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)
    # The kind of each request in `latencies`, in the same order.
    kinds: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    def of_kind(self, kind: str) -> list[float]:
        return [seconds for seconds, k in zip(self.latencies, self.kinds, strict=True) if k == kind]


@dataclass
class LoadRun:
    concurrencies: tuple[int, ...]
    bare: dict[int, Side]
    idle: dict[int, Side]
    storing: Side
    storing_concurrency: int
    batch: int
    # Jobs the worker stored during the storing blocks, and the fewest stored in one block.
    stored_while_measuring: int
    fewest_stored_in_a_block: int

    def throughput_ratio(self, concurrency: int) -> float:
        return self.idle[concurrency].throughput / self.bare[concurrency].throughput

    def latency_ratio(self, concurrency: int, which: str) -> float:
        app = float(getattr(self.idle[concurrency], which))
        return app / float(getattr(self.bare[concurrency], which))

    @property
    def storing_p99_ratio(self) -> float:
        return self.storing.p99 / self.idle[self.storing_concurrency].p99


def requests(dataset: Dataset, *, seed: int = 1) -> dict[str, list[Request]]:
    """The requests of each kind in MIX, signed in as a team member."""
    if dataset.token is None:
        raise BenchError("the load benchmark needs a team's gallery (one with sign-in)")
    auth = f"Authorization: Bearer {dataset.token}\r\n"

    def get(kind: str, path: str) -> Request:
        return Request(kind, f"GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n".encode(), 200)

    depths = (0.05, 0.2, 0.4, 0.6, 0.8, 0.95)
    gallery = [get("gallery", "/gallery"), get("gallery", "/api/gallery")]
    for depth in depths:
        gallery.append(get("gallery", f"/gallery/page?cursor={dataset.job_cursor(depth)}.0"))
        gallery.append(get("gallery", f"/api/gallery?cursor={dataset.job_cursor(depth)}.0"))
    searches = ("lighthouse", "portrait light", '"golden hour"', "watercolor")
    search = [get("search", f"/gallery?q={quote_plus(q)}") for q in searches]
    search += [get("search", f"/api/gallery?q={quote_plus(q)}") for q in searches]
    rng = random.Random(seed)
    oldest = max(1, dataset.last_job_id - dataset.jobs + 1)
    status = [
        get("status", f"/api/jobs/{rng.randint(oldest, dataset.last_job_id)}") for _ in range(20)
    ]
    submit = []
    for _ in range(20):
        body = json.dumps({"prompt": prompts.prompt(rng), "image_size": IMAGE_SIZE}).encode()
        head = (
            f"POST /api/jobs HTTP/1.1\r\nHost: bench\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        submit.append(Request("submit", head.encode() + body, 202))
    return {"gallery": gallery, "search": search, "status": status, "submit": submit}


BARE_REQUESTS = {"floor": [Request("floor", b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n", 200)]}


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: Request
) -> None:
    writer.write(request.raw)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size + 2))
        await reader.readuntil(b"\r\n")
        body = b"".join(parts)
    else:
        raise BenchError(f"an answer without a length: {lines[0]}")
    if status != request.expect:
        raise BenchError(f"{lines[0]} to {request.raw.split(b' HTTP')[0]!r}: {body[:200]!r}")


async def _block(
    port: int,
    kinds: dict[str, list[Request]],
    *,
    concurrency: int,
    seconds: float,
    seed: int,
) -> Side:
    """`concurrency` clients ask as fast as answered for `seconds`; each its own connection
    (opened and warmed before the clock starts), each request drawn from MIX."""
    weights = [MIX.get(kind, 1.0) for kind in kinds]
    names = list(kinds)
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]
    side = Side(by_kind=dict.fromkeys(names, 0))
    try:
        for reader, writer in streams:
            await _exchange(reader, writer, kinds[names[0]][0])
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + seconds
        ended: list[float] = []

        async def client(
            number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            rng = random.Random(f"{seed}:{number}")
            while loop.time() < deadline:
                kind = rng.choices(names, weights)[0]
                request = rng.choice(kinds[kind])
                before = time.perf_counter()
                await _exchange(reader, writer, request)
                side.latencies.append(time.perf_counter() - before)
                side.kinds.append(kind)
                side.by_kind[kind] += 1
            ended.append(loop.time())

        await asyncio.gather(*(client(i, r, w) for i, (r, w) in enumerate(streams)))
        side.requests = len(side.latencies)
        # Until the last client's last answer: every request counted was answered in it.
        side.seconds = max(ended) - started
    finally:
        for _, writer in streams:
            writer.close()
    return side


def _merge(into: Side, block: Side) -> None:
    into.requests += block.requests
    into.seconds += block.seconds
    into.latencies.extend(block.latencies)
    into.kinds.extend(block.kinds)
    for kind, count in block.by_kind.items():
        into.by_kind[kind] = into.by_kind.get(kind, 0) + count


def block(
    port: int, kinds: dict[str, list[Request]], *, concurrency: int, seconds: float, seed: int
) -> Side:
    return asyncio.run(_block(port, kinds, concurrency=concurrency, seconds=seconds, seed=seed))


def _upstream_child(pictures: dict[tuple[int, int], list[str]], pace: Pace, pipe: Pipe) -> None:
    """The emulator in a process of its own; every job is slow until told "batch"."""
    loaded = {size: [Path(path).read_bytes() for path in paths] for size, paths in pictures.items()}
    with serve_upstream(job_seconds=pace.median_seconds, pictures=loaded, pace=pace) as upstream:
        upstream.emulator.slow_window = (0.0, math.inf)
        pipe.send((upstream.base_url, upstream.api_key))
        while (message := pipe.recv()) != "stop":
            if message == "batch":
                # Jobs submitted from now on take the batch's pace; earlier ones stay slow.
                upstream.emulator.slow_window = (0.0, time.time())
            pipe.send("ok")


class UpstreamProcess:
    def __init__(self, pool: Sequence[PoolImage], pace: Pace) -> None:
        pictures: dict[tuple[int, int], list[str]] = {}
        for image in pool:
            pictures.setdefault((image.width, image.height), []).append(str(image.path))
        context = multiprocessing.get_context("spawn")
        self._pipe, child_pipe = context.Pipe()
        self._process = context.Process(
            target=_upstream_child, args=(pictures, pace, child_pipe), daemon=True
        )
        self._process.start()
        if not self._pipe.poll(60):
            self._process.kill()
            raise BenchError("the emulator's process did not start")
        self.base_url, self.api_key = self._pipe.recv()

    def start_batch(self) -> None:
        self._pipe.send("batch")
        self._pipe.recv()

    def close(self) -> None:
        self._pipe.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def measure(
    work_dir: Path,
    dataset: Dataset,
    pool: Sequence[PoolImage],
    *,
    concurrencies: Sequence[int],
    rounds: int,
    seconds: float,
    batch: int,
    storing_concurrency: int = TARGET_CONCURRENCY,
    api_key_for_bare: str = "pd_bench_local",
) -> LoadRun:
    """The idle app and the bare floor at each concurrency, `rounds` blocks each in
    alternating order; then `rounds` blocks of the app while a batch of `batch` jobs is stored."""
    if not any((image.width, image.height) == (2048, 2048) for image in pool):
        raise BenchError("the load benchmark's batch needs a 2048×2048 image in the pool")
    kinds = requests(dataset)
    database = dataset.data_dir / "playground.db"
    upstream = UpstreamProcess(pool, BATCH_PACE)
    try:
        with (
            serve_app_process(
                work_dir,
                "load-bare",
                data_dir=work_dir / "load-bare",
                api_key=api_key_for_bare,
                base_url="http://127.0.0.1:9/api/v1",
                bare=True,
            ) as bare,
            serve_app_process(
                work_dir,
                "load-app",
                data_dir=dataset.data_dir,
                api_key=upstream.api_key,
                base_url=upstream.base_url,
                settings=EMULATOR_SETTINGS,
            ) as app,
        ):
            _check_answers(app, dataset)
            bare_sides = {c: Side() for c in concurrencies}
            idle_sides = {c: Side() for c in concurrencies}
            for concurrency in concurrencies:
                for number in range(rounds):
                    order = [(bare.port, BARE_REQUESTS, bare_sides), (app.port, kinds, idle_sides)]
                    for port, chosen, sides in order if number % 2 == 0 else order[::-1]:
                        _merge(
                            sides[concurrency],
                            block(
                                port, chosen, concurrency=concurrency, seconds=seconds, seed=number
                            ),
                        )
            storing, stored, fewest = _while_storing(
                app,
                upstream,
                database,
                dataset,
                kinds,
                batch=batch,
                concurrency=storing_concurrency,
                rounds=rounds,
                seconds=seconds,
            )
    finally:
        upstream.close()
    return LoadRun(
        concurrencies=tuple(concurrencies),
        bare=bare_sides,
        idle=idle_sides,
        storing=storing,
        storing_concurrency=storing_concurrency,
        batch=batch,
        stored_while_measuring=stored,
        fewest_stored_in_a_block=fewest,
    )


def _check_answers(app: AppProcess, dataset: Dataset) -> None:
    connection = Connection(app.port, token=dataset.token)
    try:
        if b'class="gallery-item"' not in connection.get_ok("/gallery"):
            raise BenchError("/gallery shows no images")
    finally:
        connection.close()


def _while_storing(
    app: AppProcess,
    upstream: UpstreamProcess,
    database: Path,
    dataset: Dataset,
    kinds: dict[str, list[Request]],
    *,
    batch: int,
    concurrency: int,
    rounds: int,
    seconds: float,
) -> tuple[Side, int, int]:
    upstream.start_batch()
    first_new = _last_job_id(database) + 1
    # As fast as the app takes them (four at a time): storing starts while they go in.
    failures = poller.submit(app.port, batch, per_second=1e6, token=dataset.token)
    if failures:
        raise BenchError(f"{len(failures)} batch submits failed, first: {failures[0]}")
    # Measured once the worker has stored its first image, while it stores the rest.
    deadline = time.monotonic() + 120
    while _stored_since(database, first_new) == 0:
        if time.monotonic() > deadline:
            raise BenchError(f"the worker stored nothing of the batch; app log:\n{app.log_tail()}")
        time.sleep(0.1)
    side = Side()
    counts = []
    for number in range(rounds):
        before = _stored_since(database, first_new)
        _merge(
            side,
            block(app.port, kinds, concurrency=concurrency, seconds=seconds, seed=100 + number),
        )
        counts.append(_stored_since(database, first_new) - before)
    return side, sum(counts), min(counts)


def _last_job_id(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        return int(connection.execute("SELECT coalesce(max(id), 0) FROM jobs").fetchone()[0])


def _stored_since(database: Path, first_id: int) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        row = connection.execute(
            "SELECT count(*) FROM jobs WHERE id >= ? AND status = 'completed'", (first_id,)
        ).fetchone()
    return int(row[0])


def report(report: Report, run: LoadRun) -> None:
    for concurrency in run.concurrencies:
        bare, idle = run.bare[concurrency], run.idle[concurrency]
        scale = (
            f"{idle.throughput:.0f} req/s against the bare app's {bare.throughput:.0f}; "
            f"{idle.requests:,} requests"
        )
        name = f"{concurrency} clients: throughput, fraction of the bare app's"
        p50 = f"{concurrency} clients: p50 in bare p50s"
        p99 = f"{concurrency} clients: p99 in bare p99s"
        p50_note = f"{idle.p50 * 1000:.1f} ms against {bare.p50 * 1000:.2f} ms"
        p99_note = f"{idle.p99 * 1000:.1f} ms against {bare.p99 * 1000:.2f} ms"
        if concurrency == TARGET_CONCURRENCY:
            report.at_least(
                SECTION, name, run.throughput_ratio(concurrency), THROUGHPUT_MIN, "×", scale
            )
            report.info(SECTION, p50, run.latency_ratio(concurrency, "p50"), "×", p50_note)
            report.at_most(
                SECTION, p99, run.latency_ratio(concurrency, "p99"), P99_MAX, "×", p99_note
            )
        else:
            report.info(SECTION, name, run.throughput_ratio(concurrency), "×", scale)
            report.info(SECTION, p50, run.latency_ratio(concurrency, "p50"), "×", p50_note)
            report.info(SECTION, p99, run.latency_ratio(concurrency, "p99"), "×", p99_note)
    c = run.storing_concurrency
    storing = run.storing
    if run.fewest_stored_in_a_block == 0:
        report.failure(
            SECTION,
            "the worker stored images in every block measured",
            f"{run.stored_while_measuring} jobs stored in all; none in one block",
        )
    report.at_most(
        SECTION,
        f"{c} clients while the worker stores: p99 in idle p99s",
        run.storing_p99_ratio,
        STORING_P99_MAX,
        "×",
        f"{storing.p99 * 1000:.1f} ms against {run.idle[c].p99 * 1000:.1f} ms; "
        f"{run.stored_while_measuring} of a {run.batch:,}-job batch stored meanwhile",
    )
    # Where the tail comes from: a submit takes several turns of the event loop (the row,
    # the audit line, the upstream's answer, the row again), each behind every request queued.
    for kind in MIX:
        idle_kind, storing_kind = run.idle[c].of_kind(kind), storing.of_kind(kind)
        if idle_kind and storing_kind:
            report.info(
                SECTION,
                f"{c} clients, {kind} ({MIX[kind]:.0%} of requests): p99",
                percentile(idle_kind, 0.99) * 1000,
                "ms",
                f"p50 {percentile(idle_kind, 0.5) * 1000:.1f} ms; while storing "
                f"p99 {percentile(storing_kind, 0.99) * 1000:.1f} ms",
            )
    report.info(
        SECTION,
        f"{c} clients while the worker stores: throughput, fraction of idle",
        storing.throughput / run.idle[c].throughput,
        "×",
        f"p50 {storing.p50 * 1000:.1f} ms against {run.idle[c].p50 * 1000:.1f} ms idle",
    )
