"""What a running app holds: built in the lifespan, handed to routes as one dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.access import Access
from app.blobs import BlobStore
from app.catalogue import ModelCatalogue
from app.config import Settings
from app.database import Database
from app.doctor import LastDoctorReport
from app.events import JobEvents
from app.keystatus import KeyHealth
from app.live_rules import LiveRules
from app.poller import Poller
from app.submission import Submitter
from app.thumbnails import Thumbnails
from app.upstream import PixelDojoClient

if TYPE_CHECKING:
    # Only a type here: the runner takes the Services it is part of.
    from app.grid_runner import GridRunner


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    thumbnails: Thumbnails
    client: PixelDojoClient
    poller: Poller
    key_health: KeyHealth
    access: Access
    worker_id: str
    demo_mode: bool
    events: JobEvents
    grid_runner: GridRunner
    rules: LiveRules
    doctor_reports: LastDoctorReport
    catalogue: ModelCatalogue
    submitter: Submitter
    # Where image routes send browsers (an S3 store's origin, in redirect mode), or None.
    image_origin: str | None = None
