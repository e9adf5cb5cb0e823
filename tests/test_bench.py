"""The benchmark suite's own parts: generated data the app serves as its own, honest verdicts."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import psycopg
from PIL import Image

from bench import databases
from bench.generate import TEAM, generate, make_pool
from bench.imagery import with_text_chunk
from bench.report import Report
from tests.conftest import DatabaseChoice, RunningEmulator, make_settings, serve_app


def test_generated_data_is_served_by_the_app_like_its_own(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    pool = make_pool(tmp_path / "pool", count=1)
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


def test_sqlite_and_postgresql_galleries_answer_alike(
    tmp_path: Path, postgres_database: DatabaseChoice
) -> None:
    postgres_url = postgres_database.url
    assert postgres_url is not None
    pool = make_pool(tmp_path / "pool", count=1)
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
    assert any("PostgreSQL / SQLite" in figure.name for figure in report.figures)
    assert not report.misses
