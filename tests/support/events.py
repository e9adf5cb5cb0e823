"""Server-Sent Events read as a browser reads them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx


def read_events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from an SSE response, as a browser would assemble them."""
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))
        elif line == "data:":
            data.append("")
