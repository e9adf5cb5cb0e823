"""`python -m bench`: run the benchmarks, print every figure beside its target.

    python -m bench            the full run (N = 1,000 and 100,000; 1,000 jobs in flight)
    python -m bench --quick    the short run CI does (smaller N, fewer jobs, same targets)
    python -m bench --only databases   the same gallery on SQLite and PostgreSQL, side by side
    python -m bench --only load        many clients at once, idle and while the worker stores
    python -m bench --only serving     images from SQLite, PostgreSQL (a throwaway server) and
                                       S3 (moto on loopback) against FileResponse; the short
                                       run serves from SQLite alone unless asked by --only
    python -m bench --only storing     CPU of storing an image, against decode + thumbnail + hash
    python -m bench --only browser     bytes, LCP and click to image in Chromium (demo mode)
    python -m bench --large 1000000 --data-dir DIR
                               the headline run: a million jobs, generated into DIR once
                               (1.9 GB) and reused by later runs
    python -m bench --only gallery --large 1000000 --database postgresql
                               the gallery suite on a throwaway PostgreSQL server
    python -m bench generate DIR --jobs N   fill a data dir, to try the gallery by hand

Exits 2 when a benchmark could not run, 1 when a target is missed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import psutil

from bench import browser, databases, gallery, load, memory, poller, serving, storing
from bench.generate import TEAM, Dataset, generate, make_pool, reuse_or_generate
from bench.imagery import PoolImage
from bench.profiles import FULL, QUICK, Profile
from bench.report import Report
from bench.server import serve_app_process
from tests.support.postgres import PostgresCluster

# Never contacted: the gallery and serving apps have no unfinished jobs to poll.
IDLE_UPSTREAM = "http://127.0.0.1:9/api/v1"
BENCH_KEY = "pd_bench_local"
SUITES = ("gallery", "serving", "load", "storing", "poller", "memory", "browser", "databases")
# Starting a PostgreSQL server and filling two galleries costs more than the short run
# can spare: `--quick --only databases` runs it at the quick size. The browser's suite
# needs Chromium, which CI's machine need not have: `--only browser` runs it.
QUICK_SUITES = ("gallery", "serving", "load", "storing", "poller", "memory")
DATABASES = ("sqlite", "postgresql")
# What runs on PostgreSQL with `--database postgresql`: the gallery suite, and the
# databases suite (both sides, as always). The others measure the image files, the
# worker and the browser, whose cost the database does not set.
POSTGRESQL_SUITES = ("gallery", "databases")


def run(
    profile: Profile,
    suites: Sequence[str],
    work_dir: Path,
    report: Report,
    *,
    keep_dir: Path | None = None,
    database: str = "sqlite",
) -> None:
    """Run `suites`; with `keep_dir`, the large dataset is kept there and reused. With
    `database="postgresql"`, the gallery suite's galleries are generated into databases of
    one throwaway PostgreSQL server, served from there, and the server removed after."""
    with contextlib.ExitStack() as stack:
        cluster = (
            stack.enter_context(databases.throwaway_cluster()) if database == "postgresql" else None
        )
        _run(profile, suites, work_dir, report, keep_dir=keep_dir, cluster=cluster)


def _run(
    profile: Profile,
    suites: Sequence[str],
    work_dir: Path,
    report: Report,
    *,
    keep_dir: Path | None,
    cluster: PostgresCluster | None,
) -> None:
    report.context.update(
        database="postgresql" if cluster else "sqlite",
        profile={**asdict(profile), "pace": asdict(profile.pace)},
        machine={
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "python": platform.python_version(),
            "load_average": [round(x, 1) for x in psutil.getloadavg()],
        },
    )
    needs_data = {"gallery", "serving", "load", "storing", "databases"} & set(suites)
    pool: list[PoolImage] = []
    datasets: dict[int, Dataset] = {}
    if needs_data:
        report.section("generated data")
        started = time.perf_counter()
        pool = make_pool(work_dir / "pool", count=profile.pool_images)
        report.info(
            "data", f"{len(pool)} distinct full-size images", time.perf_counter() - started, "s"
        )
        sizes = [profile.small_jobs] if {"gallery", "serving", "load"} & set(suites) else []
        sizes += [profile.large_jobs] if "gallery" in suites else []
        for size in sizes:
            started = time.perf_counter()
            if cluster is not None:
                url = cluster.create_database(f"bench_gallery_{size}")
                dataset = generate(
                    work_dir / f"data-{size}", jobs=size, pool=pool, database_url=url
                )
                databases.check_ready_for_queries(url)
            elif keep_dir is not None and size == profile.large_jobs:
                dataset = reuse_or_generate(keep_dir / f"data-{size}", jobs=size, pool=pool)
            else:
                dataset = generate(work_dir / f"data-{size}", jobs=size, pool=pool)
            datasets[size] = dataset
            kept = not dataset.seconds
            into = " into PostgreSQL" if cluster is not None else ""
            report.info(
                "data",
                f"N={size:,} jobs ({dataset.images:,} images) "
                + (
                    "kept from an earlier run, brought up to date in"
                    if kept
                    else f"generated{into} in"
                ),
                time.perf_counter() - started if kept else dataset.seconds,
                "s",
            )

    if "serving" in suites:
        size = profile.small_jobs
        with serve_app_process(
            work_dir,
            f"app-serving-{size}",
            data_dir=datasets[size].data_dir,
            api_key=BENCH_KEY,
            base_url=IDLE_UPSTREAM,
            files_dir=work_dir / "pool",
        ) as app:
            report.section(f"image serving (N={size:,})")
            serving.measure(
                report,
                app,
                serving.Store("SQLite", datasets[size]),
                pool,
                rounds=profile.serving_rounds,
                full_per_round=profile.full_per_round,
                thumbnails_per_round=profile.thumbnails_per_round,
            )
        if profile.serving_stores:
            serving.measure_stores(
                report,
                work_dir / "stores",
                pool,
                api_key=BENCH_KEY,
                base_url=IDLE_UPSTREAM,
                rounds=profile.serving_rounds,
                full_per_round=profile.full_per_round,
                thumbnails_per_round=profile.thumbnails_per_round,
            )
    if "gallery" in suites:
        measured = gallery.serve_and_measure(
            work_dir,
            datasets,
            api_key=BENCH_KEY,
            base_url=IDLE_UPSTREAM,
            rounds=profile.latency_rounds,
            warmup=profile.latency_warmup,
        )
        on = " on PostgreSQL" if cluster is not None else ""
        report.section(
            f"gallery latency{on} (p50 in bare-framework floors, sizes in the same rounds)"
        )
        gallery.report(report, measured, section=gallery.SECTION + on)

    # After the gallery: the batch it stores adds jobs to the small gallery.
    if "load" in suites:
        size = profile.small_jobs
        report.section(
            f"load (N={size:,}): clients at once against the bare app at as many, "
            f"then while the worker stores a {profile.load_batch:,}-job batch"
        )
        load.report(
            report,
            load.measure(
                work_dir / "load",
                datasets[size],
                pool,
                concurrencies=profile.load_concurrencies,
                rounds=profile.load_rounds,
                seconds=profile.load_seconds,
                batch=profile.load_batch,
            ),
        )

    if "storing" in suites:
        image = next(image for image in pool if (image.width, image.height) == (2048, 2048))
        report.section("storing one image: CPU of the worker's path, in floors")
        storing.report(
            report, storing.measure(work_dir / "storing", image, rounds=profile.storing_rounds)
        )
    if "poller" in suites:
        pace = profile.pace
        for callbacks in (True, False):
            report.section(
                f"poller, {'with callbacks' if callbacks else 'polling only'} "
                f"({profile.poller_jobs:,} jobs, {pace.median_seconds:g} s ×/÷{pace.spread:g} "
                f"each upstream, a {pace.slow_factor:g}× slow spell)"
            )
            poller.measure(
                report,
                work_dir / "poller",
                jobs=profile.poller_jobs,
                pace=pace,
                submit_per_second=profile.poller_submit_per_second,
                history=profile.poller_history,
                callbacks=callbacks,
            )
    if "memory" in suites:
        report.section("download memory (one 4096×4096 PNG)")
        memory.measure(report, work_dir / "memory")
    if "browser" in suites:
        report.section("the browser's cost (Chromium, demo mode)")
        browser.report(report, browser.measure(work_dir / "browser", rounds=profile.browser_rounds))
    # Last: a machine without PostgreSQL's binaries misses this one, after all the others ran.
    if "databases" in suites:
        report.section(
            f"{databases.SECTION}: the same gallery (N={profile.database_jobs:,}), the same rounds"
        )
        databases.report(
            report,
            databases.measure_on_a_new_cluster(
                work_dir / "databases",
                pool,
                jobs=profile.database_jobs,
                rounds=profile.database_rounds,
                warmup=profile.database_warmup,
                api_key=BENCH_KEY,
                base_url=IDLE_UPSTREAM,
            ),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short run CI does")
    parser.add_argument(
        "--only",
        help=f"comma-separated subset of {','.join(SUITES)} "
        f"(default: all; with --quick, all but databases; with --database postgresql, gallery)",
    )
    parser.add_argument("--work-dir", type=Path, help="where data dirs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir afterwards")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--large", type=int, help="the large gallery's N (default: the profile's)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the large gallery here and reuse it in later runs (not deleted)",
    )
    parser.add_argument(
        "--database",
        choices=DATABASES,
        default="sqlite",
        help="where the gallery suite's galleries live (default: sqlite); postgresql starts "
        "a throwaway server for the run",
    )
    commands = parser.add_subparsers(dest="command")
    generate_parser = commands.add_parser("generate", help="fill a data dir with synthetic jobs")
    generate_parser.add_argument("data_dir", type=Path)
    generate_parser.add_argument("--jobs", type=int, default=1_000)
    generate_parser.add_argument("--pool", type=int, default=4, help="distinct full-size images")
    generate_parser.add_argument(
        "--single", action="store_true", help="one person, no sign-in (default: a team of five)"
    )
    args = parser.parse_args(argv)

    if args.command == "generate":
        return _generate(args.data_dir, jobs=args.jobs, pool_images=args.pool, team=not args.single)

    profile = QUICK if args.quick else FULL
    postgresql = args.database == "postgresql"
    default = ("gallery",) if postgresql else QUICK_SUITES if args.quick else SUITES
    only = args.only or ",".join(default)
    suites = [s.strip() for s in only.split(",") if s.strip()]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}")
    if postgresql:
        elsewhere = [suite for suite in suites if suite not in POSTGRESQL_SUITES]
        if elsewhere:
            parser.error(
                f"--database postgresql runs only {' and '.join(POSTGRESQL_SUITES)}, "
                f"not {', '.join(elsewhere)}"
            )
        if args.data_dir:
            parser.error(
                "--data-dir keeps a SQLite gallery; "
                "--database postgresql generates its own each run"
            )
    if args.only and "serving" in suites:
        # Asked for by name: every store, whatever the run's length.
        profile = replace(profile, serving_stores=True)
    if args.large:
        if args.large <= profile.small_jobs:
            parser.error(f"--large must be more than the small N ({profile.small_jobs:,})")
        profile = replace(profile, name=f"{profile.name}, N={args.large:,}", large_jobs=args.large)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="seedream-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    started = time.perf_counter()
    print(f"Benchmarks, {profile.name} run, in {work_dir}", flush=True)
    try:
        _guarded(
            report,
            lambda: run(
                profile, suites, work_dir, report, keep_dir=args.data_dir, database=args.database
            ),
        )
    finally:
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    report.context["seconds"] = round(elapsed, 1)
    report.summary()
    print(f"{profile.name} run took {elapsed:.0f} s")
    if args.json:
        report.write_json(args.json)
    return 2 if report.broken else 1 if report.misses else 0


def _guarded(report: Report, body: Callable[[], None]) -> None:
    try:
        body()
    except Exception as exc:  # a benchmark that cannot run is a miss, with its reason
        traceback.print_exc()
        report.failure("run", "the benchmarks ran to the end", f"{type(exc).__name__}: {exc}")


def _generate(data_dir: Path, *, jobs: int, pool_images: int, team: bool) -> int:
    pool = make_pool(data_dir / "bench-pool", count=pool_images)
    dataset = generate(data_dir, jobs=jobs, pool=pool, team=team)
    shutil.rmtree(data_dir / "bench-pool")
    print(
        f"{dataset.jobs:,} jobs with {dataset.images:,} images in {data_dir} "
        f"({dataset.seconds:.1f} s). Serve it: PLAYGROUND_DATA_DIR={data_dir} "
        "seedream-playground serve"
    )
    if dataset.token:
        print(
            f"Made by a team ({', '.join(TEAM)}); API token of {TEAM[0]}: {dataset.token}\n"
            f"To sign in from a browser: seedream-playground users set-password {TEAM[0]}"
        )
    return 0
