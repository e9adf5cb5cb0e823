"""How the command line speaks: results on standard output, everything else on standard error.

What a command made goes to standard output, for scripts and pipes: paths, or with
`--json` one JSON document whose values keep their types. Messages go to standard
error (none with `-q`; more with `-v`). Progress is a line redrawn in place, its clock
ticking every second beside the status word (`Generating · 0:23 of about 0:30`), and
shows only on a terminal: a log or a pipe gets the messages alone, never a bar.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TextIO

PROG = "seedream-playground"
# Erase the line the cursor is on and go back to its start.
CLEAR_LINE = "\r\x1b[2K"


def clock(seconds: float) -> str:
    """`0:07`, `12:30`, `1:02:03`."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 job`, `2 jobs`, `1 image`, `3 images`."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def credits_text(amount: float) -> str:
    return f"{amount:g} credit{'' if amount == 1 else 's'}"


@dataclass
class Output:
    """Where a command speaks, as the person asked (`--json`, `-q`, `-v`)."""

    json: bool = False
    quiet: bool = False
    verbose: bool = False
    err: TextIO = field(default_factory=lambda: sys.stderr)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    # What to say if the command is interrupted (set once a job is sent: its id).
    interrupt_hint: str | None = None
    _progress: Progress | None = field(default=None, repr=False)

    @property
    def live(self) -> bool:
        """Whether progress shows: on a terminal, unless told to be quiet."""
        isatty = getattr(self.err, "isatty", None)
        return not self.quiet and bool(isatty and isatty())

    def say(self, message: str) -> None:
        """A message for the person (standard error), unless -q."""
        if not self.quiet:
            self._line(message)

    def detail(self, message: str) -> None:
        """A message only -v asks for."""
        if self.verbose and not self.quiet:
            self._line(message)

    def _line(self, message: str) -> None:
        progress = self._progress
        if progress is not None:
            progress.clear()
        print(message, file=self.err, flush=True)
        if progress is not None:
            progress.draw()

    def result(self, document: dict[str, Any], lines: list[str]) -> None:
        """What was made: the JSON document with --json, else one line each."""
        if self.json:
            print(json.dumps(document, indent=2, ensure_ascii=False), file=self.out, flush=True)
        else:
            for line in lines:
                print(line, file=self.out, flush=True)

    def progress(self, describe: Callable[[float], str]) -> Progress:
        """A status line for a wait: `describe(seconds since it began)` gives its text."""
        return Progress(self, describe)


class Progress:
    """A status line redrawn in place on a terminal, its clock ticking every second;
    nothing at all elsewhere. Use as `async with output.progress(describe) as progress:`,
    and call `progress.draw()` when what it describes changes."""

    def __init__(self, output: Output, describe: Callable[[float], str]) -> None:
        self._output = output
        self._describe = describe
        self.started = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._shown = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def __aenter__(self) -> Progress:
        if self._output.live:
            self._output._progress = self
            self.draw()
            self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
        self.clear()
        if self._output._progress is self:
            self._output._progress = None

    async def _tick(self) -> None:
        while True:
            # Just past the next whole second since it began: the clock moves by one.
            await asyncio.sleep(1.02 - self.elapsed % 1)
            self.draw()

    def draw(self) -> None:
        if not self._output.live:
            return
        width = shutil.get_terminal_size((80, 24)).columns
        text = self._describe(self.elapsed)[: max(10, width - 1)]
        self._output.err.write(CLEAR_LINE + text)
        self._output.err.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._output.err.write(CLEAR_LINE)
            self._output.err.flush()
            self._shown = False


def waiting_text(word: str, seconds: float, typical: float | None, extra: str = "") -> str:
    """`Generating · 0:23 of about 0:30` (or `· 0:23` with no typical time yet)."""
    about = f" of about {clock(typical)}" if typical else ""
    return f"{word} · {clock(seconds)}{about}{extra}"
