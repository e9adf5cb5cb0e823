"""The background worker: polls unfinished jobs and stores their images.

State lives in the database, not in this process: a job is worked on only by
the worker holding its lease, so a restarted process (or a second one) picks up
exactly the jobs nobody owns. A job moves

    pending --poll--> pending ... --completed--> downloading --stored--> completed
                                  --failed-----> failed
    downloading --URLs expired--> expired
    submitting (submitter died) --> unknown      (never resubmitted: it may be paid)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from contextlib import ExitStack
from datetime import timedelta

import anyio

from app import jobs
from app.config import Settings
from app.database import Database
from app.models import Job, JobStatus, utcnow
from app.sqlite import SQLiteBlobStore
from app.storage import StagedImage, check_image, scratch_file
from app.upstream import (
    DownloadRefused,
    MalformedResponse,
    NotFound,
    PixelDojoClient,
    RateLimited,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamState,
    UpstreamUnreachable,
)

log = logging.getLogger(__name__)

# Check the database this often even with nothing due: other workers add jobs too.
IDLE_RECHECK_SECONDS = 5.0
RETRY_MAX_SECONDS = 60.0


class Poller:
    def __init__(
        self,
        *,
        db: Database,
        blobs: SQLiteBlobStore,
        client: PixelDojoClient,
        settings: Settings,
        worker_id: str,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.client = client
        self.settings = settings
        self.worker_id = worker_id
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="poller")

    def wake(self) -> None:
        """A job was submitted or changed: look at the queue now."""
        self._wake.set()

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming; give in-flight jobs `grace_seconds`, then leave them to a restart."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._in_flight:
            _, still_running = await asyncio.wait(self._in_flight, timeout=grace_seconds)
            for task in still_running:
                task.cancel()
            # A cancelled job keeps its lease until it expires; then any worker resumes it.
            await asyncio.gather(*still_running, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._claim_and_start()
                delay = await anyio.to_thread.run_sync(self._seconds_until_due)
            except Exception:
                log.exception("the poller could not read the job queue; retrying")
                delay = IDLE_RECHECK_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def _seconds_until_due(self) -> float:
        due_in = jobs.seconds_until_next_due(self.db, now=utcnow())
        if due_in is None:
            return IDLE_RECHECK_SECONDS
        return min(IDLE_RECHECK_SECONDS, due_in + 0.01)

    async def _claim_and_start(self) -> None:
        free = self.settings.poller_concurrency - len(self._in_flight)
        claimed = await anyio.to_thread.run_sync(
            lambda: jobs.claim_due_jobs(
                self.db,
                owner=self.worker_id,
                now=utcnow(),
                lease_seconds=self.settings.lease_seconds,
                limit=free,
            )
        )
        for job in claimed:
            task = asyncio.create_task(self._work_on(job), name=f"job-{job.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        # A slot came free: there may be more due work waiting.
        self._wake.set()

    async def _work_on(self, job: Job) -> None:
        assert job.id is not None
        try:
            if job.status is JobStatus.SUBMITTING:
                await self._finish(
                    job,
                    JobStatus.UNKNOWN,
                    "The server stopped while this job was being submitted, so whether "
                    "PixelDojo accepted it is unknown. It was not sent again, to avoid paying "
                    "twice; check your PixelDojo history.",
                )
            elif job.status is JobStatus.PENDING:
                await self._poll(job)
            elif job.status is JobStatus.DOWNLOADING:
                await self._download(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            # One broken job must not stop the others; it is retried after a pause.
            log.exception("job %s: unexpected error; will retry", job.id)
            await self._retry(job, "An unexpected error occurred; retrying.")

    async def _poll(self, job: Job) -> None:
        assert job.id is not None and job.upstream_job_id is not None
        now = utcnow()
        if now > job.created_at + timedelta(seconds=self.settings.job_deadline_seconds):
            minutes = self.settings.job_deadline_seconds / 60
            await self._finish(
                job,
                JobStatus.FAILED,
                f"Timed out: PixelDojo did not finish it in {minutes:g} minutes.",
            )
            return
        try:
            upstream = await self.client.get_job(job.upstream_job_id)
        except NotFound as exc:
            await self._finish(
                job, JobStatus.FAILED, f"PixelDojo no longer knows this job: {exc.message}"
            )
            return
        except MalformedResponse as exc:
            await self._finish(
                job, JobStatus.FAILED, f"PixelDojo sent an answer we could not read: {exc.message}"
            )
            return
        except RateLimited as exc:
            await self._retry(job, None, delay=exc.retry_after)
            return
        except (UpstreamUnreachable, UpstreamHTTPError) as exc:
            await self._retry(job, f"Retrying: {exc.message}")
            return

        if upstream.state is UpstreamState.RUNNING:
            await anyio.to_thread.run_sync(
                lambda: jobs.reschedule(
                    self.db,
                    job_id=job.id or 0,
                    owner=self.worker_id,
                    delay_seconds=self._poll_delay(job.poll_count + 1),
                    upstream_status=upstream.status,
                )
            )
        elif upstream.state is UpstreamState.FAILED:
            await self._finish(job, JobStatus.FAILED, f"PixelDojo: {upstream.error}")
        else:
            await anyio.to_thread.run_sync(
                lambda: jobs.record_upstream_completion(
                    self.db, job_id=job.id or 0, owner=self.worker_id, upstream=upstream
                )
            )
            job.output_urls = upstream.image_urls
            job.expires_at = upstream.expires_at or job.expires_at
            await self._download(job)

    async def _download(self, job: Job) -> None:
        assert job.id is not None
        urls = job.output_urls or []
        if job.expires_at is not None and utcnow() > job.expires_at:
            await self._finish(
                job,
                JobStatus.EXPIRED,
                "The images expired on PixelDojo before they could be saved.",
            )
            return
        try:
            with ExitStack() as stack:
                staged: list[StagedImage] = []
                for index, url in enumerate(urls):
                    path, stream = stack.enter_context(scratch_file(self.settings.scratch_dir))
                    result = await self.client.download(
                        url, stream, max_bytes=self.settings.download_max_bytes
                    )
                    stream.flush()
                    checked = await anyio.to_thread.run_sync(check_image, path)
                    staged.append(
                        StagedImage(
                            index=index,
                            source_url=url,
                            path=path,
                            byte_size=result.byte_size,
                            sha256=result.sha256,
                            checked=checked,
                        )
                    )
                await anyio.to_thread.run_sync(
                    lambda: jobs.store_images(
                        self.db, self.blobs, job_id=job.id or 0, owner=self.worker_id, staged=staged
                    )
                )
        except DownloadRefused as exc:
            await self._finish(job, JobStatus.FAILED, f"The image was refused: {exc.message}")
        except UpstreamError as exc:
            await self._retry(job, f"Saving the images, retrying: {exc.message}")

    def _poll_delay(self, poll_count: int) -> float:
        initial = self.settings.poll_initial_seconds
        return min(self.settings.poll_max_seconds, initial * (1.5 ** max(0, poll_count - 1)))

    async def _retry(self, job: Job, note: str | None, *, delay: float | None = None) -> None:
        if delay is None:
            # Exponential backoff with full jitter, so many jobs do not retry in step.
            ceiling = min(
                RETRY_MAX_SECONDS, self.settings.poll_initial_seconds * 2 ** min(job.poll_count, 10)
            )
            delay = random.uniform(ceiling / 2, ceiling)
        else:
            delay = min(delay, RETRY_MAX_SECONDS)
        await anyio.to_thread.run_sync(
            lambda: jobs.reschedule(
                self.db, job_id=job.id or 0, owner=self.worker_id, delay_seconds=delay, error=note
            )
        )

    async def _finish(self, job: Job, status: JobStatus, error: str | None) -> None:
        await anyio.to_thread.run_sync(
            lambda: jobs.finish(
                self.db, job_id=job.id or 0, status=status, error=error, owner=self.worker_id
            )
        )
