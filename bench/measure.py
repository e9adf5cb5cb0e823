"""Timing over HTTP with as little client in the way as possible.

`http.client` on one keep-alive connection: far less per-request overhead than a
full-featured client, so the figures are the server's. Requests to the things
being compared are interleaved (shuffled within each round), so drift on a
shared machine lands on both sides of every ratio alike.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


class BenchError(RuntimeError):
    """The thing measured did not answer as it must: a wrong answer is no figure at all."""


class Connection:
    """One keep-alive connection; with `token`, every request is signed in with it."""

    def __init__(self, port: int, host: str = "127.0.0.1", token: str | None = None) -> None:
        self._connection = http.client.HTTPConnection(host, port, timeout=60)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str) -> tuple[int, bytes]:
        self._connection.request("GET", path, headers=self._headers)
        response = self._connection.getresponse()
        return response.status, response.read()

    def get_ok(self, path: str) -> bytes:
        status, body = self.get(path)
        if status != 200:
            raise BenchError(f"GET {path} answered {status}: {body[:200]!r}")
        return body

    def location(self, path: str, status: int = 307) -> str:
        """Where a GET of `path` redirects to (it must answer `status`)."""
        self._connection.request("GET", path, headers=self._headers)
        response = self._connection.getresponse()
        response.read()
        where = response.getheader("Location")
        if response.status != status or where is None:
            raise BenchError(f"GET {path} answered {response.status}, not a {status} redirect")
        return where

    def post_json(self, path: str, payload: object) -> tuple[int, bytes]:
        body = json.dumps(payload).encode()
        self._connection.request(
            "POST", path, body=body, headers={**self._headers, "Content-Type": "application/json"}
        )
        response = self._connection.getresponse()
        return response.status, response.read()

    def timed(self, path: str, status: int = 200) -> float:
        """Seconds for one GET of `path`, answered `status` (a redirect is an answer too)."""
        try:
            return self._timed(path, status)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the connection while it sat idle past its keep-alive timeout
            # (uvicorn's is 5 s; a slow probe elsewhere in the round can leave it idle that
            # long). Connected again before the clock starts, so the figure is one request's.
            self._connection.close()
            self._connection.connect()
            return self._timed(path, status)

    def _timed(self, path: str, status: int) -> float:
        started = time.perf_counter()
        self._connection.request("GET", path, headers=self._headers)
        response = self._connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.status != status:
            raise BenchError(f"GET {path} answered {response.status}, not {status}")
        return elapsed

    def close(self) -> None:
        self._connection.close()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def interleaved_latencies(
    targets: dict[str, tuple[Connection, str]], *, rounds: int, warmup: int, seed: int = 1
) -> dict[str, list[float]]:
    """Each round requests every (connection, path) once, in a shuffled order; returns
    seconds per request by name. Connections may lead to different servers: the floors
    and the app are measured in the same rounds."""
    timers = {name: timer(connection, path) for name, (connection, path) in targets.items()}
    return interleaved_timings(timers, rounds=rounds, warmup=warmup, seed=seed)


def interleaved_timings(
    timers: dict[str, Callable[[], float]], *, rounds: int, warmup: int, seed: int = 1
) -> dict[str, list[float]]:
    """Each round calls every timer once (each returns the seconds it measured), in a
    shuffled order: the timers may reach different servers, compared in the same rounds."""
    rng = random.Random(seed)
    names = list(timers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(warmup + rounds):
        rng.shuffle(names)
        for name in names:
            elapsed = timers[name]()
            if round_number >= warmup:
                samples[name].append(elapsed)
    return samples


def timer(connection: Connection, path: str) -> Callable[[], float]:
    """A timer for `interleaved_timings`: one GET of `path` on `connection`."""
    return lambda: connection.timed(path)


@dataclass(frozen=True)
class Throughput:
    requests_per_second: float
    bytes_per_second: float


@dataclass(frozen=True)
class Comparison:
    """Throughput of `subject` against `baseline`, block by block in alternating order."""

    ratio: float  # median over rounds of subject throughput / baseline throughput
    ratios: list[float]
    subject: Throughput
    baseline: Throughput


def compare_throughput(
    connection: Connection,
    *,
    subject: str,
    baseline: str,
    body_bytes: int,
    rounds: int,
    per_round: int,
    subject_status: int = 200,
) -> Comparison:
    """`subject_status`: what the subject answers (307 for a redirect to the bytes)."""
    ratios: list[float] = []
    totals = {subject: 0.0, baseline: 0.0}
    statuses = {subject: subject_status, baseline: 200}
    for path in (subject, baseline):  # warm both paths up
        for _ in range(max(2, per_round // 4)):
            connection.timed(path, statuses[path])
    for round_number in range(rounds):
        order = (subject, baseline) if round_number % 2 == 0 else (baseline, subject)
        spent: dict[str, float] = {}
        for path in order:
            started = time.perf_counter()
            for _ in range(per_round):
                connection.timed(path, statuses[path])
            spent[path] = time.perf_counter() - started
            totals[path] += spent[path]
        ratios.append(spent[baseline] / spent[subject])
    count = rounds * per_round

    def throughput(path: str) -> Throughput:
        return Throughput(count / totals[path], count * body_bytes / totals[path])

    return Comparison(
        ratio=statistics.median(ratios),
        ratios=ratios,
        subject=throughput(subject),
        baseline=throughput(baseline),
    )
