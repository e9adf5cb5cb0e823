"""`python -m app.cli.probe URL`: a container's healthcheck, in exec form.

Exits 0 when the URL answers 200 and 1 otherwise, printing one line: the answer's status
and the parts it names as failing (app/web/ops.py), or why nothing answered. The image
has no curl and no shell is needed: Docker runs this with the image's own Python.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

TIMEOUT_SECONDS = 4.0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1 or not arguments[0].startswith("http://"):
        print("usage: python -m app.cli.probe http://127.0.0.1:PORT/readyz", file=sys.stderr)
        return 2
    url = arguments[0]
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            print(f"{url}: {answer.status}")
            return 0
    except urllib.error.HTTPError as refused:
        print(f"{url}: {refused.code}{_failing(refused.read())}")
    except (OSError, ValueError) as unreachable:
        print(f"{url}: no answer ({unreachable})")
    return 1


def _failing(body: bytes) -> str:
    try:
        failing = json.loads(body).get("failing")
    except (ValueError, AttributeError):
        return ""
    return f", failing: {', '.join(failing)}" if failing else ""


if __name__ == "__main__":
    raise SystemExit(main())
