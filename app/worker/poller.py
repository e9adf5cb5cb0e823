"""The background worker: polls unfinished jobs and stores their images.

State lives in the database, not in this process: a job is worked on only by
the worker holding its lease (renewed while the work lasts), so a restarted
process, or a second one, picks up exactly the jobs nobody owns. A job moves

    pending --poll--> pending ... --completed--> downloading --stored--> completed
                                  --failed-----> failed
    downloading --URLs expired--> expired
    reconciling --found upstream--> pending;  --not found in time--> unknown
    submitting (its submitter died) --> reconciling      (never resubmitted)

When to poll, retry or give up is decided in `app.worker.schedule`, which does no I/O.
This stays one module, long as it is: claiming, polling, storing and reconciling share
one lease and one set of lanes, and each step's I/O is ordered against the others'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from contextlib import ExitStack
from datetime import datetime, timedelta

import anyio

from app.core import metrics
from app.core.config import Settings
from app.features.jobs import callbacks as webhooks
from app.features.jobs import queue, timing
from app.features.models.key_status import KeyHealth
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from app.storage.intake import (
    StagedImage,
    check_image_aside,
    scratch_file,
    worker_scratch_dir,
)
from app.upstream import (
    AuthenticationFailed,
    DownloadRefused,
    MalformedResponse,
    NotFound,
    PixelDojoClient,
    RateLimited,
    UpstreamError,
    UpstreamState,
)
from app.worker import schedule

log = logging.getLogger(__name__)

# What a job put back to be tried again was doing, as the retry metric names it.
RETRY_STAGES = {
    JobStatus.PENDING: "poll",
    JobStatus.DOWNLOADING: "store",
    JobStatus.SUBMITTING: "reconcile",
    JobStatus.RECONCILING: "reconcile",
}


class Poller:
    def __init__(
        self,
        *,
        db: Database,
        blobs: BlobStore,
        client: PixelDojoClient,
        settings: Settings,
        worker_id: str,
        key_health: KeyHealth,
        claims_jobs: bool = True,
    ) -> None:
        self.db = db
        # False in a web process started with --no-worker: it still beats (the jobs it is
        # submitting are leased to it, and must not look abandoned), but never claims.
        self.claims_jobs = claims_jobs
        self.blobs = blobs
        self.client = client
        self.settings = settings
        self.worker_id = worker_id
        # Who holds a job's lease while this process submits it (app.features.jobs.submission): an
        # id of
        # its own, so its writes are fenced from this worker's, beaten with this worker's.
        self.submitter_id = f"{worker_id} submitting"
        self.key_health = key_health
        self._wake = asyncio.Event()
        self._stopping = False
        # Polls and stores run in separate lanes: a status poll (milliseconds) never waits
        # behind downloads and image checks (a tenth of a second or more each).
        self._in_flight: dict[asyncio.Task[None], int] = {}
        self._storing: dict[asyncio.Task[None], int] = {}
        self._store_slots = asyncio.Semaphore(schedule.STORE_CONCURRENCY)
        self._tasks: list[asyncio.Task[None]] = []
        # When each job's lease was last known good (claimed or renewed), by monotonic clock.
        self._held_since: dict[tuple[int, int], float] = {}
        self._timings: dict[tuple[str, str, int], tuple[float, timing.UpstreamTiming]] = {}
        # When callbacks were last seen to arrive (by monotonic clock).
        self._callbacks_seen_at: float | None = None
        self._scratch_dir = worker_scratch_dir(settings.scratch_dir, worker_id)
        # When the database last heard this worker was alive (monotonic clock): a worker
        # whose heartbeats fail looks dead to the others, who take its jobs over.
        self._beaten_at: float | None = None

    def register(self) -> None:
        """Be known as a live worker (and the submitter beside it), with a heartbeat, before
        taking any job: a worker starting beside this one then leaves its scratch downloads
        alone, and the jobs being submitted here to their submitter."""
        if any(task.get_name() == "poller-heartbeat" for task in self._tasks):
            return
        for worker_id in (self.worker_id, self.submitter_id):
            queue.register_worker(self.db, worker_id=worker_id)
        self._beaten_at = time.monotonic()
        self._tasks.append(asyncio.create_task(self._beat(), name="poller-heartbeat"))

    def start(self) -> None:
        self.register()
        if self.claims_jobs:
            self._tasks.append(asyncio.create_task(self._run(), name="poller"))

    def _unregister(self) -> None:
        for worker_id in (self.worker_id, self.submitter_id):
            queue.remove_worker(self.db, worker_id=worker_id)

    def wake(self) -> None:
        """A job was submitted or changed: look at the queue now."""
        self._wake.set()

    def first_poll_delay(
        self, *, model: str, image_size: str, num_images: int, callback: bool = False
    ) -> float:
        """When to ask about a job just submitted: a little before jobs like it end; or,
        for a job PixelDojo will call back about (`callback`) while callbacks arrive, when
        all but the slowest would have called."""
        found = self._timing(model, image_size, num_images)
        return schedule.first_poll_delay(
            found=found,
            callbacks_arrive=callback and self._callbacks_arrive(),
            initial=self.settings.poll_initial_seconds,
            maximum=self.settings.poll_max_seconds,
        )

    def _callbacks_arrive(self) -> bool:
        """Whether PixelDojo's callbacks reach this app (app/features/jobs/callbacks.py): once seen
        to,
        looked up again every few seconds. "Not yet" is not remembered: the next job to
        finish may show that they do (and only jobs that asked for one ask this)."""
        now = time.monotonic()
        if schedule.still_fresh(self._callbacks_seen_at, now=now):
            return True
        self._callbacks_seen_at = now if webhooks.callbacks_arrive(self.db) else None
        return self._callbacks_seen_at is not None

    def _timing(self, model: str, image_size: str, num_images: int) -> timing.UpstreamTiming | None:
        """How long PixelDojo takes for such jobs, looked up at most every few seconds per kind."""
        kind = (model, image_size, num_images)
        now = time.monotonic()
        cached = self._timings.get(kind)
        if cached is not None and schedule.still_fresh(cached[0], now=now):
            return cached[1]
        found = timing.upstream_timing(
            self.db,
            model=model,
            image_size=image_size,
            num_images=num_images,
            maximum=self.settings.poll_max_seconds,
            # Jobs old enough that all but the slowest of their time have finished.
            settled_seconds=cached[1].until if cached is not None else 0.0,
        )
        # No history yet is not remembered: the next completed job may bring it.
        if found is not None:
            self._timings[kind] = (now, found)
        return found

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming; let in-flight work finish for `grace_seconds`, then hand it back."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            if task.get_name() == "poller":
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        deadline = time.monotonic() + grace_seconds
        left: list[int] = []
        # Looped: a poll finishing in the grace period hands its job to the storing lane.
        while busy := {**self._in_flight, **self._storing}:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                await asyncio.wait(list(busy), timeout=remaining)
                continue
            for task in busy:
                task.cancel()
            await asyncio.gather(*busy, return_exceptions=True)
            left += [busy[task] for task in busy if task.cancelled()]
            for task in busy:
                self._in_flight.pop(task, None)
                self._storing.pop(task, None)
        if left:
            # Released, not left to expire: the next start resumes them at once.
            await anyio.to_thread.run_sync(
                lambda: queue.release_leases(self.db, owner=self.worker_id, job_ids=left)
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await anyio.to_thread.run_sync(self._unregister)

    # --- The loop -------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._claim_and_start()
                # With every slot busy, only a finished job (which wakes us) frees one.
                delay = (
                    await anyio.to_thread.run_sync(self._seconds_until_due)
                    if self._free_slots() > 0
                    else schedule.IDLE_RECHECK_SECONDS
                )
            except Exception:
                log.exception("the poller could not read the job queue; retrying")
                delay = schedule.IDLE_RECHECK_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _beat(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await anyio.to_thread.run_sync(self._heartbeat)
            except Exception:
                log.exception("could not record this worker's heartbeat; retrying")

    def _heartbeat(self) -> None:
        queue.heartbeat(
            self.db,
            worker_id=self.worker_id,
            job_ids=[*self._in_flight.values(), *self._storing.values()],
            lease_seconds=self.settings.lease_seconds,
            also_alive=[self.submitter_id],
        )
        self._beaten_at = time.monotonic()

    def seconds_since_heartbeat(self) -> float | None:
        """How long ago the database last heard this worker was alive; None before it has."""
        return None if self._beaten_at is None else time.monotonic() - self._beaten_at

    @property
    def polling(self) -> bool:
        """Whether the polling loop runs (it ends only when the worker stops)."""
        return any(task.get_name() == "poller" and not task.done() for task in self._tasks)

    def _seconds_until_due(self) -> float:
        return schedule.idle_wait(queue.seconds_until_next_due(self.db, now=utcnow()))

    def _free_slots(self) -> int:
        return schedule.free_slots(
            concurrency=self.settings.poller_concurrency,
            polling=len(self._in_flight),
            storing=len(self._storing),
        )

    async def _claim_and_start(self) -> None:
        free = self._free_slots()
        if free <= 0:
            return
        claimed = await anyio.to_thread.run_sync(
            lambda: queue.claim_due_jobs(
                self.db,
                owner=self.worker_id,
                now=utcnow(),
                lease_seconds=self.settings.lease_seconds,
                limit=free,
            )
        )
        claimed_at = time.monotonic()
        for job in claimed:
            assert job.id is not None
            self._held_since[(job.id, job.lease_token)] = claimed_at
            if job.status is JobStatus.DOWNLOADING:
                self._start_storing(job)
                continue
            task = asyncio.create_task(self._work_on(job), name=f"job-{job.id}")
            self._in_flight[task] = job.id
            task.add_done_callback(self._job_done)

    def _start_storing(self, job: Job) -> None:
        """Hand a job whose images are ready to the storing lane; it keeps its lease."""
        task = asyncio.create_task(self._store(job), name=f"store-{job.id}")
        self._storing[task] = _id(job)
        task.add_done_callback(self._stored)

    def _stored(self, task: asyncio.Task[None]) -> None:
        self._forget_leases(self._storing.pop(task, None))
        self._wake.set()

    async def _store(self, job: Job) -> None:
        try:
            async with self._store_slots:
                await self._download(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: unexpected error storing its images; will retry", job.id)
            await self._retry(job, "An unexpected error occurred; retrying.")

    def _job_done(self, task: asyncio.Task[None]) -> None:
        job_id = self._in_flight.pop(task, None)
        self._forget_leases(job_id)
        # A slot came free: there may be more due work waiting.
        self._wake.set()

    async def _work_on(self, job: Job) -> None:
        try:
            if job.status in (JobStatus.SUBMITTING, JobStatus.RECONCILING):
                await self._reconcile(job)
            elif job.status is JobStatus.PENDING:
                await self._poll(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            # One broken job must not stop the others; it is retried after a pause.
            log.exception("job %s: unexpected error; will retry", job.id)
            await self._retry(job, "An unexpected error occurred; retrying.")

    # --- Polling ----------------------------------------------------------------------

    async def _poll(self, job: Job) -> None:
        assert job.upstream_job_id is not None
        # A job PixelDojo called back about is asked about at once, whatever its kind's timing.
        if job.poll_count == 0 and job.webhook_at is None and await self._too_early(job):
            return
        if not await self._still_mine(
            job, unless_held_within=schedule.trusted_for(self.settings.lease_seconds)
        ):
            log.info("job %s was taken over before it was polled; leaving it", job.id)
            return
        due_at = job.next_poll_at
        if due_at is not None:
            metrics.POLL_DELAY.observe(max(0.0, -_seconds_until(due_at)))
        try:
            upstream = await self.client.get_job(job.upstream_job_id)
        except UpstreamError as exc:
            await self._poll_failed(job, exc)
            return
        await anyio.to_thread.run_sync(self.key_health.accepted)

        if upstream.state is UpstreamState.RUNNING:
            # Only PixelDojo saying "still running" can time a job out: a late poll (the app
            # was down, polls were rate limited) may find it finished and paid for.
            if schedule.past_deadline(
                created_at=job.created_at,
                deadline_seconds=self.settings.job_deadline_seconds,
                now=utcnow(),
            ):
                minutes = self.settings.job_deadline_seconds / 60
                await self._finish(
                    job,
                    JobStatus.FAILED,
                    f"Timed out: PixelDojo did not finish the job within {minutes:g} minutes.",
                )
                return
            delay = await anyio.to_thread.run_sync(self._poll_delay, job)
            await self._reschedule(
                job,
                delay,
                upstream_status=upstream.status,
                seen_running_seconds=_seconds_since(_started(job)),
            )
        elif upstream.state is UpstreamState.FAILED:
            await self._finish(job, JobStatus.FAILED, f"PixelDojo: {upstream.error}")
        else:
            recorded = await anyio.to_thread.run_sync(
                lambda: queue.record_upstream_completion(
                    self.db,
                    job_id=_id(job),
                    owner=self.worker_id,
                    token=job.lease_token,
                    upstream=upstream,
                    done_by_seconds=timing.done_by_seconds(
                        started=_started(job), due=due_at, now=utcnow()
                    ),
                )
            )
            if not recorded:
                log.info("job %s was taken over while it was polled; leaving it", job.id)
                return
            job.status = JobStatus.DOWNLOADING
            job.output_urls = upstream.image_urls
            job.expires_at = upstream.expires_at or job.expires_at
            self._start_storing(job)

    async def _poll_failed(self, job: Job, exc: UpstreamError) -> None:
        if isinstance(exc, NotFound):
            await self._finish(
                job, JobStatus.FAILED, f"PixelDojo no longer knows this job: {exc.message}"
            )
        elif isinstance(exc, AuthenticationFailed):
            await self._key_refused(exc)
            await self._retry(
                job,
                "Waiting: PixelDojo refuses the API key. The job resumes once the key works.",
                delay=schedule.KEY_REFUSED_RETRY_SECONDS,
            )
        elif schedule.given_up(
            created_at=job.created_at,
            expires_at=job.expires_at,
            deadline_seconds=self.settings.job_deadline_seconds,
            now=utcnow(),
        ):
            await self._finish(
                job,
                JobStatus.FAILED,
                f"Timed out: PixelDojo could not be asked about this job ({exc.message}).",
            )
        elif isinstance(exc, RateLimited):
            await self._retry(job, None, delay=exc.retry_after)
        elif isinstance(exc, MalformedResponse):
            # An answer a strict parser chokes on (an HTML error page, cut-off JSON, no
            # status) says nothing about the job: ask again. It never fails a paid job.
            await self._retry(
                job, f"Retrying: PixelDojo's answer could not be read ({exc.message})"
            )
        else:
            await self._retry(job, f"Retrying: {exc.message}")

    async def _too_early(self, job: Job) -> bool:
        """Postpone, without asking PixelDojo, a first poll planned before jobs like it were
        known to take longer (they were submitted together, say, before any had finished)."""
        found = await anyio.to_thread.run_sync(
            self._timing, job.model, job.image_size, job.num_images
        )
        if found is None:
            return False
        wait = found.wait_for_window(_seconds_since(_started(job)))
        if not wait:
            return False
        await anyio.to_thread.run_sync(
            lambda: queue.postpone(
                self.db,
                job_id=_id(job),
                owner=self.worker_id,
                token=job.lease_token,
                delay_seconds=wait,
                callback_seen=job.webhook_at,
            )
        )
        return True

    def _poll_delay(self, job: Job) -> float:
        started = _started(job)
        # Once PixelDojo has called back about the job and still says "running" (its status
        # lagging its callback), ordinary polls: the callback will not come again.
        awaiting_callback = (
            job.webhook_requested and job.webhook_at is None and self._callbacks_arrive()
        )
        return schedule.poll_delay(
            found=self._timing(job.model, job.image_size, job.num_images),
            elapsed=(utcnow() - started).total_seconds(),
            poll_count=job.poll_count + 1,
            awaiting_callback=awaiting_callback,
            initial=self.settings.poll_initial_seconds,
            maximum=self.settings.poll_max_seconds,
        )

    # --- Storing images -----------------------------------------------------------------

    async def _download(self, job: Job) -> None:
        if utcnow() > schedule.images_expire(job):
            await self._finish(
                job,
                JobStatus.EXPIRED,
                "The images expired on PixelDojo before they could be saved. "
                "The credits it reported are kept on this job.",
            )
            return
        try:
            with ExitStack() as stack:
                staged: list[StagedImage] = []
                for index, url in enumerate(job.output_urls or []):
                    # Always asked: an image costs far more than the question, and this also
                    # holds against another machine's clock running ahead.
                    if not await self._still_mine(job):
                        log.info(
                            "job %s was taken over; its images are left to the new holder", job.id
                        )
                        return
                    path, stream = stack.enter_context(scratch_file(self._scratch_dir))
                    result = await self.client.download(
                        url, stream, max_bytes=self.settings.download_max_bytes
                    )
                    stream.flush()
                    checked = await check_image_aside(path)
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
                if not await self._still_mine(job):
                    return
                await anyio.to_thread.run_sync(
                    lambda: queue.store_images(
                        self.db,
                        self.blobs,
                        job_id=_id(job),
                        owner=self.worker_id,
                        token=job.lease_token,
                        staged=staged,
                    )
                )
        except DownloadRefused as exc:
            await self._finish(job, JobStatus.FAILED, f"The image was refused: {exc.message}")
        except UpstreamError as exc:
            await self._retry(job, f"Saving the images, retrying: {exc.message}")

    async def _still_mine(self, job: Job, *, unless_held_within: float = 0.0) -> bool:
        """Renew the job's lease if this claim still holds it (see queue.renew_lease).

        Asked before each request the job costs upstream, so a worker whose lease was taken
        over never polls or downloads again. A claim or renewal less than
        `unless_held_within` seconds old is trusted as it is: nobody can take a lease in
        its first part (the claim renewed this worker's heartbeat too).
        """
        key = (_id(job), job.lease_token)
        since = self._held_since.get(key)
        if schedule.held_within(since, now=time.monotonic(), within=unless_held_within):
            return True
        renewed_at = time.monotonic()
        mine = await anyio.to_thread.run_sync(
            lambda: queue.renew_lease(
                self.db,
                job_id=_id(job),
                owner=self.worker_id,
                token=job.lease_token,
                lease_seconds=self.settings.lease_seconds,
            )
        )
        if mine:
            self._held_since[key] = renewed_at
        return mine

    def _forget_leases(self, job_id: int | None) -> None:
        if job_id is not None and not any(
            job_id in lane.values() for lane in (self._in_flight, self._storing)
        ):
            for key in [key for key in self._held_since if key[0] == job_id]:
                del self._held_since[key]

    # --- Lost submissions -------------------------------------------------------------

    async def _reconcile(self, job: Job) -> None:
        """Find a lost submission among PixelDojo's recent jobs rather than paying twice."""
        window = self.settings.submit_window_seconds + self.settings.reconcile_window_seconds
        give_up_at = job.created_at + timedelta(seconds=window)
        if job.status is JobStatus.SUBMITTING:
            # Its submitter died mid-request: from here on it is a lost answer like any other.
            job.status = JobStatus.RECONCILING
            job.error = (
                "The server stopped while this job was being submitted, so whether PixelDojo "
                "accepted it is unknown. Looking for it in PixelDojo's recent jobs; it will not "
                "be sent again, to avoid paying twice."
            )
        note = job.error
        try:
            listed = await self.client.list_jobs()
        except AuthenticationFailed as exc:
            await self._key_refused(exc)
            await self._retry(job, note, delay=schedule.KEY_REFUSED_RETRY_SECONDS)
            return
        except UpstreamError as exc:
            if utcnow() > give_up_at or isinstance(exc, NotFound):
                await self._finish(
                    job,
                    JobStatus.UNKNOWN,
                    "Whether PixelDojo accepted this job is unknown, and its recent jobs could "
                    f"not be checked ({exc.message}). It was not sent again, to avoid paying "
                    "twice: check your PixelDojo history before submitting it again.",
                )
            else:
                await self._retry(job, note)
            return

        if await anyio.to_thread.run_sync(lambda: queue.submitting_twins(self.db, job=job)):
            # Another job asking the same is mid-submit: its upstream job could look like ours.
            await self._retry(job, note, delay=schedule.RECONCILE_RETRY_SECONDS)
            return
        submit_window = self.settings.submit_window_seconds
        matches = [
            entry
            for entry in listed
            if schedule.could_be(job, entry, submit_window_seconds=submit_window)
        ]
        linked = await anyio.to_thread.run_sync(
            lambda: queue.linked_upstream_ids(
                self.db, upstream_job_ids=[entry.job_id for entry in matches]
            )
        )
        free = [entry for entry in matches if entry.job_id not in linked]
        if len(free) == 1:
            adopted = await anyio.to_thread.run_sync(
                lambda: queue.adopt_upstream_job(
                    self.db,
                    job_id=_id(job),
                    owner=self.worker_id,
                    token=job.lease_token,
                    upstream_job_id=free[0].job_id,
                    first_poll_in=0.0,
                )
            )
            if adopted:
                log.info("job %s: found upstream as %s", job.id, free[0].job_id)
                self.wake()
                return
        if len(free) > 1:
            await self._finish(
                job,
                JobStatus.UNKNOWN,
                f"{len(free)} of PixelDojo's recent jobs could be this one, so it cannot be told "
                "which. It was not sent again; check your PixelDojo history.",
            )
        elif utcnow() > give_up_at:
            await self._finish(
                job,
                JobStatus.UNKNOWN,
                "PixelDojo's recent jobs show no job matching this one: most likely it was never "
                "accepted, and so not charged. It was not sent again; submit it again if you "
                "want it.",
            )
        else:
            await self._retry(job, note, delay=schedule.RECONCILE_RETRY_SECONDS)

    # --- Bookkeeping ----------------------------------------------------------------

    async def _key_refused(self, exc: AuthenticationFailed) -> None:
        message = exc.message
        await anyio.to_thread.run_sync(lambda: self.key_health.refused(message))

    async def _retry(self, job: Job, note: str | None, *, delay: float | None = None) -> None:
        metrics.JOB_RETRIES.labels(stage=RETRY_STAGES.get(job.status, "other")).inc()
        if delay is None:
            # Exponential backoff with full jitter, so many jobs do not retry in step.
            ceiling = schedule.backoff_ceiling(
                poll_count=job.poll_count, initial=self.settings.poll_initial_seconds
            )
            delay = random.uniform(ceiling / 2, ceiling)
        expires_in = (
            _seconds_until(schedule.images_expire(job))
            if job.status is JobStatus.DOWNLOADING
            else None
        )
        await self._reschedule(
            job, schedule.capped_retry_delay(delay, expires_in=expires_in), note=note
        )

    async def _reschedule(
        self,
        job: Job,
        delay: float,
        *,
        note: str | None = None,
        upstream_status: str | None = None,
        seen_running_seconds: float | None = None,
    ) -> None:
        await anyio.to_thread.run_sync(
            lambda: queue.reschedule(
                self.db,
                job_id=_id(job),
                owner=self.worker_id,
                token=job.lease_token,
                delay_seconds=delay,
                status=job.status,
                upstream_status=upstream_status,
                seen_running_seconds=seen_running_seconds,
                error=note,
                # A callback that came while this worker held the job brings its poll forward,
                # whatever this pass decided (a poll answered "running", a failed poll).
                callback_seen=job.webhook_at,
            )
        )

    async def _finish(self, job: Job, status: JobStatus, error: str | None) -> None:
        await anyio.to_thread.run_sync(
            lambda: queue.finish(
                self.db,
                job_id=_id(job),
                status=status,
                error=error,
                owner=self.worker_id,
                token=job.lease_token,
            )
        )


def _id(job: Job) -> int:
    assert job.id is not None
    return job.id


def _started(job: Job) -> datetime:
    return job.submitted_at or job.created_at


def _seconds_since(moment: datetime) -> float:
    return (utcnow() - moment).total_seconds()


def _seconds_until(moment: datetime) -> float:
    return (moment - utcnow()).total_seconds()
