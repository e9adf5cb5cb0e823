"""The benchmark suite's own parts: generated data the app serves as its own, honest verdicts."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
import pytest
from PIL import Image

from app.emulator import EmulatedJob, EmulatorConfig
from bench import browser, cli, databases, gallery, load, serving, storing
from bench.bound import best_delays
from bench.generate import DATASET_FILE, TEAM, Dataset, generate, make_pool, reuse_or_generate
from bench.imagery import PoolImage, with_text_chunk
from bench.measure import percentile
from bench.profiles import QUICK, Profile
from bench.report import Report
from bench.server import bare_app
from bench.upstream import BenchEmulator, Pace
from tests.support.apps import make_settings, serve_app
from tests.support.browser import chromium_path
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.postgres import PostgresCluster, find_bin_dir
from tests.support.s3server import AWS_ENVIRONMENT


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> list[PoolImage]:
    """One full-size picture, made once: rendering it is most of what generating costs."""
    return make_pool(tmp_path_factory.mktemp("pool"), count=1)


def test_generated_data_is_served_by_the_app_like_its_own(
    tmp_path: Path, emulator: RunningEmulator, pool: list[PoolImage]
) -> None:
    dataset = generate(tmp_path / "data", jobs=60, pool=pool)
    assert dataset.images >= 60 * 0.9  # a few jobs fail or expire; some have several images
    assert dataset.token is not None
    signed_in = {"Authorization": f"Bearer {dataset.token}"}
    with serve_app(make_settings(tmp_path / "data", emulator)) as app:
        assert app.client.get("/api/jobs").status_code == 401, "a team's data needs sign-in"
        page = app.client.get("/api/jobs", headers=signed_in).json()
        newest = page["items"][0]
        assert newest["id"] == dataset.last_job_id
        assert newest["author"] == TEAM[dataset.last_job_id % len(TEAM)]
        assert page["next_cursor"] is not None
        image = next(img for job in page["items"] for img in job["images"])
        stored = app.client.get(image["url"], headers=signed_in).content
        assert hashlib.sha256(stored).hexdigest() == pool[0].sha256 == image["sha256"]
        thumbnail = app.client.get(image["thumbnail_url"], headers=signed_in)
        with Image.open(io.BytesIO(thumbnail.content)) as preview:
            assert preview.format == "WEBP"
            assert preview.size == (pool[0].thumbnail_width, pool[0].thumbnail_height)
        for job in page["items"]:
            assert bool(job["images"]) == (job["status"] == "completed"), job
        cursor = dataset.job_cursor(0.5)
        deep = app.client.get(f"/api/gallery?cursor={cursor}.0", headers=signed_in).json()
        assert deep["items"] and all(item["job_id"] < cursor for item in deep["items"])
        found = app.client.get("/api/gallery?q=lighthouse", headers=signed_in).json()["items"]
        assert found, "prompts are searchable: the search index took the generated rows"
        assert all("lighthouse" in item["job"]["parameters"]["prompt"] for item in found)


def test_a_text_chunk_makes_other_bytes_of_the_same_picture() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    original = buffer.getvalue()
    tagged = with_text_chunk(original, "job-1")
    assert tagged != original
    with Image.open(io.BytesIO(tagged)) as image:
        image.load()
        assert image.info["Comment"] == "job-1"
        assert image.getpixel((3, 3)) == (10, 20, 30)


def test_a_missed_target_is_a_miss_and_a_met_one_is_not() -> None:
    report = Report()
    report.at_most("s", "fast enough", 2.0, 3.0, "×")
    report.at_least("s", "throughput", 0.4, 0.5, "×")
    report.info("s", "for scale", 1.0, "ms")
    assert [figure.name for figure in report.misses] == ["throughput"]
    assert not report.broken, "a slow figure is a miss, not a benchmark that could not run"
    report.failure("s", "every job completes", "3 of 4 completed")
    assert [figure.name for figure in report.broken] == ["every job completes"]


def test_sqlite_and_postgresql_galleries_answer_alike(
    tmp_path: Path, postgres_database: DatabaseChoice, pool: list[PoolImage]
) -> None:
    postgres_url = postgres_database.url
    assert postgres_url is not None
    run = databases.measure(
        tmp_path / "work",
        pool,
        postgres_url=postgres_url,
        jobs=120,
        rounds=2,
        warmup=0,
        api_key="pd_bench_local",
        base_url="http://127.0.0.1:9/api/v1",
    )
    # The PostgreSQL gallery is PostgreSQL's: rows and image bytes, not the data dir's file.
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT count(*) FROM jobs").fetchone() == (120,)
        for table in ("blobs", "blob_thumbnails"):
            assert connection.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
    assert not (tmp_path / "work" / "gallery-postgresql" / "playground.db").exists()

    sqlite, postgresql = run.answers["sqlite"], run.answers["postgresql"]
    assert sqlite == postgresql
    first = sqlite["/gallery first page"]
    assert isinstance(first, list) and first[0] == run.images, "the newest image comes first"
    for probe in ("deep page (keyset)", "search, one word", "search, a phrase"):
        found = sqlite[f"/gallery {probe}"]
        assert isinstance(found, list) and found and found != first, probe
    assert sqlite["full-size image"] == pool[0].sha256
    for kind in databases.DATABASES:
        assert run.latencies[kind]["thumbnail"].p50 > 0
    report = Report()
    databases.report(report, run)
    # Every probe is reported at p50 and p99 as the ratio the run measured, with both times.
    ratios = {figure.name: figure for figure in report.figures if figure.unit == "×"}
    probes = list(run.latencies["sqlite"])
    assert len(probes) >= 5
    assert set(ratios) == {
        f"{probe}: {which} PostgreSQL / SQLite" for probe in probes for which in ("p50", "p99")
    }
    for probe in probes:
        figure = ratios[f"{probe}: p50 PostgreSQL / SQLite"]
        assert figure.value is not None and figure.value > 0
        assert figure.value == pytest.approx(run.ratio(probe, "p50"))
        sqlite_ms = run.latencies["sqlite"][probe].p50 * 1000
        assert f"SQLite {sqlite_ms:.2f} ms" in figure.note


@pytest.mark.postgres
def test_the_gallery_suite_runs_on_a_postgresql_server_of_its_own(
    tmp_path: Path,
    pool: list[PoolImage],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if find_bin_dir() is None:
        message = "PostgreSQL server binaries not found (apt install postgresql)"
        if os.environ.get("PLAYGROUND_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    started: list[PostgresCluster] = []
    start_new = PostgresCluster.start_new

    def recorded(bin_dir: Path) -> PostgresCluster:
        started.append(start_new(bin_dir))
        return started[-1]

    monkeypatch.setattr(PostgresCluster, "start_new", staticmethod(recorded))
    monkeypatch.setattr(cli, "make_pool", lambda directory, count: pool)
    # The smallest sizes whose deep pages and searches still fill a page.
    profile = replace(QUICK, small_jobs=1_000, large_jobs=1_300, latency_rounds=6, latency_warmup=1)
    report = Report()
    cli.run(profile, ["gallery"], tmp_path / "work", report, database="postgresql")

    assert len(started) == 1, "one server for the run's galleries"
    assert not started[0].root.exists(), "the server is stopped and its files removed"
    for size in (1_000, 1_300):
        data_dir = tmp_path / "work" / f"data-{size}"
        assert not (data_dir / "playground.db").exists(), "rows and images live in PostgreSQL"
    printed = capsys.readouterr().out
    assert "generated into PostgreSQL in" in printed
    assert "\n== gallery latency on PostgreSQL (p50 in bare-framework floors" in printed
    figures = {f.name: f for f in report.figures if f.section == "gallery latency on PostgreSQL"}
    # The same probes, figures and targets as on SQLite.
    for probe in gallery.probes(Dataset(tmp_path, 1, 1, 10, 10, 0.0)):
        large = figures[f"{probe.name} N=1,300: p50 in bare floors"]
        assert large.value is not None and large.value > 0, probe.name
        assert large.target == f"≤ {probe.target:.2f}×" and large.passed is not None
        assert f"{probe.name} N=1,300: p50 in bare floors" in printed
        assert f"{probe.name} growth N=1,000 → 1,300 (p50)" in figures
    assert not report.broken


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (
            ["--only", "gallery,load"],
            "--database postgresql runs only gallery and databases, not load",
        ),
        (
            ["--data-dir", "kept"],
            "--data-dir keeps a SQLite gallery; --database postgresql generates its own each run",
        ),
    ],
)
def test_what_does_not_run_on_postgresql_is_refused_in_one_line(
    arguments: list[str], refusal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--database", "postgresql", *arguments])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(refusal)


def test_a_generated_gallery_is_kept_and_reused(tmp_path: Path, pool: list[PoolImage]) -> None:
    first = reuse_or_generate(tmp_path / "kept", jobs=12, pool=pool)
    assert first.seconds > 0 and first.token
    again = reuse_or_generate(tmp_path / "kept", jobs=12, pool=pool)
    assert again == replace(first, seconds=0.0), "the same gallery, token included, not redone"
    (tmp_path / "kept" / DATASET_FILE).unlink()
    with pytest.raises(SystemExit, match="already holds jobs"):
        reuse_or_generate(tmp_path / "kept", jobs=12, pool=pool)


def test_no_schedule_finds_varying_jobs_done_soon_with_few_polls() -> None:
    # Coarse, to stay quick: the bound's shape, not its last decimal.
    few = best_delays(median_seconds=60.0, spread=1.5, polls=3.0, grid=100)
    many = best_delays(median_seconds=60.0, spread=1.5, polls=9.0, grid=100)
    assert many.p50_seconds < few.p50_seconds and many.p95_seconds < few.p95_seconds
    assert few.p50_seconds >= 4.0, "with three polls a job, a 2 s median delay is out of reach"
    alike = best_delays(median_seconds=60.0, spread=1.0001, polls=1.5, grid=100)
    assert alike.p95_seconds <= 3.0, "jobs that all take as long are found at once"
    # A slow spell for a third of the jobs, even known in advance, costs any schedule time.
    spell = best_delays(
        median_seconds=60.0, spread=1.5, polls=3.0, grid=150, slow_share=0.3, slow_factor=2.0
    )
    assert spell.p50_seconds > few.p50_seconds and spell.p95_seconds > few.p95_seconds


def test_the_upstream_pace_varies_by_job_and_slows_in_its_spell() -> None:
    pace = Pace(median_seconds=60.0, spread=1.5, slow_factor=2.0)
    emulator = BenchEmulator(EmulatorConfig(job_seconds=60.0), pace=pace)
    now = time.time()

    def job(number: int, created_at: float) -> EmulatedJob:
        return EmulatedJob(
            job_id=f"job_{number}",
            api_key="pd_x",
            model="seedream-4",
            params={},
            seeds=[1],
            width=8,
            height=8,
            created_at=created_at,
            expires_at=created_at + 3600,
            credit_cost=1.0,
            will_fail=False,
        )

    steady = sorted(emulator.job_seconds(job(n, now)) for n in range(400))
    assert 50 < steady[200] < 70, "a median of about a minute"
    assert steady[0] < 40 and steady[-1] > 90, "spread ×/÷1.5"
    assert emulator.job_seconds(job(7, now)) == emulator.job_seconds(job(7, now + 99)), "drawn once"
    emulator.slow_window = (now + 10, now + 20)
    fresh = BenchEmulator(EmulatorConfig(job_seconds=60.0), pace=pace)
    fresh.slow_window = emulator.slow_window
    assert fresh.job_seconds(job(7, now + 15)) == pytest.approx(
        2 * emulator.job_seconds(job(7, now))
    )
    assert fresh.job_seconds(job(8, now + 25)) == pytest.approx(emulator.job_seconds(job(8, now)))


@pytest.mark.anyio
async def test_the_bare_floor_is_one_route_answering_as_the_app_does() -> None:
    transport = httpx.ASGITransport(app=bare_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.get("/healthz")
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        assert (await client.get("/api/jobs")).status_code == 404


def test_the_load_figures_are_the_ratios_of_what_the_clients_measured(
    tmp_path: Path, pool: list[PoolImage]
) -> None:
    dataset = generate(tmp_path / "data", jobs=60, pool=pool)
    jobs_before = dataset.last_job_id
    run = load.measure(
        tmp_path / "work",
        dataset,
        pool,
        concurrencies=(1, 3),
        rounds=1,
        seconds=0.3,
        batch=3,
        storing_concurrency=3,
    )
    for concurrency in (1, 3):
        bare, idle = run.bare[concurrency], run.idle[concurrency]
        assert set(bare.by_kind) == {"floor"}, "the bare app is asked its one route only"
        assert set(idle.by_kind) == set(load.MIX) and idle.by_kind["gallery"] > 0
        for side in (bare, idle):
            assert side.requests == len(side.latencies) == sum(side.by_kind.values()) > 0
            assert 0 < side.seconds < 5
    for side in (run.storing, *run.idle.values()):
        assert set(side.by_kind) == set(load.MIX)
    report = Report()
    load.report(report, run)
    figures = {figure.name: figure.value for figure in report.figures}
    for concurrency in (1, 3):
        bare, idle = run.bare[concurrency], run.idle[concurrency]
        assert figures[
            f"{concurrency} clients: throughput, fraction of the bare app's"
        ] == pytest.approx((idle.requests / idle.seconds) / (bare.requests / bare.seconds))
        for name, share in (("p50", 0.5), ("p99", 0.99)):
            assert figures[f"{concurrency} clients: {name} in bare {name}s"] == pytest.approx(
                percentile(idle.latencies, share) / percentile(bare.latencies, share)
            )
    assert figures["3 clients while the worker stores: p99 in idle p99s"] == pytest.approx(
        percentile(run.storing.latencies, 0.99) / percentile(run.idle[3].latencies, 0.99)
    )
    # The batch went in through the app, and the worker stored from it before the clock ran.
    with sqlite3.connect(dataset.data_dir / "playground.db") as connection:
        new, completed = connection.execute(
            "SELECT count(*), sum(status = 'completed') FROM jobs WHERE id > ?", (jobs_before,)
        ).fetchone()
    assert new >= run.batch + run.idle[1].by_kind["submit"] + run.idle[3].by_kind["submit"]
    assert completed >= 1


def test_the_storing_ratio_is_of_cpu_measured_on_images_really_stored(
    tmp_path: Path, pool: list[PoolImage]
) -> None:
    run = storing.measure(tmp_path, pool[0], rounds=3, warmup=1)
    assert len(run.store_cpu) == len(run.floor_cpu) == 3
    assert all(seconds > 0 for seconds in run.store_cpu + run.floor_cpu)
    assert run.stored == 4, "each round stored bytes of its own, warm-up included"
    report = Report()
    storing.report(report, run)
    (figure,) = report.figures
    assert figure.value == pytest.approx(sorted(run.store_cpu)[1] / sorted(run.floor_cpu)[1]), (
        "the ratio of the medians"
    )
    data = with_text_chunk(pool[0].path.read_bytes(), "same bytes")
    assert storing.floor_one(data) == hashlib.sha256(data).hexdigest()


@pytest.mark.browser
def test_the_browser_figures_are_what_chromium_measured(tmp_path: Path) -> None:
    if chromium_path() is None:
        pytest.skip("the browser's benchmark needs Debian's chromium")
    run = browser.measure(tmp_path, job_seconds=0.5, rounds=1)
    (click,) = run.click_to_image
    assert click > 0.5, "an image cannot show before its job ends upstream"
    assert run.overhead_p50 == pytest.approx(click - 0.5)
    for visit in run.visits.values():
        assert visit.first_bytes > visit.repeat_bytes > 0, "the cache spares the static files"
        assert 0 < visit.lcp_seconds < 30
    report = Report()
    browser.report(report, run)
    figures = {figure.name: figure.value for figure in report.figures}
    playground = run.visits["playground"]
    assert figures["playground: first visit, over the wire"] == playground.first_bytes / 1024
    assert figures["playground: repeat visit, over the wire"] == playground.repeat_bytes / 1024
    assert figures["click to image less the job's upstream time: p50"] == run.overhead_p50


def _need_postgresql_binaries() -> None:
    if find_bin_dir() is None:
        message = "PostgreSQL server binaries not found (apt install postgresql)"
        if os.environ.get("PLAYGROUND_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.postgres
def test_every_store_serves_the_image_measured_against_file_response(
    tmp_path: Path, pool: list[PoolImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_postgresql_binaries()
    started: list[PostgresCluster] = []
    start_new = PostgresCluster.start_new

    def recorded(bin_dir: Path) -> PostgresCluster:
        started.append(start_new(bin_dir))
        return started[-1]

    monkeypatch.setattr(PostgresCluster, "start_new", staticmethod(recorded))
    for name in AWS_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    report = Report()
    serving.measure_stores(
        report,
        tmp_path / "stores",
        pool,
        api_key="pd_bench_local",
        base_url="http://127.0.0.1:9/api/v1",
        rounds=2,
        full_per_round=1,
        thumbnails_per_round=2,
    )

    assert len(started) == 1 and not started[0].root.exists(), "the server is gone after"
    assert not any(name in os.environ for name in AWS_ENVIRONMENT), "moto's keys are put back"
    assert not (tmp_path / "stores" / "serving-postgresql" / "playground.db").exists()
    figures = {(figure.section, figure.name): figure for figure in report.figures}
    cases = [
        serving.case_name("full image", pool[0].byte_size),
        serving.case_name("thumbnail", len(pool[0].thumbnail)),
    ]
    for label in ("PostgreSQL", "S3", "S3 redirect"):
        section = f"image serving from {label}"
        for what in cases:
            served = figures[section, f"{what}: {label}, requests/s"]
            baseline = figures[section, f"{what}: FileResponse, requests/s"]
            ratio = figures[section, f"{what}: {label} against FileResponse"]
            assert served.value and baseline.value and ratio.value, (label, what)
            if label == "S3":
                assert not ratio.target and "the target is the redirect's" in ratio.note
            else:
                assert ratio.target == "≥ 0.50×" and ratio.passed == (ratio.value >= 0.5)
            assert ("a 307 to the bucket" in served.note) == (label == "S3 redirect")
    assert len(report.figures) == 3 * len(cases) * 3, "nothing else, nothing twice"
    assert not report.broken


@pytest.mark.parametrize(
    ("arguments", "stores"),
    [
        (["--quick"], False),
        (["--quick", "--only", "serving"], True),
        (["--only", "gallery,serving"], True),
        ([], True),
    ],
)
def test_the_short_run_serves_from_sqlite_alone_unless_serving_is_asked_for(
    arguments: list[str], stores: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[tuple[Profile, list[str]]] = []
    monkeypatch.setattr(cli, "run", lambda profile, suites, *_, **__: ran.append((profile, suites)))
    assert cli.main([*arguments, "--work-dir", str(tmp_path / "work")]) == 0
    ((profile, suites),) = ran
    assert "serving" in suites
    assert profile.serving_stores is stores
