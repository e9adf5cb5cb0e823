"""Jobs and the credits they cost: the job state machine, as the contract describes it.

A job is charged when it is made (prepaid credits), is `pending` for the first third
of its time and `processing` for the rest, then `completed`, or `failed` and refunded
(the founder's client says failed jobs are refunded). Its state is worked out from the
clock whenever it is asked for, so nothing runs in the background and a restored job
carries on where it was. Jobs and credits share one lock: a charge, the job it pays
for and a refund are each one step, and each step is saved to the state file, if any.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from app.emulator.config import EmulatorConfig
from app.emulator.state import StateFile


@dataclass
class EmulatedJob:
    job_id: str
    api_key: str
    model: str
    params: dict[str, Any]
    seeds: list[int]
    width: int
    height: int
    created_at: float
    expires_at: float
    credit_cost: float
    will_fail: bool
    never_finishes: bool = False
    refunded: bool = False
    image_names: list[str] = field(default_factory=list)
    # The first reference image (an edit), by sha256: what the output is made from.
    reference_sha: str | None = None
    # Called when the job ends (the run's webhook_url), if any.
    webhook_url: str | None = None


class JobState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class CreditsShort(Exception):
    """The key's credits do not cover the run: nothing was charged or made."""

    def __init__(self, cost: float, balance: float) -> None:
        super().__init__(f"this request costs {cost:g}, the key has {balance:g}")
        self.cost = cost
        self.balance = balance


@dataclass(frozen=True)
class NewJob:
    """What a run asks for, once its body has been checked."""

    key: str
    model: str
    params: dict[str, Any]
    prompt: str
    count: int
    seed: int | None
    width: int
    height: int
    cost: float
    reference_sha: str | None = None
    webhook_url: str | None = None


class JobBook:
    """Every job and every key's credits."""

    def __init__(self, config: EmulatorConfig, state_file: StateFile | None = None) -> None:
        self._config = config
        self._state_file = state_file
        self.jobs: dict[str, EmulatedJob] = {}
        self.credits: dict[str, float] = {}
        self._images: dict[str, tuple[str, int]] = {}
        self.lock = threading.Lock()
        self._restore()

    def balance(self, key: str) -> float:
        with self.lock:
            return self.credits.get(key, self._config.initial_credits)

    def open(self, run: NewJob) -> tuple[EmulatedJob, float]:
        """Charge the run and make its job; the job and the credits left. Raises
        CreditsShort, charging nothing, when the key cannot pay."""
        with self.lock:
            balance = self.credits.get(run.key, self._config.initial_credits)
            if balance < run.cost:
                raise CreditsShort(run.cost, balance)
            self.credits[run.key] = balance - run.cost
            now = time.time()
            job_id = "job_" + secrets.token_hex(12)
            base = run.seed if run.seed is not None and run.seed >= 0 else None
            job = EmulatedJob(
                job_id=job_id,
                api_key=run.key,
                model=run.model,
                params=run.params,
                seeds=[
                    base + i if base is not None else secrets.randbelow(2**31)
                    for i in range(run.count)
                ],
                width=run.width,
                height=run.height,
                created_at=now,
                expires_at=now + self._config.retention_seconds,
                credit_cost=run.cost,
                will_fail=self._config.fail_marker in run.prompt,
                never_finishes=self._config.never_marker in run.prompt,
                reference_sha=run.reference_sha,
                webhook_url=run.webhook_url,
            )
            for index in range(run.count):
                name = f"{int(now)}-{job_id[4:]}{index}.png"
                job.image_names.append(name)
                self._images[name] = (job_id, index)
            self.jobs[job_id] = job
            self._save()
            return job, balance - run.cost

    def find(self, job_id: str, key: str) -> EmulatedJob | None:
        """The key's own job; another key's is as good as unknown."""
        job = self.jobs.get(job_id)
        return job if job is not None and job.api_key == key else None

    def by_image(self, name: str) -> tuple[EmulatedJob, int] | None:
        """The job an image file name belongs to, and which of its images it is."""
        found = self._images.get(name)
        job = self.jobs.get(found[0]) if found else None
        return (job, found[1]) if found and job else None

    def of_key(self, key: str) -> list[EmulatedJob]:
        """The key's jobs, newest first."""
        with self.lock:
            mine = [job for job in self.jobs.values() if job.api_key == key]
        return sorted(mine, key=lambda job: job.created_at, reverse=True)

    def state(self, job: EmulatedJob, seconds: float) -> JobState:
        """Where a job that runs `seconds` upstream is now; a failed job is refunded the
        first time it is seen to have failed."""
        elapsed = time.time() - job.created_at
        if elapsed < seconds / 3:
            return JobState.PENDING
        if elapsed < seconds or job.never_finishes:
            return JobState.PROCESSING
        if job.will_fail:
            with self.lock:
                if not job.refunded:
                    job.refunded = True
                    self.credits[job.api_key] = self.credits.get(job.api_key, 0) + job.credit_cost
                    self._save()
            return JobState.FAILED
        return JobState.COMPLETED

    @staticmethod
    def has_ended(job: EmulatedJob, seconds: float) -> bool:
        """Whether the job's run is over (its images exist), without settling anything."""
        return not job.never_finishes and time.time() - job.created_at >= seconds

    # --- The state file ---------------------------------------------------------------

    def _restore(self) -> None:
        saved = self._state_file.load() if self._state_file is not None else None
        if saved is None:
            return
        try:
            jobs = [EmulatedJob(**item) for item in saved.jobs]
        except TypeError:
            return  # a file from another version: begin afresh, as with a torn one
        self.credits = saved.credits
        for job in jobs:
            self.jobs[job.job_id] = job
            for index, name in enumerate(job.image_names):
                self._images[name] = (job.job_id, index)

    def _save(self) -> None:
        """Write jobs and credits; called with the lock held, after each change. Expired
        jobs are of no use to anyone: the file stays as small as a day's jobs."""
        if self._state_file is None:
            return
        now = time.time()
        live = [asdict(job) for job in self.jobs.values() if job.expires_at > now]
        self._state_file.save(live, self.credits)
