"""What a running app holds: built in the lifespan, handed to routes as one dependency."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.features.doctor.report import LastDoctorReport
from app.features.grids.submission import Grids
from app.features.jobs.events import JobEvents
from app.features.jobs.submission import Submitter
from app.features.models.catalogue import ModelCatalogue
from app.features.models.key_status import KeyHealth
from app.features.models.live_rules import LiveRules
from app.features.ops.probes import Probes
from app.features.people.access import Access
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.previews import Previews
from app.storage.thumbnails import Thumbnails
from app.upstream import PixelDojoClient
from app.worker.poller import Poller


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    thumbnails: Thumbnails
    previews: Previews
    client: PixelDojoClient
    poller: Poller
    key_health: KeyHealth
    access: Access
    worker_id: str
    demo_mode: bool
    events: JobEvents
    grids: Grids
    rules: LiveRules
    doctor_reports: LastDoctorReport
    catalogue: ModelCatalogue
    submitter: Submitter
    probes: Probes
    # What /metrics answers (app/core/metrics.py): None unless PLAYGROUND_METRICS is on.
    metrics: CollectorRegistry | None = None
    # Where image routes send browsers (an S3 store's origin, in redirect mode), or None.
    image_origin: str | None = None
