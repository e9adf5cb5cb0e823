"""The PixelDojo emulator: a local stand-in for the upstream, used by demo mode and the tests."""

from app.emulator.answers import API_PREFIX
from app.emulator.config import EmulatorConfig
from app.emulator.faults import Fault
from app.emulator.jobs import EmulatedJob
from app.emulator.server import Emulator

__all__ = ["API_PREFIX", "EmulatedJob", "Emulator", "EmulatorConfig", "Fault"]
