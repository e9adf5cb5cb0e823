"""The PixelDojo client against the emulator over loopback: every answer shape, every error."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.emulator import Fault
from app.upstream import (
    AuthenticationFailed,
    DownloadRefused,
    InsufficientCredits,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    PixelDojoClient,
    RateLimited,
    ServerError,
    UpstreamState,
    UpstreamUnreachable,
    parse_job,
    retry_delay,
)
from app.upstream.errors import MAX_RETRY_DELAY_SECONDS
from tests.conftest import TEST_KEY, RunningEmulator, wait_until

pytestmark = pytest.mark.anyio

BODY = {"prompt": "a teapot", "image_size": "square_hd", "num_images": 2}


def make_client(base_url: str, key: str = TEST_KEY, **options: object) -> PixelDojoClient:
    return PixelDojoClient(base_url=base_url, api_key=SecretStr(key), **options)  # type: ignore[arg-type]


@pytest.fixture
async def client(emulator: RunningEmulator) -> AsyncIterator[PixelDojoClient]:
    pixeldojo = make_client(emulator.base_url)
    yield pixeldojo
    await pixeldojo.aclose()


async def test_submit_answers_the_documented_fields(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    job = await client.submit("seedream-4", BODY)
    assert job.job_id.startswith("job_")
    assert job.status == "pending"
    assert job.state is UpstreamState.RUNNING
    assert job.credit_cost == 2
    assert job.credits_remaining == emulator.config.initial_credits - 2
    assert job.expires_at is not None
    (run,) = emulator.emulator.requests_to("run")
    assert run.path == "/api/v1/models/seedream-4/run"
    assert run.authorization == f"Bearer {TEST_KEY}"
    assert run.body == BODY


@pytest.mark.parametrize("shape", ["images", "image", "assets", "objects"])
async def test_completed_output_is_read_in_every_shape(
    shape: str, client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.config.output_shape = shape  # type: ignore[assignment]
    emulator.config.job_seconds = 0
    submitted = await client.submit("seedream-4", BODY)
    job = await client.get_job(submitted.job_id)
    assert job.state is UpstreamState.COMPLETED
    expected = 1 if shape == "image" else 2
    assert len(job.image_urls) == expected
    assert all(url.startswith(emulator.url + "/pixeldojotemp/") for url in job.image_urls)


async def test_images_download_without_the_key(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.config.job_seconds = 0
    job = await client.get_job((await client.submit("seedream-4", BODY)).job_id)
    buffer = io.BytesIO()
    result = await client.download(job.image_urls[0], buffer, max_bytes=10_000_000)
    assert result.byte_size == len(buffer.getvalue()) > 0
    (image_request,) = emulator.emulator.requests_to("image")
    assert image_request.authorization is None


async def test_the_status_url_is_built_from_our_base_not_taken_from_the_answer(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.config.job_seconds = 0
    submitted = await client.submit("seedream-4", BODY)
    await client.get_job(submitted.job_id)
    (poll,) = emulator.emulator.requests_to("job")
    assert poll.path == f"/api/v1/jobs/{submitted.job_id}"


async def test_a_failed_job_carries_its_error(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.config.job_seconds = 0
    submitted = await client.submit("seedream-4", {**BODY, "prompt": "please [[fail]]"})
    job = await client.get_job(submitted.job_id)
    assert job.state is UpstreamState.FAILED
    assert job.error and "Generation failed" in job.error


async def test_a_wrong_key_is_an_authentication_error(emulator: RunningEmulator) -> None:
    wrong = make_client(emulator.base_url, key="pd_wrong")
    with pytest.raises(AuthenticationFailed) as error:
        await wrong.submit("seedream-4", BODY)
    assert error.value.status_code == 401
    assert error.value.message == "Invalid API key."
    await wrong.aclose()


@pytest.mark.parametrize("status", [402, 403])
@pytest.mark.parametrize("style", ["nested", "flat"])
async def test_running_out_of_credits_is_recognised_in_both_forms(
    status: int, style: str, client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.config.initial_credits = 1
    emulator.config.credits_status = status  # type: ignore[assignment]
    emulator.config.error_style = style  # type: ignore[assignment]
    with pytest.raises(InsufficientCredits) as error:
        await client.submit("seedream-4", BODY)
    assert error.value.status_code == status
    assert error.value.credits_remaining == 1
    assert "Insufficient credits" in error.value.message


async def test_aspect_ratio_is_refused_by_the_strict_emulator(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    with pytest.raises(InvalidRequest) as error:
        await client.submit("seedream-4", {**BODY, "aspect_ratio": "1:1"})
    assert "aspect_ratio" in error.value.message
    emulator.config.strict = False
    accepted = await client.submit("seedream-4", {**BODY, "aspect_ratio": "1:1"})
    assert accepted.status == "pending"


async def test_unknown_job_and_model_are_not_found(client: PixelDojoClient) -> None:
    with pytest.raises(NotFound):
        await client.get_job("job_doesnotexist")
    with pytest.raises(NotFound):
        await client.submit("no-such-model", BODY)


async def test_rate_limiting_reports_the_servers_delay(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.emulator.faults.add(Fault(route="job", status=429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited) as error:
        await client.get_job("job_x")
    assert error.value.retry_after == 7


async def test_server_errors_and_malformed_answers(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.emulator.faults.add(Fault(route="job", status=503))
    with pytest.raises(ServerError):
        await client.get_job("job_x")
    emulator.emulator.faults.add(Fault(route="job", kind="malformed"))
    with pytest.raises(MalformedResponse):
        await client.get_job("job_x")


async def test_a_dropped_answer_is_ambiguous_a_refused_connection_is_not(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.emulator.faults.add(Fault(route="run", kind="truncate"))
    with pytest.raises(UpstreamUnreachable) as dropped:
        await client.submit("seedream-4", BODY)
    assert dropped.value.request_sent is True

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    nobody = make_client(f"http://127.0.0.1:{closed_port}/api/v1")
    with pytest.raises(UpstreamUnreachable) as refused:
        await nobody.submit("seedream-4", BODY)
    assert refused.value.request_sent is False
    await nobody.aclose()


async def test_a_timeout_after_sending_is_ambiguous(emulator: RunningEmulator) -> None:
    impatient = make_client(emulator.base_url, timeout_seconds=0.2)
    emulator.emulator.faults.add(Fault(route="run", kind="delay", delay_seconds=1.0))
    with pytest.raises(UpstreamUnreachable) as error:
        await impatient.submit("seedream-4", BODY)
    assert error.value.request_sent is True
    # The upstream did receive it: exactly why the app must not resend it blindly.
    wait_until(lambda: emulator.emulator.jobs, what="the delayed job to be created")
    await impatient.aclose()


async def test_downloads_refuse_foreign_hosts_and_oversized_bodies(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    with pytest.raises(DownloadRefused, match="not an allowed host"):
        await client.download("https://elsewhere.example/x.png", io.BytesIO(), max_bytes=100)
    emulator.config.job_seconds = 0
    job = await client.get_job((await client.submit("seedream-4", BODY)).job_id)
    with pytest.raises(DownloadRefused, match="cap"):
        await client.download(job.image_urls[0], io.BytesIO(), max_bytes=100)


def test_parse_job_accepts_every_documented_shape() -> None:
    url = "https://temp.pixeldojo.ai/pixeldojotemp/1.png"
    shapes: list[dict[str, Any]] = [
        {"output": {"images": [url]}},
        {"output": {"image": url}},
        {"output": {"images": [{"url": url}]}},
        {"assets": [{"url": url}]},
    ]
    for shape in shapes:
        job = parse_job({"jobId": "job_1", "status": "completed", **shape})
        assert job.image_urls == [url], shape
    running = parse_job({"jobId": "job_1", "status": "processing"})
    assert running.state is UpstreamState.RUNNING
    for status in ("failed", "error", "cancelled", "expired"):
        failed = parse_job({"jobId": "job_1", "status": status, "error": {"message": "nope"}})
        assert failed.state is UpstreamState.FAILED
    with pytest.raises(MalformedResponse):
        parse_job({"jobId": "../models", "status": "pending"})
    with pytest.raises(MalformedResponse):
        parse_job({"jobId": "job_1", "status": "completed", "output": {}})


def test_retry_delay_reads_seconds_dates_and_reset_headers() -> None:
    now = 1_000_000.0
    assert retry_delay(httpx.Headers({"Retry-After": "12"}), now=now) == 12
    date = "Mon, 12 Jan 1970 13:46:50 GMT"  # 1,000,010 seconds after the epoch
    assert retry_delay(httpx.Headers({"Retry-After": date}), now=now) == pytest.approx(10)
    assert retry_delay(httpx.Headers({"X-RateLimit-Reset": str(now + 30)}), now=now) == 30
    assert retry_delay(httpx.Headers({}), now=now) is None
    # However long a server asks (a day; a reset given in milliseconds), the wait is bounded.
    assert retry_delay(httpx.Headers({"Retry-After": "86400"}), now=now) == MAX_RETRY_DELAY_SECONDS
    in_ms = httpx.Headers({"X-RateLimit-Reset": str(int(now * 1000))})
    assert retry_delay(in_ms, now=now) == MAX_RETRY_DELAY_SECONDS
