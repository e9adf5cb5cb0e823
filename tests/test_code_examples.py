"""The form as code: the exact upstream body, correctly quoted, and never the key."""

from __future__ import annotations

import ast
import json
import re
import shlex

from app.core.config import Settings
from app.domain.code_examples import code_examples
from app.domain.parameters import GenerationParams
from tests.support.apps import RunningApp
from tests.support.emulators import TEST_KEY

TRICKY = GenerationParams(
    prompt='the lighthouse keeper\'s "last" night — 灯台, $HOME `id`\nsecond line',
    image_size="custom",
    customWidth=3000,
    customHeight=2000,
    seed=42,
    num_images=2,
)


def examples() -> dict[str, str]:
    base = Settings.model_fields["pixeldojo_base_url"].default
    found = code_examples(base_url=base, model="seedream-4", body=TRICKY.upstream_body())
    return {example.slug: example.code for example in found}


def test_curl_sends_exactly_the_upstream_body_to_pixeldojo() -> None:
    words = shlex.split(examples()["curl"].replace("\\\n", " "))
    assert words[:4] == ["curl", "-X", "POST", "https://pixeldojo.ai/api/v1/models/seedream-4/run"]
    assert "Authorization: Bearer $PIXELDOJO_API_KEY" in words
    body = words[words.index("-d") + 1]
    assert json.loads(body) == TRICKY.upstream_body()


def test_python_and_javascript_carry_the_same_body() -> None:
    code = examples()
    tree = ast.parse(code["python"])
    assignment = next(
        node
        for node in tree.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "body"  # type: ignore[attr-defined]
    )
    assert ast.literal_eval(assignment.value) == TRICKY.upstream_body()
    assert "os.environ['PIXELDOJO_API_KEY']" in code["python"]
    literal = re.search(r"const body = (\{.*?\});", code["javascript"], re.DOTALL)
    assert literal is not None
    assert json.loads(literal.group(1)) == TRICKY.upstream_body()
    assert "process.env.PIXELDOJO_API_KEY" in code["javascript"]


def test_the_code_fragment_follows_the_form_and_never_holds_the_key(app: RunningApp) -> None:
    query = {"prompt": "a fox", "image_size": "square_hd", "num_images": "1", "model": "seedream-4"}
    answer = app.client.get("/playground/code", params=query)
    assert answer.status_code == 200
    assert TEST_KEY not in answer.text
    assert "/models/seedream-4/run" in answer.text
    assert "&#34;image_size&#34;: &#34;square_hd&#34;" in answer.text

    bad = app.client.get("/playground/code", params={**query, "prompt": "", "model": "Bad Model"})
    assert "<code>prompt</code> must not be empty" in bad.text
    assert "curl" not in bad.text
