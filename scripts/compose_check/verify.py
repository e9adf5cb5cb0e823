"""Step 4, checked: the probes, 20 jobs, the kill, and what was stored."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import psycopg

from .run import JOBS, JOBS_DONE_WITHIN_SECONDS, PROJECTS, CheckFailed, Run, wait_until
from .stack import Stack


def check_stack(run: Run, stack: Stack) -> None:
    with run.step("the stack: compose up, two projects (2 web, 2 workers, db, minio stand-ins)"):
        stack.up()
    with run.step("every container healthy"):
        stack.wait_healthy()
        stack.check_probes()
    token = stack.sign_in()
    containers = stack.containers()
    victim = next(c for name, c in containers.items() if PROJECTS[1] in name and "worker" in name)
    victim_name = next(name for name, c in containers.items() if c == victim)
    victim_id = stack.worker_id(victim)
    with run.step(f"{JOBS} jobs through both web containers, a worker killed mid-job"):
        clients = (stack.client(0, token), stack.client(1, token))
        submitted: dict[int, int] = {}
        for number in range(JOBS):
            images = 1 + number % 2
            answer = clients[number % 2].post(
                "/api/jobs", json={"prompt": f"compose check {number}", "num_images": images}
            )
            if answer.status_code not in (200, 201, 202):
                raise CheckFailed(f"job {number}: {answer.status_code} {answer.text}")
            submitted[answer.json()["id"]] = images
        # Killed while it holds several jobs PixelDojo is still working on (or, should the
        # other worker be quicker to claim, the one or two it has after 20 s).
        began = time.monotonic()

        def several_held() -> list[int] | None:
            held = stack.held_by(victim_id)
            enough = 3 if time.monotonic() - began < 20 else 1
            return held if len(held) >= enough else None

        held: list[int] = wait_until(f"{victim_name} to hold jobs", several_held, 60, every=0.2)
        run.docker_cmd("kill", victim, quiet=True)
        run.say(f"  docker kill {victim_name} ({victim_id}) while it held jobs {held}")

        def all_done() -> list[dict[str, Any]] | None:
            jobs = [clients[0].get(f"/api/jobs/{job_id}").json() for job_id in submitted]
            return jobs if all(job["finished"] for job in jobs) else None

        jobs = wait_until("every job to finish", all_done, JOBS_DONE_WITHIN_SECONDS, 2)
    with run.step("every job stored once; every image the same from both web containers"):
        failed = [job for job in jobs if job["status"] != "completed"]
        if failed:
            raise CheckFailed(
                f"jobs not completed: {[(j['id'], j['status'], j.get('error')) for j in failed]}"
            )
        verify_storage(run, stack, submitted, jobs, held, victim_id)
        verify_images(run, clients, jobs)
        verify_metrics(run, clients[0])
        for client in clients:
            client.close()


def verify_storage(
    run: Run,
    stack: Stack,
    submitted: dict[int, int],
    jobs: list[dict[str, Any]],
    held: list[int],
    victim_id: str,
) -> None:
    with psycopg.connect(stack.database_url) as connection:
        per_job: dict[int, int] = dict(
            connection.execute("SELECT job_id, count(*) FROM images GROUP BY job_id").fetchall()
        )
        twice = connection.execute(
            'SELECT job_id, "index", count(*) FROM images GROUP BY job_id, "index"'
            " HAVING count(*) > 1"
        ).fetchall()
        digests = {row[0] for row in connection.execute("SELECT sha256 FROM images").fetchall()}
        owners: dict[int, str] = dict(
            connection.execute(
                "SELECT id, lease_owner FROM jobs WHERE id = ANY(%s)", (held,)
            ).fetchall()
        )
    if twice or per_job != submitted:
        raise CheckFailed(f"images per job {per_job}, expected {submitted}; twice: {twice}")
    taken_over = [job_id for job_id, owner in owners.items() if owner != victim_id]
    import boto3

    s3 = boto3.session.Session(
        aws_access_key_id=stack.aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.aws["AWS_SECRET_ACCESS_KEY"],
        region_name=stack.aws["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=stack.s3.endpoint_url)
    listed = s3.list_objects_v2(Bucket="playground", Prefix="gallery/images/")
    objects = [entry["Key"].rsplit("/", 1)[1] for entry in listed.get("Contents", [])]
    s3.close()
    if sorted(objects) != sorted(digests):
        raise CheckFailed(
            f"objects in the bucket {sorted(objects)} != the images' {sorted(digests)}"
        )
    # The emulator's listing of this key's jobs: each submission reached PixelDojo once.
    upstream = httpx.get(
        stack.emulator_url + "/jobs",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {stack.key}"},
        timeout=30,
    ).json()["total"]
    if upstream != JOBS:
        raise CheckFailed(f"PixelDojo saw {upstream} jobs, not {JOBS}")
    images = sum(submitted.values())
    run.say(
        f"  {len(jobs)} jobs completed, {images} images: each job's rows once, "
        f"{len(objects)} objects in the bucket for {len(digests)} distinct images, "
        f"{upstream} jobs upstream; the killed worker's {len(held)} job(s) finished by "
        f"the other ({len(taken_over)} of them claimed again after the kill)"
    )


def verify_images(
    run: Run, clients: tuple[httpx.Client, httpx.Client], jobs: list[dict[str, Any]]
) -> None:
    count = 0
    for job in jobs:
        for image in job["images"]:
            bodies = [client.get(image["url"]) for client in clients]
            digests = {hashlib.sha256(body.content).hexdigest() for body in bodies}
            if {body.status_code for body in bodies} != {200} or digests != {image["sha256"]}:
                raise CheckFailed(
                    f"image {image['url']}: {[b.status_code for b in bodies]} {digests}"
                )
            count += 1
    run.say(f"  {count} images byte-identical from both web containers (sha256 as recorded)")


def verify_metrics(run: Run, client: httpx.Client) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    answer = client.get("/metrics")
    if answer.status_code != 200:
        raise CheckFailed(f"/metrics answered {answer.status_code}")
    completed = next(
        sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == "playground_jobs" and sample.labels == {"status": "completed"}
    )
    if completed != JOBS:
        raise CheckFailed(f"/metrics counts {completed} completed jobs, not {JOBS}")
    run.say(f'  /metrics (an admin\'s token): playground_jobs{{status="completed"}} {completed:g}')
