"""Many processes on one PostgreSQL: 2 web processes started with `--no-worker`, 3 workers
killed with SIGKILL at random and started again, 200 jobs against the emulator over
loopback. Every job completes with exactly one upstream submission, every image is
byte-identical to what the upstream served and is served by either web process, and a
live stream on web process B sees jobs that workers finished."""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.events import read_events
from tests.support.processes import AppProcess, WorkerProcess
from tests.support.waiting import wait_until

JOBS = 200
WORKERS = 3
# The stream on web B watches this many of the jobs submitted through web A.
WATCHED = 40
# Kills along the way, one every few seconds while jobs are under way.
KILLS = 6


@pytest.fixture
def emulator() -> Any:
    # Quick jobs: the point is the many processes, not the upstream's pace.
    with serve_emulator(job_seconds=0.2) as running:
        yield running


@pytest.mark.timeout(600)
def test_web_processes_and_workers_killed_at_random_share_one_postgres(
    tmp_path: Path, emulator: RunningEmulator, postgres_database: DatabaseChoice
) -> None:
    web_a = AppProcess(
        tmp_path / "web-a", emulator, database=postgres_database, arguments=("--no-worker",)
    )
    web_b = AppProcess(
        tmp_path / "web-b", emulator, database=postgres_database, arguments=("--no-worker",)
    )
    webs = [web_a.start(), web_b.start()]
    workers = [
        WorkerProcess(web_a, data_dir=tmp_path / f"worker-{n}").start() for n in range(WORKERS)
    ]
    stop_killing = threading.Event()
    kills: list[int] = []
    stream_seen: dict[int, str] = {}
    try:
        with web_a.client() as a, web_b.client() as b:

            def submit(n: int) -> tuple[int, str]:
                client, name = (a, "a") if n % 2 == 0 else (b, "b")
                answer = client.post("/api/jobs", json={"prompt": f"many processes {n}"})
                assert answer.status_code == 202, answer.text
                return answer.json()["id"], name

            def kill_at_random() -> None:
                chance = random.Random(15)
                while len(kills) < KILLS and not stop_killing.wait(chance.uniform(1.0, 3.0)):
                    victim = chance.randrange(WORKERS)
                    workers[victim].kill()
                    kills.append(victim)
                    workers[victim] = WorkerProcess(
                        web_a, data_dir=tmp_path / f"worker-{victim}-{len(kills)}"
                    ).start()

            killer = threading.Thread(target=kill_at_random, daemon=True)
            killer.start()
            with ThreadPoolExecutor(8) as pool:
                submitted = list(pool.map(submit, range(JOBS)))
            ids = [job_id for job_id, _ in submitted]
            watched = [job_id for job_id, web in submitted if web == "a"][-WATCHED:]

            def watch_on_b() -> None:
                query = ",".join(str(job_id) for job_id in watched)
                with (
                    contextlib.suppress(httpx.TransportError),
                    httpx.Client(base_url=web_b.url, timeout=120) as stream_client,
                    stream_client.stream("GET", f"/events/jobs?ids={query}") as response,
                ):
                    for event, data in read_events(response):
                        if event == "done":
                            return
                        for job_id in watched:
                            if f'id="job-{job_id}"' in data:
                                status = data.split(f'id="job-{job_id}"')[1]
                                stream_seen[job_id] = status.split('data-status="')[1].split('"')[0]

            streamer = threading.Thread(target=watch_on_b, daemon=True)
            streamer.start()

            def all_finished() -> bool:
                listing = [
                    (a if n % 2 else b).get(f"/api/jobs/{job_id}").json()
                    for n, job_id in enumerate(ids)
                ]
                return all(job["finished"] for job in listing)

            wait_until(all_finished, timeout=300, interval=1.0, what="every job to finish")
            stop_killing.set()
            killer.join(timeout=60)
            streamer.join(timeout=60)

            jobs = [a.get(f"/api/jobs/{job_id}").json() for job_id in ids]
            assert [job["status"] for job in jobs] == ["completed"] * JOBS, [
                (job["id"], job["status"], job["error"])
                for job in jobs
                if job["status"] != "completed"
            ]
            # Exactly one submission upstream per job, each its own upstream job.
            assert len(emulator.emulator.requests_to("run")) == JOBS
            # Every image byte-identical to what the upstream served, from either process.
            served = set(emulator.emulator.served_images.values())
            stored = [image for job in jobs for image in job["images"]]
            assert len(stored) == JOBS
            assert {image["sha256"] for image in stored} <= served
            for n, image in enumerate(stored):
                for client in (a, b) if n % 10 == 0 else ((a, b)[n % 2],):
                    body = client.get(image["url"]).content
                    assert hashlib.sha256(body).hexdigest() == image["sha256"]
    finally:
        stop_killing.set()
        for worker in workers:
            worker.stop()
        for web in webs:
            web.stop()
    assert kills, "workers were killed along the way"
    # The stream on B saw the jobs A submitted, finished by workers, as they finished.
    assert set(stream_seen) == set(watched)
    assert set(stream_seen.values()) == {"completed"}
    print(f"{len(kills)} workers killed; {len(ids)} jobs")
