"""Submitting needs only the parts it is given: a database, the upstream client, the key's
health, the rules in force and something that plans the first poll. No poller, no web app."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image as PILImage
from pydantic import SecretStr
from sqlmodel import select

from app.core.errors import SubmissionFailed
from app.core.signing import Signer
from app.domain.model_params import run_from_body
from app.domain.parameters import GenerationParams
from app.domain.rules import has_builtin_record
from app.emulator.catalogue import SEEDREAM_EDIT
from app.features.jobs import queue, reads, references, submission
from app.features.jobs.submission import Submitter, submit_job
from app.features.models.catalogue import ModelCatalogue
from app.features.models.key_status import KeyHealth
from app.features.models.live_rules import LiveRules
from app.storage.blobs.choose import open_blob_store
from app.storage.blobs.protocol import CHUNK_BYTES, BlobNotFound, BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from app.upstream import PixelDojoClient
from tests.support.apps import make_settings
from tests.support.databases import DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator

pytestmark = [pytest.mark.anyio, pytest.mark.both_databases]


@dataclass
class PlannedPolls:
    """What a process that does not poll itself hands in: it only plans and nudges."""

    first_poll_in: float = 7.0
    asked: list[tuple[str, str, int]] = field(default_factory=list)
    woken: int = 0

    def first_poll_delay(
        self, *, model: str, image_size: str, num_images: int, callback: bool = False
    ) -> float:
        self.asked.append((model, image_size, num_images))
        return self.first_poll_in

    def wake(self) -> None:
        self.woken += 1


async def test_a_job_is_submitted_with_nothing_but_the_parts_it_needs(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    db = database.open(tmp_path)
    db.migrate()
    client = PixelDojoClient(base_url=emulator.base_url, api_key=SecretStr(TEST_KEY))
    polls = PlannedPolls()
    blobs = open_blob_store(
        make_settings(tmp_path, emulator, database=database), database_url=db.url
    )
    catalogue = ModelCatalogue(db=db, client=client, upstream=emulator.base_url, minutes=60)
    submitter = Submitter(
        db=db,
        client=client,
        key_health=KeyHealth(db, SecretStr(TEST_KEY)),
        rules=LiveRules(
            db=db,
            client=client,
            upstream=emulator.base_url,
            model="seedream-4",
            minutes=60,
            catalogue=catalogue.in_force,
        ),
        scheduler=polls,
        owner="web-only-process",
        submit_window_seconds=30.0,
        catalogue=catalogue,
        default_model="seedream-4",
        blobs=blobs,
        public_url=None,
        signer=Signer(b"signs reference links"),
    )
    try:
        job, created = await submit_job(
            submitter,
            params=GenerationParams(prompt="a lighthouse", num_images=2),
            model="seedream-4",
            preset=None,
        )
    finally:
        await client.aclose()
        blobs.close()
    assert created and job.id is not None
    assert job.status is JobStatus.PENDING and job.upstream_job_id is not None
    assert polls.asked == [("seedream-4", "auto_2K", 2)] and polls.woken == 1
    stored = reads.get_job(db, job_id=job.id)
    assert stored is not None
    assert stored.job.lease_owner is None, "handed to whichever worker polls next"
    assert stored.job.next_poll_at is not None and stored.job.submitted_at is not None
    planned = (stored.job.next_poll_at - stored.job.submitted_at).total_seconds()
    assert planned == pytest.approx(polls.first_poll_in, abs=0.01)
    assert len(emulator.emulator.requests_to("run")) == 1
    db.dispose()


# --- The submitter's lease ---------------------------------------------------------------


class HeldReads:
    """The store, with reading an image's bytes held until `release` is set (a slow disk,
    a bucket far away); and then, with `fail`, the bytes found gone."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self.reading = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()
        self.fail = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def iter_chunks(self, sha256: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        self.reading.set()
        try:
            assert self.release.wait(timeout=60), "the test never let the read go on"
            if self.fail:
                raise BlobNotFound(sha256)
            yield from self._store.iter_chunks(sha256, chunk_bytes)
        finally:
            self.done.set()


@dataclass
class EditRig:
    db: Database
    submitter: Submitter
    reads: HeldReads
    reference: int
    emulator: RunningEmulator

    async def start(self) -> asyncio.Task[tuple[Job, bool]]:
        """Submit an edit of the reference, and return once its bytes are being read."""
        task = asyncio.create_task(
            submit_job(
                self.submitter,
                params=run_from_body(
                    {"prompt": "the same, in winter"},
                    builtin_record=has_builtin_record(SEEDREAM_EDIT),
                ),
                model=SEEDREAM_EDIT,
                preset=None,
                reference_images=[self.reference],
            )
        )
        assert await asyncio.to_thread(self.reads.reading.wait, 30), "the reference was not read"
        return task

    def job(self) -> Job:
        with self.db.read() as session:
            return session.exec(select(Job).where(Job.model == SEEDREAM_EDIT)).one()

    def sent(self) -> int:
        return len(self.emulator.emulator.requests_to("run"))


@pytest.fixture
async def edit_rig(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> AsyncIterator[EditRig]:
    db = database.open(tmp_path)
    db.migrate()
    client = PixelDojoClient(base_url=emulator.base_url, api_key=SecretStr(TEST_KEY))
    blobs = open_blob_store(
        make_settings(tmp_path, emulator, database=database), database_url=db.url
    )
    picture = tmp_path / "reference.png"
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 48), (90, 160, 60)).save(buffer, format="PNG")
    picture.write_bytes(buffer.getvalue())
    reference = references.store_upload(db, blobs, picture, name="reference", user=None)
    held = HeldReads(blobs)
    catalogue = ModelCatalogue(db=db, client=client, upstream=emulator.base_url, minutes=60)
    submitter = Submitter(
        db=db,
        client=client,
        key_health=KeyHealth(db, SecretStr(TEST_KEY)),
        rules=LiveRules(
            db=db,
            client=client,
            upstream=emulator.base_url,
            model="seedream-4",
            minutes=60,
            catalogue=catalogue.in_force,
        ),
        scheduler=PlannedPolls(),
        owner="this process, submitting",
        submit_window_seconds=30.0,
        catalogue=catalogue,
        default_model="seedream-4",
        blobs=held,  # type: ignore[arg-type]
        public_url=None,
        signer=Signer(b"signs reference links"),
    )
    try:
        yield EditRig(db, submitter, held, reference, emulator)
    finally:
        held.release.set()
        # A read the submission stopped waiting for still ends before the store closes.
        if held.reading.is_set():
            assert await asyncio.to_thread(held.done.wait, 30)
        await client.aclose()
        blobs.close()
        db.dispose()


