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
    ImageHosts,
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
    registrable_domain,
    retry_delay,
)
from app.upstream.errors import MAX_RETRY_DELAY_SECONDS
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.waiting import wait_until

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
    # Unreadable answers are MalformedResponse: a passing fault to the poller.
    for body in (None, "", '{"jobId": "job_x", "sta'):
        emulator.emulator.faults.add(Fault(route="job", kind="malformed", body=body))
        with pytest.raises(MalformedResponse):
            await client.get_job("job_x")


async def test_a_submit_answer_without_a_status_is_a_pending_job(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.emulator.faults.add(Fault(route="run", kind="edit", drop=["status"]))
    job = await client.submit("seedream-4", BODY)
    assert job.state is UpstreamState.RUNNING
    assert job.status == "pending"
    assert len(emulator.emulator.jobs) == 1


@pytest.mark.parametrize("form", ["unix", "unix_ms"])
async def test_expires_at_as_unix_seconds_or_milliseconds(
    form: str, client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.config.expires_format = form  # type: ignore[assignment]
    job = await client.submit("seedream-4", BODY)
    (upstream,) = emulator.emulator.jobs.values()
    assert job.expires_at is not None
    assert job.expires_at.timestamp() == pytest.approx(upstream.expires_at, abs=1)


async def test_error_codes_match_whatever_their_case(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    emulator.config.initial_credits = 0
    emulator.config.error_codes_upper = True
    with pytest.raises(InsufficientCredits) as error:
        await client.submit("seedream-4", BODY)
    assert error.value.code == "insufficient_credits"
    assert error.value.status_code == 403


async def test_the_model_card_and_schema_are_read(
    client: PixelDojoClient, emulator: RunningEmulator
) -> None:
    card = await client.model("seedream-4")
    assert card["apiId"] == "seedream-4"
    schema = await client.model_schema("seedream-4")
    assert schema["schema"]["additionalProperties"] is False
    with pytest.raises(NotFound):
        await client.model("no-such-model")


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


def test_parse_job_reads_odd_answers_by_policy() -> None:
    url = "https://temp.pixeldojo.ai/pixeldojotemp/1.png"
    for word in ("succeeded", "success", "complete", "done", "finished", "COMPLETED", " Done "):
        job = parse_job({"jobId": "job_1", "status": word, "output": {"images": [url]}})
        assert job.state is UpstreamState.COMPLETED, word
    # Images mean finished whatever the word, unless the word is a failure; no word at all too.
    for running_word in ("processing", "queued", "running", None):
        answer: dict[str, Any] = {"jobId": "job_1", "output": {"images": [url]}}
        if running_word:
            answer["status"] = running_word
        assert parse_job(answer).state is UpstreamState.COMPLETED, running_word
        assert parse_job(answer).output_shape == "output.images[]"
    failed = parse_job({"jobId": "job_1", "status": "failed", "output": {"images": [url]}})
    assert failed.state is UpstreamState.FAILED
    assert parse_job({"jobId": "job_1", "status": "processing"}).state is UpstreamState.RUNNING
    with pytest.raises(MalformedResponse):
        parse_job({"jobId": "job_1"})  # no status, no images: unreadable
    assert parse_job({"jobId": "job_1"}, default_status="pending").status == "pending"
    assert parse_job(
        {"jobId": "job_1", "status": "completed", "assets": [{"url": url}]}
    ).output_shape == ("assets[].url")


@pytest.mark.parametrize(
    "value",
    ["2025-01-23T12:00:00Z", 1737633600, 1737633600000, "1737633600", 1737633600.0],
    ids=["iso", "unix", "unix-ms", "unix-text", "unix-float"],
)
def test_expires_at_is_read_in_every_form(value: Any) -> None:
    job = parse_job({"jobId": "job_1", "status": "pending", "expiresAt": value})
    assert job.expires_at is not None
    assert job.expires_at.isoformat() == "2025-01-23T12:00:00+00:00"


def test_retry_delay_reads_seconds_dates_and_reset_headers() -> None:
    now = 1_737_633_600.0  # 2025-01-23 12:00:00 UTC
    assert retry_delay(httpx.Headers({"Retry-After": "12"}), now=now) == 12
    assert retry_delay(httpx.Headers({"Retry-After": "0.5"}), now=now) == 0.5
    assert retry_delay(httpx.Headers({"Retry-After": " 1.25 "}), now=now) == 1.25
    date = "Thu, 23 Jan 2025 12:00:10 GMT"
    assert retry_delay(httpx.Headers({"Retry-After": date}), now=now) == pytest.approx(10)
    # X-RateLimit-Reset: a Unix time (seconds or milliseconds) or seconds from now, by size.
    assert retry_delay(httpx.Headers({"X-RateLimit-Reset": str(now + 30)}), now=now) == 30
    assert retry_delay(httpx.Headers({"X-RateLimit-Reset": "30"}), now=now) == 30
    assert retry_delay(httpx.Headers({"X-RateLimit-Reset": "2.5"}), now=now) == 2.5
    in_ms = httpx.Headers({"X-RateLimit-Reset": str(int((now + 7) * 1000))})
    assert retry_delay(in_ms, now=now) == pytest.approx(7)
    assert retry_delay(httpx.Headers({"X-RateLimit-Reset": str(now - 5)}), now=now) == 0
    assert retry_delay(httpx.Headers({}), now=now) is None
    assert retry_delay(httpx.Headers({"Retry-After": "soon"}), now=now) is None
    # However long a server asks (a day), the wait is bounded.
    assert retry_delay(httpx.Headers({"Retry-After": "86400"}), now=now) == MAX_RETRY_DELAY_SECONDS


def test_image_hosts_are_the_api_s_domain_its_sub_domains_and_the_setting() -> None:
    hosts = ImageHosts("pixeldojo.ai", ["cdn.example.com", "*.images.example.org"])
    for allowed in ("pixeldojo.ai", "temp.pixeldojo.ai", "a.b.pixeldojo.ai", "cdn.example.com"):
        assert hosts.allows(allowed), allowed
    assert hosts.allows("x.images.example.org")
    for refused in ("evilpixeldojo.ai", "pixeldojo.ai.evil.com", "example.com", "ai", ""):
        assert not hosts.allows(refused), refused
    assert registrable_domain("api.pixeldojo.ai") == "pixeldojo.ai"
    assert registrable_domain("api.example.co.uk") == "example.co.uk"
    assert registrable_domain("127.0.0.1") == "127.0.0.1"
    loopback = ImageHosts("127.0.0.1")
    assert loopback.allows("127.0.0.1") and not loopback.allows("0.0.1")
    message = hosts.refusal("images.elsewhere.net")
    assert "'images.elsewhere.net'" in message
    assert "PLAYGROUND_IMAGE_HOSTS" in message
