"""Submitting needs only the parts it is given: a database, the upstream client, the key's
health, the rules in force and something that plans the first poll. No poller, no web app."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.core.signing import Signer
from app.domain.parameters import GenerationParams
from app.features.jobs import reads
from app.features.jobs.submission import Submitter, submit_job
from app.features.models.catalogue import ModelCatalogue
from app.features.models.key_status import KeyHealth
from app.features.models.live_rules import LiveRules
from app.storage.blobs.choose import open_blob_store
from app.storage.db.tables import JobStatus
from app.upstream import PixelDojoClient
from tests.conftest import TEST_KEY, DatabaseChoice, RunningEmulator, make_settings

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
    submitter = Submitter(
        db=db,
        client=client,
        key_health=KeyHealth(db, SecretStr(TEST_KEY)),
        rules=LiveRules(
            db=db, client=client, upstream=emulator.base_url, model="seedream-4", minutes=60
        ),
        scheduler=polls,
        owner="web-only-process",
        submit_window_seconds=30.0,
        catalogue=ModelCatalogue(db=db, client=client, upstream=emulator.base_url, minutes=60),
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
