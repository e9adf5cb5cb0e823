"""The PixelDojo emulator: a local stand-in for the upstream, used by demo mode and the tests."""

from app.emulator.faults import Fault
from app.emulator.service import API_PREFIX, Emulator, EmulatorConfig

__all__ = ["API_PREFIX", "Emulator", "EmulatorConfig", "Fault"]
