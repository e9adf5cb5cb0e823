"""Serve an ASGI app on a loopback port from a background thread.

Demo mode runs the emulator this way beside the app, so the app's client talks
to it over real HTTP exactly as it would to PixelDojo; tests serve the emulator
and the app this way for the browser.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

THREAD_PREFIX = "loopback-server-"


class _QuietLoopbackInfo(logging.Filter):
    """Keep a loopback server's chatter ("Uvicorn running on ...", its access lines) out of
    the app's log: demo mode's emulator is an implementation detail, not a second server."""

    def filter(self, record: logging.LogRecord) -> bool:
        thread = record.threadName or ""
        return record.levelno >= logging.WARNING or not thread.startswith(THREAD_PREFIX)


for _name in ("uvicorn.error", "uvicorn.access"):
    logging.getLogger(_name).addFilter(_QuietLoopbackInfo())


class LoopbackServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say they
        # are TCP; without it every answer sent in two writes (headers, then body) waits
        # ~40 ms for the client's delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        # log_config=None: a second uvicorn must not reconfigure the host process's logging.
        # access_log stays on: uvicorn turns it off by emptying the process-wide
        # "uvicorn.access" logger, which silenced the app's own request log in demo mode.
        # The filter above keeps this server's lines out instead.
        config = uvicorn.Config(
            app, log_config=None, access_log=True, lifespan="auto", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"{THREAD_PREFIX}{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        # uvicorn offers no start-up event, only the `started` flag: poll it with a deadline.
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the loopback server failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError("the loopback server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
