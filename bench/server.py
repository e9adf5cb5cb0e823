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
from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from app.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parent.parent
FILES_PREFIX = "/_bench/files"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def comparison_router(files_dir: Path) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(FILES_PREFIX + "/{name}")
    async def serve_file(name: str) -> FileResponse:
        if not _SAFE_NAME.match(name) or not (files_dir / name).is_file():
            raise HTTPException(404)
        return FileResponse(files_dir / name)

    return router


def child_main(config: dict[str, Any]) -> None:
    settings = Settings(_env_file=None, **config["settings"])
    app = create_app(settings)
    if config.get("files_dir"):
        app.include_router(comparison_router(Path(config["files_dir"])))
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say they
    # are TCP, and without it every small answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port_file = Path(config["port_file"])
    partial = port_file.with_suffix(".part")
    partial.write_text(str(sock.getsockname()[1]))
    partial.rename(port_file)
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, proxy_headers=False, lifespan="on"
        )
    )
    server.run(sockets=[sock])


@dataclass
class AppProcess:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path

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
        times = self.process.cpu_times()
        return float(times.user + times.system)

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
) -> Iterator[AppProcess]:
    work_dir.mkdir(parents=True, exist_ok=True)
    port_file = work_dir / f"{name}.port"
    port_file.unlink(missing_ok=True)
    config = {
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
        running = AppProcess(name, popen, int(port_file.read_text()), log_path)
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
                time.sleep(0.05)
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
