"""The PixelDojo emulator: a stand-in faithful to docs/upstream-contract.md, served as an
ASGI app.

It is what demo mode, the tests and the benchmarks talk to over loopback HTTP:
Bearer auth, `POST /models/{apiId}/run` answering 202, jobs that move from
`pending` through `processing` to `completed` (or `failed`) over a configurable
time, real PNGs on a temporary-image path, prepaid credits, and the error
answers the contract lists. Runs are checked against fixtures written from the
contract (app/emulator/contract.py), never against the app's own rules, so a
mistake in those rules is refused here rather than shared. Where the contract has a
gap, this follows its policy lines: `aspect_ratio` is accepted and ignored unless
`strict`, other unknown fields are refused by name.

Each concern has its module: the knobs (config), the wire shapes (answers), keys
(auth), the catalogue and its schemas (catalogue, contract), checking a run
(run_rules, validator), jobs and credits (jobs, state), references, callbacks,
images (images, render), the routes (routes) and what tests use to watch and steer it
(control, faults). This class puts them together and is what tests hold: its
attributes are the emulator's memory, for a test to inspect.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette

from app.emulator.callbacks import Callback, Caller
from app.emulator.config import EmulatorConfig
from app.emulator.control import Gate, RecordedRequest, control_routes
from app.emulator.faults import FaultPlan
from app.emulator.images import Renderer
from app.emulator.jobs import EmulatedJob, JobBook
from app.emulator.references import ReceivedReference, ReferenceDesk
from app.emulator.routes import UpstreamApi
from app.emulator.state import StateFile


class Emulator:
    """The upstream, in memory; with `state_file`, its jobs and credits outlive a restart
    (demo mode: a job running when the app stops finishes after it starts again)."""

    def __init__(
        self, config: EmulatorConfig | None = None, *, state_file: Path | None = None
    ) -> None:
        self.config = config or EmulatorConfig()
        self.state_file = state_file
        saved = StateFile(state_file) if state_file is not None else None
        self.faults = FaultPlan()
        self._gate = Gate(self.config, self.faults)
        self._book = JobBook(self.config, saved)
        self._references = ReferenceDesk(
            self.config, saved.references_folder if saved is not None else None
        )
        self._renderer = Renderer(self._references)
        self._caller = Caller(self.config)
        api = UpstreamApi(
            config=self.config,
            gate=self._gate,
            book=self._book,
            references=self._references,
            caller=self._caller,
            job_seconds=self.job_seconds,
            render=self._render,
        )
        self.app = Starlette(
            lifespan=self._lifespan,
            routes=[*api.routes(), *control_routes(self.config, self.faults, self._gate)],
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self._caller.close()

    # --- What a subclass may vary (the benchmarks' does) ------------------------------

    def job_seconds(self, job: EmulatedJob) -> float:
        """How long this job runs upstream: the configured time."""
        return self.config.job_seconds

    def _render(self, job: EmulatedJob, index: int, name: str) -> bytes:
        """One of the job's pictures (called in a worker thread)."""
        return self._renderer.render(job, index, name)

    # --- Inspection, for tests and benchmarks -----------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request to the upstream's routes, in order."""
        return self._gate.requests

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """Recorded requests for one route: `run`, `job`, `jobs`, `image`, `models` or
        `schema`."""
        return self._gate.to(route)

    def reset_log(self) -> None:
        self._gate.reset()

    @property
    def served_images(self) -> dict[str, str]:
        """sha256 of every image body served, by image path: what a client should have
        stored."""
        return self._gate.served_images

    @property
    def jobs(self) -> dict[str, EmulatedJob]:
        return self._book.jobs

    @property
    def credits(self) -> dict[str, float]:
        """Each key's balance, once it has spent anything."""
        return self._book.credits

    def balance(self, api_key: str) -> float:
        return self._book.balance(api_key)

    @property
    def received_references(self) -> list[ReceivedReference]:
        """Every reference image received, decoded, in order."""
        return self._references.received

    @property
    def reference_bytes(self) -> dict[str, bytes]:
        """The bytes of the references received and kept, by sha256."""
        return self._references.bytes_by_sha

    @property
    def callbacks(self) -> list[Callback]:
        """Calls made to webhook_urls, in order."""
        return self._caller.made
