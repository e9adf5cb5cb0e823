"""The best any poller can do against an upstream whose job durations vary.

PixelDojo says only "running" or "done"; a poller learns that a job has ended by asking.
Knowing the distribution of durations exactly (as no real poller does), the schedule of
polls that finds jobs done soonest for a given number of polls a job on average is a
shortest-path problem over a time grid (dynamic programming); its delays are a bound no
poller can beat with as many polls. The poller benchmark reports its delays beside it:
with durations spread ×/÷1.5 around 60 s, finding half the jobs within 2 s of their end
takes about nine polls a job, and with three the best median delay is about 6 s.

Durations are lognormal; everything scales with the median, so the work is done in
units of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

# Time grid, in medians: far enough that no job is left beyond it, fine enough to matter.
HORIZON = 5.0
GRID = 150


@dataclass(frozen=True)
class Bound:
    polls: float  # mean polls a job, the one that finds it done included
    p50_seconds: float
    p95_seconds: float


def _cdf(
    spread: float, grid: int, horizon: float, slow_share: float = 0.0, slow_factor: float = 1.0
) -> list[float]:
    """P(a job has ended by each grid point): lognormal, or a mixture of it with the same
    durations `slow_factor` times as long for `slow_share` of the jobs (a slow spell)."""
    sigma = math.log(spread)
    normal = NormalDist()
    step = horizon / grid

    def ended(t: float) -> float:
        steady = normal.cdf(math.log(t) / sigma)
        slow = normal.cdf(math.log(t / slow_factor) / sigma)
        return (1.0 - slow_share) * steady + slow_share * slow

    return [0.0] + [ended(k * step) for k in range(1, grid + 1)]


def _solve(cdf: list[float], lag: int, price: float) -> tuple[float, float]:
    """The schedule minimising polls + price × P(delay > lag grid steps):
    (mean polls, P(delay > lag)). Each poll at t after one at s costs P(still running at s);
    jobs ending in (s, t - lag) are found late."""
    last = len(cdf) - 1
    best = [0.0] * (last + 1)
    late = [0.0] * (last + 1)
    polls = [0.0] * (last + 1)
    for s in range(last - 1, -1, -1):
        running = 1.0 - cdf[s]
        choice = (math.inf, 0.0, 0.0)
        for t in range(s + 1, last + 1):
            found_late = max(0.0, cdf[t - lag] - cdf[s]) if t - lag > s else 0.0
            cost = running + price * found_late + best[t]
            if cost < choice[0]:
                choice = (cost, running + polls[t], found_late + late[t])
        best[s], polls[s], late[s] = choice
    return polls[0], late[0]


def _least_late(cdf: list[float], lag: int, budget: float) -> float:
    """The smallest P(delay > lag) any schedule reaches with at most `budget` polls a job."""
    low, high = 0.0, 1e4
    found = 1.0
    for _ in range(30):
        price = math.sqrt(low * high) if low else high / 2**15
        polls, late = _solve(cdf, lag, price)
        if polls <= budget:
            found = min(found, late)
            low = price
        else:
            high = price
        if high / max(low, 1e-9) < 1.05:
            break
    return found


def best_delays(
    *,
    median_seconds: float,
    spread: float,
    polls: float,
    grid: int | None = None,
    slow_share: float = 0.0,
    slow_factor: float = 1.0,
) -> Bound:
    """The shortest p50 and p95 delays (end of job to the poll that finds it done) any
    schedule of `polls` polls a job on average reaches for these durations: with
    `slow_share` of the jobs `slow_factor` times as long, a schedule that knows that share
    in advance (as no poller does: a slow spell is a surprise)."""
    stretch = max(1.0, slow_factor if slow_share else 1.0)
    horizon = HORIZON * stretch
    # As fine a grid, in seconds, as for the steady pace alone.
    grid = grid or round(GRID * stretch)
    cdf = _cdf(spread, grid, horizon, slow_share, slow_factor)
    seconds_per_step = horizon * median_seconds / grid

    def quantile(share: float) -> float:
        low, high = 0, grid
        while low < high:  # the smallest lag whose P(delay > lag) is within 1 - share
            lag = (low + high) // 2
            if _least_late(cdf, lag, polls) <= 1.0 - share:
                high = lag
            else:
                low = lag + 1
        return low * seconds_per_step

    return Bound(polls=polls, p50_seconds=quantile(0.5), p95_seconds=quantile(0.95))
