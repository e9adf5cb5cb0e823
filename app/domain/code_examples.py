"""The playground form as requests to PixelDojo's API: curl, Python (httpx), JavaScript (fetch).

The body is exactly what the app would send upstream (`GenerationParams.upstream_body()`),
and the key is read from an environment variable, never written out: the real key
must not reach a page.
"""

from __future__ import annotations

import json
import pprint
from dataclasses import dataclass
from typing import Any

KEY_VARIABLE = "PIXELDOJO_API_KEY"


@dataclass(frozen=True)
class CodeExample:
    slug: str
    label: str
    code: str


def run_url(base_url: str, model: str) -> str:
    return f"{base_url.rstrip('/')}/models/{model}/run"


def code_examples(*, base_url: str, model: str, body: dict[str, Any]) -> list[CodeExample]:
    url = run_url(base_url, model)
    pretty = json.dumps(body, indent=2, ensure_ascii=False)
    return [
        CodeExample("curl", "curl", _curl(url, body)),
        CodeExample("python", "Python", _python(url, body)),
        CodeExample("javascript", "JavaScript", _javascript(url, pretty)),
    ]


def _curl(url: str, body: dict[str, Any]) -> str:
    # Single-quoted for the shell: a quote inside the JSON closes, escapes and reopens.
    data = json.dumps(body, ensure_ascii=False).replace("'", "'\\''")
    return (
        f"curl -X POST '{url}' \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{data}'"
    )


def _python(url: str, body: dict[str, Any]) -> str:
    # Python's own spelling: another model's body may hold true, false or null.
    literal = pprint.pformat(body, indent=4, width=88, sort_dicts=False)
    return (
        "import os\n\nimport httpx\n\n"
        f"body = {literal}\n"
        "response = httpx.post(\n"
        f'    "{url}",\n'
        f'    headers={{"Authorization": f"Bearer {{os.environ[\'{KEY_VARIABLE}\']}}"}},\n'
        "    json=body,\n"
        "    timeout=60,\n"
        ")\n"
        "response.raise_for_status()\n"
        "job = response.json()  # then poll job['statusUrl'] until it is completed\n"
        "print(job)"
    )


def _javascript(url: str, pretty: str) -> str:
    return (
        f"const body = {pretty};\n\n"
        f'const response = await fetch("{url}", {{\n'
        '  method: "POST",\n'
        "  headers: {\n"
        f"    Authorization: `Bearer ${{process.env.{KEY_VARIABLE}}}`,\n"
        '    "Content-Type": "application/json",\n'
        "  },\n"
        "  body: JSON.stringify(body),\n"
        "});\n"
        "if (!response.ok) throw new Error(`PixelDojo answered ${response.status}`);\n"
        "const job = await response.json(); // then poll job.statusUrl until it is completed\n"
        "console.log(job);"
    )
