"""The app under test, served by uvicorn in a process of its own.

A separate process keeps the load generator's CPU out of the app's latency and
lets CPU seconds and memory be read for the app alone (psutil, /proc). The
child is `python -m bench.server CONFIG_JSON`; it binds a loopback port, writes
it to a file, and serves `create_app(settings)` until it is terminated. With
`files_dir`, the same app also serves those files through Starlette's
`FileResponse` under `/_bench/files/`, the static-file baseline the image
routes are compared with: same process, same server, same HTTP overhead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import Settings
from app.web.factory import create_app

ROOT = Path(__file__).resolve().parent.parent
FILES_PREFIX = "/_bench/files"
# Linux: the CPU clock of process `pid` is ((~pid) << 3) | 2 (CPUCLOCK_SCHED).
_CPUCLOCK_SCHED = 2
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def comparison_router(files_dir: Path) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(FILES_PREFIX + "/{name}")
    async def serve_file(name: str) -> FileResponse:
        if not _SAFE_NAME.match(name) or not (files_dir / name).is_file():
            raise HTTPException(404)
        return FileResponse(files_dir / name)

    return router


def bare_app() -> FastAPI:
    """The framework's floor: one `async def` route, nothing else, same server settings."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _loopback_socket() -> socket.socket:
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say they
    # are TCP, and without it every small answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def by_port(app: ASGIApp, bare: ASGIApp, bare_port: int) -> ASGIApp:
    """Requests to `bare_port` go to the bare app; everything else (lifespan too) to `app`."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and server is not None and server[1] == bare_port:
            await bare(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch


def child_main(config: dict[str, Any]) -> None:
    sockets = [_loopback_socket()]
    app: FastAPI
    if config.get("bare"):
        app = bare_app()
    else:
        settings = dict(config["settings"])
        if config.get("public"):
            # Its own address is where the upstream (the benchmark's emulator) reaches it.
            settings["public_url"] = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        app = create_app(Settings(_env_file=None, **settings))
    if config.get("files_dir"):
        app.include_router(comparison_router(Path(config["files_dir"])))
    served: ASGIApp = app
    if config.get("with_bare"):
        # The bare floor in this same process, on a port of its own: as warm as the app
        # (a process of its own, asked once a round, answered slower than the app itself).
        sockets.append(_loopback_socket())
        served = by_port(app, bare_app(), sockets[1].getsockname()[1])
    port_file = Path(config["port_file"])
    partial = port_file.with_suffix(".part")
    partial.write_text(" ".join(str(sock.getsockname()[1]) for sock in sockets))
    partial.rename(port_file)
    server = uvicorn.Server(
        uvicorn.Config(
            served, log_level="warning", access_log=False, proxy_headers=False, lifespan="on"
        )
    )
    server.run(sockets=sockets)


@dataclass
class AppProcess:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path
    # With `with_bare`: the port of the bare floor served by the same process.
    bare_port: int | None = None
    # From starting the process until /healthz answered 200: imports, migrations, ...
    start_seconds: float = 0.0
    # ... and the CPU time the process had used by then (less swayed by other work).
    start_cpu_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def process(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def cpu_seconds(self) -> float:
        """CPU time of the whole process (every thread, ended ones too), to the nanosecond:
        Linux's clock for another process (the usual counters tick in hundredths of a
        second, too coarse for a block of requests)."""
        return time.clock_gettime(((~self.pid) << 3) | _CPUCLOCK_SCHED)

    def status_kib(self, field: str) -> int:
        """A `VmRSS`/`VmHWM`-style line of /proc/PID/status, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def peak_rss_bytes(self) -> int:
        """The process's peak resident set since start (or since `reset_peak_rss`)."""
        return self.status_kib("VmHWM") * 1024

    def rss_bytes(self) -> int:
        return int(self.process.memory_info().rss)

    def reset_peak_rss(self) -> None:
        # Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def serve_app_process(
    work_dir: Path,
    name: str,
    *,
    data_dir: Path,
    api_key: str,
    base_url: str,
    files_dir: Path | None = None,
    settings: dict[str, Any] | None = None,
    start_timeout: float = 120.0,
    bare: bool = False,
    with_bare: bool = False,
    public: bool = False,
) -> Iterator[AppProcess]:
    """The app in its own process; with `bare`, the one-route framework floor instead;
    with `with_bare`, the app and, on a second port, the bare floor beside it; with
    `public`, its own loopback address as its public URL (PixelDojo calls it back)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    port_file = work_dir / f"{name}.port"
    port_file.unlink(missing_ok=True)
    config = {
        "bare": bare,
        "with_bare": with_bare,
        "public": public,
        "settings": {
            "data_dir": str(data_dir),
            "pixeldojo_api_key": api_key,
            "pixeldojo_base_url": base_url,
            **(settings or {}),
        },
        "files_dir": str(files_dir) if files_dir else None,
        "port_file": str(port_file),
    }
    # The app reads only what we pass: no developer key or setting leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELDOJO_", "PLAYGROUND_"))}
    # The child runs in the work dir: let it import `bench` (and `app`) from this checkout.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log_path = work_dir / f"{name}.log"
    spawned = time.perf_counter()
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "bench.server", json.dumps(config)],
            cwd=work_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + start_timeout
        while not port_file.exists():
            if popen.poll() is not None:
                raise RuntimeError(f"the app ({name}) exited at start:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the app ({name}) did not bind a port in time")
            time.sleep(0.02)
        ports = [int(port) for port in port_file.read_text().split()]
        running = AppProcess(name, popen, ports[0], log_path, ports[1] if with_bare else None)
        # The lifespan (migrations, sweep) runs before the first answer.
        with httpx.Client(base_url=running.url, timeout=5) as client:
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if popen.poll() is not None:
                    raise RuntimeError(f"the app ({name}) exited at start:\n{_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the app ({name}) did not answer in time")
                time.sleep(0.01)
        running.start_seconds = time.perf_counter() - spawned
        running.start_cpu_seconds = running.cpu_seconds()
        yield running
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-40:])


if __name__ == "__main__":
    child_main(json.loads(sys.argv[1]))
