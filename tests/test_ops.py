"""Probes and metrics: /livez answers, /readyz names each part that does not (the database,
the schema, the blob store, the signing key, a worker's heartbeat), /metrics speaks
Prometheus' format, counts a test's jobs exactly and is an admin's alone on a team server,
and a worker answers the same on its --health-port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from app.core import metrics
from app.features.ops.probes import Part, Probes
from app.features.people import accounts
from app.storage.blobs.sqlite import SQLiteBlobStore
from app.storage.db.engine import Database, newest_revision
from app.storage.db.tables import JobStatus
from tests.support.apps import CLIENT_TLS, RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.processes import AppProcess, free_port
from tests.support.stores import S3Bucket
from tests.support.waiting import wait_until

PASSWORD = "correct horse battery"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics answer, read by prometheus-client's own parser (which
    raises on anything that is not its text format), by name and labels."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def counter(name: str, **labels: str) -> float:
    """A counter of this process, as it stands (the tests' apps run in this process)."""
    value = metrics.registry().get_sample_value(name, labels)
    return value or 0.0


# --- Readiness --------------------------------------------------------------------------


@pytest.mark.both_databases
def test_livez_answers_and_readyz_names_every_part_it_checked(app: RunningApp) -> None:
    assert app.client.get("/livez").json() == {"status": "ok"}
    answer = app.client.get("/readyz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {"database", "migrations", "blob store", "signing key"}
    assert body["checks"]["migrations"] == f"at revision {newest_revision()}"


@pytest.mark.both_databases
def test_readyz_names_a_schema_that_is_not_this_versions(app: RunningApp) -> None:
    db = Database.for_settings(app.settings)
    try:
        with db.write() as session:
            session.execute(sa.text("UPDATE alembic_version SET version_num = '0014'"))
        answer = app.client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["failing"] == ["migrations"]
        assert "seedream-playground migrate" in answer.json()["checks"]["migrations"]
        with db.write() as session:
            session.execute(
                sa.text("UPDATE alembic_version SET version_num = :head"),
                {"head": newest_revision()},
            )
        assert app.client.get("/readyz").status_code == 200
    finally:
        db.dispose()


def test_readyz_goes_503_within_5_s_of_stopping_postgresql_and_back_to_200_when_it_returns(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    from tests.support.postgres import PostgresCluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL server binaries not found (apt install postgresql)"
        if os.environ.get("PLAYGROUND_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    # A server of this test's own: it is stopped under the app.
    cluster = PostgresCluster.start_new(bin_dir)
    try:
        database = DatabaseChoice("postgresql", cluster.create_database())
        settings = make_settings(tmp_path / "data", emulator, database=database)
        with serve_app(settings) as app:
            assert app.client.get("/readyz").status_code == 200
            cluster.pause()
            stopped = time.monotonic()
            down = wait_until(
                lambda: _not_ready(app.client), timeout=5, what="/readyz to answer 503"
            )
            assert time.monotonic() - stopped < 5
            # The gallery's images are in the same database: both parts are named.
            assert {"database", "migrations", "blob store"} <= set(down["failing"])
            assert "signing key" not in down["failing"]
            assert cluster.url().split("@")[0] not in str(down), "no connection string"
            cluster.resume()
            wait_until(
                lambda: app.client.get("/readyz").status_code == 200,
                timeout=30,
                what="/readyz to answer 200 again",
            )
    finally:
        cluster.stop()


def _not_ready(client: httpx.Client) -> dict[str, Any] | None:
    answer = client.get("/readyz")
    if answer.status_code != 503:
        return None
    body: dict[str, Any] = answer.json()
    return body


def test_readyz_names_a_bucket_that_does_not_answer(
    tmp_path: Path, emulator: RunningEmulator, s3_bucket: S3Bucket
) -> None:
    import boto3

    settings = make_settings(tmp_path / "data", emulator, **s3_bucket.settings())
    with serve_app(settings) as app:
        assert app.client.get("/readyz").status_code == 200
        s3 = boto3.session.Session().client("s3", endpoint_url=s3_bucket.endpoint_url)
        s3.delete_bucket(Bucket=s3_bucket.name)
        s3.close()
        answer = app.client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["failing"] == ["blob store"]
        # Anyone may ask: the answer does not say where the bucket is.
        assert s3_bucket.name not in answer.text


def test_an_empty_signing_key_or_a_silent_worker_is_not_ready(tmp_path: Path) -> None:
    db = Database.at_path(tmp_path / "playground.db")
    db.migrate()
    blobs = SQLiteBlobStore(tmp_path / "images.db")
    try:

        def failing(**parts: Any) -> list[str]:
            readiness = anyio.run(Probes(db=db, blobs=blobs, lease_seconds=30, **parts).readiness)
            return readiness.failing

        assert failing(signing_key=b"") == ["signing key"]
        assert failing(signing_key=b"k" * 32) == []
        assert failing(heartbeat=lambda: None) == ["heartbeat"]
        assert failing(heartbeat=lambda: 45.0) == ["heartbeat"]
        assert failing(heartbeat=lambda: 5.0) == []
        assert failing(heartbeat=lambda: 5.0, polling=lambda: False) == ["heartbeat"]
    finally:
        blobs.close()
        db.dispose()


def test_a_check_that_hangs_is_answered_not_ready_within_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database.at_path(tmp_path / "playground.db")
    db.migrate()
    blobs = SQLiteBlobStore(tmp_path / "images.db")
    hung = threading.Event()
    monkeypatch.setattr(blobs, "check", lambda: hung.wait(10))
    probes = Probes(db=db, blobs=blobs, timeout_seconds=0.5)
    try:
        started = time.monotonic()
        first = anyio.run(probes.readiness)
        assert time.monotonic() - started < 3
        assert first.failing == ["blob store"]
        assert first.parts[-1] == Part("blob store", False, "no answer within 0.5 s")
        # Not asked again while the first check is still out: no pile of stuck threads.
        second = anyio.run(probes.readiness)
        assert second.parts[-1].detail.startswith("no answer to a check started")
        hung.set()
        wait_until(lambda: anyio.run(probes.readiness).ready, timeout=5, what="ready again")
    finally:
        hung.set()
        blobs.close()
        db.dispose()


# --- Metrics ----------------------------------------------------------------------------


def test_metrics_are_off_unless_a_setting_turns_them_on(app: RunningApp) -> None:
    answer = app.client.get("/metrics")
    assert answer.status_code == 404
    assert "PLAYGROUND_METRICS=true" in answer.text


@pytest.mark.both_databases
def test_metrics_parse_as_prometheus_text_and_count_a_tests_jobs_exactly(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    settings = make_settings(tmp_path / "data", emulator, database=database, metrics=True)
    submitted_before = counter(
        "playground_upstream_requests_total", endpoint="submit", status="202"
    )
    downloads_before = counter("playground_downloads_total", outcome="ok")
    with serve_app(settings) as app:
        ids = [
            app.client.post("/api/jobs", json={"prompt": f"job {n}", "num_images": 2}).json()["id"]
            for n in range(3)
        ]
        for job_id in ids:
            assert wait_for_job(app.client, job_id)["status"] == "completed"
        answer = app.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    found = samples(answer.text)
    for status in JobStatus:
        expected = 3.0 if status is JobStatus.COMPLETED else 0.0
        assert found[("playground_jobs", (("status", status.value),))] == expected, status
    assert found[("playground_queue_depth", ())] == 0.0
    assert found[("playground_queue_oldest_due_seconds", ())] == 0.0
    # This process's counters (the app runs in it): exactly this test's calls.
    submitted = found[
        ("playground_upstream_requests_total", (("endpoint", "submit"), ("status", "202")))
    ]
    assert submitted - submitted_before == 3
    assert found[("playground_downloads_total", (("outcome", "ok"),))] - downloads_before == 6
    assert found[("playground_poll_delay_seconds_count", ())] >= 3
    jobs_route = (("method", "POST"), ("route", "/api/jobs"), ("status", "2xx"))
    assert found[("playground_http_request_duration_seconds_count", jobs_route)] >= 3
    assert TEST_KEY not in answer.text


@pytest.fixture
def team_with_metrics(
    tmp_path: Path, emulator: RunningEmulator
) -> Iterator[tuple[RunningApp, Any]]:
    settings = make_settings(tmp_path / "data", emulator, metrics=True)
    db = Database.for_settings(settings)
    db.migrate()
    ada = accounts.create_user(db, name="Ada", password=PASSWORD, is_admin=True)
    max_ = accounts.create_user(db, name="Max", password=PASSWORD)
    assert ada.id is not None and max_.id is not None
    tokens = {
        "admin": accounts.create_api_token(db, user_id=ada.id, name="prometheus").secret,
        "member": accounts.create_api_token(db, user_id=max_.id, name="prometheus").secret,
    }
    try:
        with serve_app(settings) as app:
            yield app, tokens
    finally:
        db.dispose()


def test_metrics_on_a_team_server_are_an_admins_alone(
    team_with_metrics: tuple[RunningApp, dict[str, str]],
) -> None:
    app, tokens = team_with_metrics
    with httpx.Client(base_url=app.url, timeout=30, verify=CLIENT_TLS) as client:
        anonymous = client.get("/metrics")
        assert anonymous.status_code == 401
        assert "playground_" not in anonymous.text
        member = client.get("/metrics", headers={"Authorization": f"Bearer {tokens['member']}"})
        assert member.status_code == 403
        admin = client.get("/metrics", headers={"Authorization": f"Bearer {tokens['admin']}"})
        assert admin.status_code == 200
        assert ("playground_queue_depth", ()) in samples(admin.text)
        # The probes stay open to an orchestrator, which signs in as nobody.
        assert client.get("/readyz").status_code == 200
        assert client.get("/livez").status_code == 200


# --- A worker's health port -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.both_databases
def test_a_worker_answers_its_probes_and_metrics_on_its_health_port(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    web = AppProcess(
        tmp_path / "web",
        emulator,
        database=database,
        arguments=("--no-worker",),
        playground_metrics="true",
    ).start()
    port = free_port()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "worker",
            "--health-port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=web.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as health:
            ready = wait_until(
                lambda: _answer(health, "/readyz", worker),
                timeout=30,
                what="the worker's health port to answer",
            )
            assert ready.status_code == 200, ready.text
            checks = ready.json()["checks"]
            assert set(checks) == {"database", "migrations", "blob store", "heartbeat"}
            assert health.get("/livez").json() == {"status": "ok"}
            with web.client() as client:
                job = client.post("/api/jobs", json={"prompt": "polled by the worker"}).json()
                assert wait_for_job(client, job["id"], timeout=30)["status"] == "completed"
            found = samples(health.get("/metrics").text)
            assert found[("playground_jobs", (("status", "completed"),))] == 1
            # The worker's own counters: it polled the job, the web process submitted it.
            polls = (("endpoint", "job"), ("status", "200"))
            assert found[("playground_upstream_requests_total", polls)] >= 1
            assert (
                "playground_upstream_requests_total",
                (("endpoint", "submit"), ("status", "200")),
            ) not in found
    finally:
        worker.terminate()
        output = worker.communicate(timeout=60)[0]
        web.stop()
    assert worker.returncode == 0, output


def _answer(
    client: httpx.Client, path: str, process: subprocess.Popen[str]
) -> httpx.Response | None:
    if process.poll() is not None:
        raise AssertionError(f"the worker exited: {process.communicate()[0]}")
    try:
        return client.get(path)
    except httpx.TransportError:
        return None


def test_a_health_port_already_taken_is_said_in_one_line(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        web = AppProcess(tmp_path / "data", emulator)
        result = subprocess.run(
            [sys.executable, "-m", "app", "worker", "--health-port", str(port)],
            env=web.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"worker --health-port {port}: cannot listen on 127.0.0.1: ")
    assert "Traceback" not in result.stderr