async def claim_again(rig: EditRig, owner: str) -> Job:
    """A worker claims the job being submitted, as it would once the lease looked run out
    (or its holder dead): under `owner`, with the next token."""
    queue.register_worker(rig.db, worker_id=owner)
    later = utcnow() + timedelta(minutes=5)
    [claimed] = queue.claim_due_jobs(rig.db, owner=owner, now=later, lease_seconds=30, limit=1)
    assert claimed.lease_token > 0
    return claimed


async def test_a_submission_whose_job_was_claimed_again_records_nothing(
    edit_rig: EditRig,
) -> None:
    """Claimed while its reference was read, even under the submitter's own name (as its
    process's worker once claimed): the submit goes out, but the answer is the new
    holder's to find upstream, and the submitter answers with the job as it stands."""
    task = await edit_rig.start()
    claimed = await claim_again(edit_rig, edit_rig.submitter.owner)
    edit_rig.reads.release.set()
    job, created = await task
    assert created and job.id == claimed.id
    assert edit_rig.sent() == 1
    held = edit_rig.job()
    assert (held.status, held.lease_owner, held.lease_token, held.upstream_job_id) == (
        JobStatus.SUBMITTING,
        edit_rig.submitter.owner,
        claimed.lease_token,
        None,
    )


async def test_a_submission_whose_job_was_claimed_again_cannot_fail_it(
    edit_rig: EditRig,
) -> None:
    """The token fences the submitter even from a claim under its own name: its reference
    turns out unreadable, but the job is no longer the one it wrote."""
    task = await edit_rig.start()
    claimed = await claim_again(edit_rig, edit_rig.submitter.owner)
    edit_rig.reads.fail = True
    edit_rig.reads.release.set()
    job, _ = await task
    assert job.status is JobStatus.SUBMITTING
    held = edit_rig.job()
    assert (held.status, held.lease_token, held.error) == (
        JobStatus.SUBMITTING,
        claimed.lease_token,
        None,
    )
    assert edit_rig.sent() == 0


async def test_an_unreadable_reference_fails_the_job_unsent(edit_rig: EditRig) -> None:
    task = await edit_rig.start()
    edit_rig.reads.fail = True
    edit_rig.reads.release.set()
    with pytest.raises(SubmissionFailed) as failed:
        await task
    assert failed.value.code == "reference_unreadable"
    held = edit_rig.job()
    assert held.status is JobStatus.FAILED and held.lease_owner is None
    assert held.error is not None and "Nothing was sent" in held.error
    assert edit_rig.sent() == 0


async def test_the_lease_running_out_while_references_are_read_ends_the_submission_first(
    edit_rig: EditRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submitter's deadline covers reading its references: the job fails, unsent, before
    its lease could pass to a worker; the read is still going when the lease runs out."""
    monkeypatch.setattr(submission, "SUBMIT_LEASE_MARGIN_SECONDS", 1.0)
    edit_rig.submitter = replace(edit_rig.submitter, submit_window_seconds=1.0)  # a 2 s lease
    task = await edit_rig.start()
    leased_until = edit_rig.job().lease_expires_at
    assert leased_until is not None
    while utcnow() <= leased_until:
        await asyncio.sleep(0.05)
    edit_rig.reads.release.set()
    with pytest.raises(SubmissionFailed) as failed:
        await task
    assert failed.value.code == "submission_timeout"
    held = edit_rig.job()
    assert held.status is JobStatus.FAILED and held.lease_owner is None
    assert held.finished_at is not None and held.finished_at < leased_until
    assert held.error is not None and "reference images took too long" in held.error
    assert edit_rig.sent() == 0
