"""The PixelDojo emulator served on loopback, with the key the tests' apps send it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app.core.loopback import LoopbackServer
from app.emulator import API_PREFIX, Emulator, EmulatorConfig

# Recognisable, so a test can look for it anywhere it must not be.
TEST_KEY = "pd_test_" + secrets.token_hex(16)


@dataclass
class RunningEmulator:
    emulator: Emulator
    url: str

    @property
    def base_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def config(self) -> EmulatorConfig:
        return self.emulator.config


@contextmanager
def serve_emulator(**config: Any) -> Iterator[RunningEmulator]:
    options: dict[str, Any] = {
        # Short, since most tests wait for jobs to end; tests of a job in flight set their own.
        "job_seconds": 0.1,
        "strict": True,  # the client must never need the lenient mode
        "api_keys": frozenset({TEST_KEY}),
    }
    options.update(config)
    emulator = Emulator(EmulatorConfig(**options))
    with LoopbackServer(emulator.app) as server:
        yield RunningEmulator(emulator, server.url)
