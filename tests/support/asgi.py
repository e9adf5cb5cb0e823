"""The app driven in-process through httpx's ASGI transport, with its lifespan run (so its
poller stores the images), for the tests of blob stores and thumbnails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from fastapi import FastAPI

from app.web.factory import create_app
from tests.support.apps import SAME_ORIGIN


@asynccontextmanager
async def running(settings: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", headers=SAME_ORIGIN
        ) as client,
    ):
        yield app, client


async def finished_job(client: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    with anyio.fail_after(30):
        while True:
            job: dict[str, Any] = (await client.get(f"/api/jobs/{job_id}")).json()
            if job["finished"]:
                return job
            await anyio.sleep(0.05)
