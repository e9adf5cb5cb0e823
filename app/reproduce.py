"""The upstream request that would make an image again, as curl and as Python.

The key is never written out: both read it from the PIXELDOJO_API_KEY
environment variable, so a snippet can be pasted into a chat or a ticket.
"""

from __future__ import annotations

import json
import pprint
import shlex
from typing import Any
from urllib.parse import quote

KEY_VARIABLE = "PIXELDOJO_API_KEY"


def run_url(base_url: str, model: str) -> str:
    return f"{base_url.rstrip('/')}/models/{quote(model, safe='')}/run"


def as_curl(*, base_url: str, model: str, body: dict[str, Any]) -> str:
    status_url = f"{base_url.rstrip('/')}/jobs/JOB_ID"
    return (
        f"curl -sS -X POST {shlex.quote(run_url(base_url, model))} \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(json.dumps(body, ensure_ascii=False))}\n"
        "# then poll the jobId it answers with until its status is completed:\n"
        f'# curl -sS -H "Authorization: Bearer ${KEY_VARIABLE}" {shlex.quote(status_url)}\n'
    )


def as_python(*, base_url: str, model: str, body: dict[str, Any]) -> str:
    """A script using only the standard library: submit, poll, print the answer."""
    return f'''import json
import os
import time
import urllib.request

API = {base_url.rstrip("/")!r}
KEY = os.environ["{KEY_VARIABLE}"]
body = {pprint.pformat(body, indent=4, sort_dicts=False, width=88)}


def call(method, url, payload=None):
    request = urllib.request.Request(
        url,
        method=method,
        data=None if payload is None else json.dumps(payload).encode(),
        headers={{"Authorization": f"Bearer {{KEY}}", "Content-Type": "application/json"}},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


job = call("POST", API + "/models/{quote(model, safe="")}/run", body)
while True:
    status = call("GET", API + "/jobs/" + job["jobId"])
    if status["status"] in ("completed", "failed"):
        break
    time.sleep(2)
print(json.dumps(status, indent=2))
'''
