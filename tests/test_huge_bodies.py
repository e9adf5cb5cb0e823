"""Bodies are counted as they stream: a 300 MB chunked body is answered 413 at 1 MiB, and the
server process barely grows. Malformed requests are 4xx, never 500."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from app.web.bodies import FORM_AND_JSON_LIMIT, BodyLimit, body_limit_for
from tests.support.apps import RunningApp, in_process, make_settings
from tests.support.emulators import RunningEmulator
from tests.support.processes import AppProcess

CHUNK = b"x" * (1024 * 1024)
HUGE_MIB = 300
GROWTH_LIMIT = 50 * 1024 * 1024


# A multipart body's opening, so its parser reads on into the endless field that follows.
MULTIPART_START = b'--x\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n'


def send_chunked(
    port: int, path: str, content_type: str, *, mib: int = HUGE_MIB, start: bytes = b""
) -> int:
    """POST `mib` MiB to `path` chunked (no Content-Length), all of it, as fast as the
    server takes it (an attacker does not stop at the answer). Returns the answer's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {content_type}\r\nSec-Fetch-Site: same-origin\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        framed = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
        try:
            if start:
                sock.sendall(b"%x\r\n" % len(start) + start + b"\r\n")
            for _ in range(mib):
                sock.sendall(framed)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: its answer is what counts
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
    return int(status_line.split()[1])


class PeakMemory:
    """The highest resident size of a process, sampled every few milliseconds."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def server(tmp_path: Path, emulator: RunningEmulator) -> Iterator[AppProcess]:
    process = AppProcess(tmp_path / "data", emulator).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_a_300_mb_chunked_body_is_refused_and_the_server_barely_grows(
    server: AppProcess,
) -> None:
    targets = [
        ("/api/jobs", "application/json", b""),
        ("/sign-in", "application/x-www-form-urlencoded", b""),
        # The playground's form, posted as a browser without JavaScript does.
        ("/jobs", "multipart/form-data; boundary=x", MULTIPART_START),
    ]
    assert server.process is not None
    # Warm up: every route has answered once, so what is measured is the body alone.
    for path, content_type, start in targets:
        assert send_chunked(server.port, path, content_type, mib=2, start=start) == 413, path
    baseline = psutil.Process(server.process.pid).memory_info().rss
    started = time.monotonic()
    with PeakMemory(server.process.pid) as memory:
        for path, content_type, start in targets:
            assert send_chunked(server.port, path, content_type, start=start) == 413, path
    growth = memory.peak - baseline
    print(
        f"\n300 MB chunked bodies to {len(targets)} routes: 413 each in "
        f"{time.monotonic() - started:.1f}s; server RSS {baseline / 2**20:.0f} MB → peak "
        f"{memory.peak / 2**20:.0f} MB (+{growth / 2**20:.1f} MB)"
    )
    assert growth < GROWTH_LIMIT


def test_a_declared_length_over_the_limit_is_refused_unread(app: RunningApp) -> None:
    port = int(app.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST /sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {300 * 2**20}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
        )
        # Not a byte of the body sent: the answer comes anyway, whole, and the server closes.
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"request_too_large" in answer


def test_bodies_up_to_the_limit_go_through(tmp_path: Path, emulator: RunningEmulator) -> None:
    with in_process(make_settings(tmp_path / "data", emulator)) as client:
        # JSON may carry whitespace: 900 KB of it is a body within the limit.
        padded = b'{"name": "x"' + b" " * 900_000 + b"}"
        fits = client.post(
            "/api/collections", content=padded, headers={"Content-Type": "application/json"}
        )
        assert fits.status_code == 201, fits.text
        over = client.post("/api/collections", json={"name": "x" + " " * FORM_AND_JSON_LIMIT})
        assert over.status_code == 413
        assert over.json()["error"]["code"] == "request_too_large"
        page = client.post(
            "/collections", data={"name": "y" * (FORM_AND_JSON_LIMIT + 1)}, headers={}
        )
        assert page.status_code == 413 and "larger than this address accepts" in page.text


def test_uploads_name_their_own_limit() -> None:
    uploads = {"/api/uploads": 64 * 2**20}
    assert body_limit_for("/api/uploads/1", uploads) == 64 * 2**20
    assert body_limit_for("/api/jobs", uploads) == FORM_AND_JSON_LIMIT
    assert BodyLimit(app=lambda *_: None, uploads=uploads).uploads == uploads  # type: ignore[arg-type]


# --- Malformed requests: 4xx, never 500 -------------------------------------------------


def test_malformed_requests_are_refused_not_crashed_on(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    # No browser headers, as a script sends: the cross-site check reads the form's token.
    with in_process(make_settings(tmp_path / "data", emulator), headers={}) as client:
        for path in ("/api/collections", "/api/jobs", "/jobs", "/sign-in"):
            answer = client.post(
                path,
                content=b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--x--\r\n",
                headers={"Content-Type": "multipart/form-data"},
            )
            assert 400 <= answer.status_code < 500, (path, answer.status_code)
        for path in (
            "/api/collections/1",
            "/api/collections/1/images/1",
            "/api/gallery/images/1/favourite",
        ):
            for content_type in (
                "multipart/form-data",
                "application/x-www-form-urlencoded",
                "text/plain",
                "application/xml",
                "image/png",
                "",
            ):
                answer = client.delete(
                    path,
                    content=b"\x00\xff garbage",
                    headers={"Content-Type": content_type},
                )
                assert 400 <= answer.status_code < 500, (path, content_type, answer.status_code)
        huge = str(2**64)
        for path in (
            f"/events/jobs?ids={huge}",
            f"/jobs/cards?ids={huge}",
            f"/events/jobs?ids=1,{huge}",
            "/events/jobs?ids=-5",
        ):
            assert client.get(path).status_code == 422, path
