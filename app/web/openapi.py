"""The OpenAPI description, finished for the tools a team generates clients with.

FastAPI writes most of it from the routes; this adds what it cannot know: that the API
takes a bearer token (sign-in on) or nothing (a local, single-person playground); short
operation ids (`jobs_create`, not `create_job_api_jobs_post`); bytes as
`format: binary`; and, for each operation, only the errors it can answer, each an RFC
9457 problem (app/web/problems.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.domain.parameters import IMAGE_SIZES
from app.web.errors import ErrorAnswer, error_meaning
from app.web.ops import PROBE_PATHS
from app.web.problems import PROBLEM_JSON

BEARER = "bearer"
# Answered to anyone, signed in or not.
# The probes answer anyone (app/web/ops.py): no token, and no error of ours to describe.
PUBLIC_OPERATIONS = PROBE_PATHS
# The names clients are generated with, where the function's own name would not say
# which resource it acts on; any other operation is named by its function.
OPERATION_IDS = {
    "create_job": "jobs_create",
    "list_jobs": "jobs_list",
    "get_job": "jobs_get",
    "check_jobs": "jobs_check",
    "search": "gallery_search",
    "search_jobs": "gallery_search_jobs",
    "get_image_detail": "gallery_image",
    "get_image": "images_get",
    "get_thumbnail": "images_thumbnail",
    "get_preview": "images_preview",
    "download_image": "images_download",
    "download_sidecar": "images_sidecar",
    "download_zip": "gallery_zip",
    "upload_image": "uploads_create",
    "stream_job_events": "events_stream",
}
BINARY = {"type": "string", "format": "binary"}
BINARY_TYPES = ("image/", "application/zip", "application/octet-stream")
BODY_METHODS = frozenset({"post", "put", "patch"})
CHANGING_METHODS = frozenset({"post", "put", "patch", "delete"})
# Enums given one component each, however many fields and parameters take them.
SHARED_ENUMS = ("JobStatus", "ImageSize")


def operation_id(route: APIRoute) -> str:
    return OPERATION_IDS.get(route.name, route.name)


def install(app: FastAPI) -> None:
    """Have `app.openapi()` (and so /openapi.json and /docs) give the finished schema."""
    written = app.openapi

    def finished() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(written())
        return app.openapi_schema

    app.openapi = finished  # type: ignore[method-assign]


def finish(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (Account → API tokens, or `seedream-playground "
            "tokens add`). Needed once sign-in is on; a local playground takes none.",
        }
    }
    schemas = components.setdefault("schemas", {})
    problem = ErrorAnswer.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas[ErrorAnswer.__name__] = problem
    schemas["ImageSize"] = {"type": "string", "enum": list(IMAGE_SIZES), "title": "ImageSize"}
    _share_enums(schema, {name: schemas[name] for name in SHARED_ENUMS})
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            public = path in PUBLIC_OPERATIONS
            operation["security"] = [] if public else [{BEARER: []}, {}]
            _binary(operation)
            if not public:
                _errors(path, method, operation)
    return schema


def _share_enums(node: Any, shared: dict[str, dict[str, Any]], *, inside: str = "") -> None:
    """Name each enum that is one of `shared` (a filter's may add "" for "any") by its
    component, so a generated client has one type for it, not one per place it appears."""
    if isinstance(node, list):
        for item in node:
            _share_enums(item, shared, inside=inside)
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        if isinstance(value, dict) and "enum" in value and key not in shared:
            values = [item for item in value["enum"] if item not in ("", None)]
            for name, component in shared.items():
                if values and set(values) == set(component["enum"]):
                    node[key] = _named(value, name)
                    break
        _share_enums(node[key], shared, inside=key)


def _named(schema: dict[str, Any], name: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{name}"}
    rest = {key: value for key, value in schema.items() if key not in ("type", "enum")}
    extra = [item for item in schema["enum"] if item in ("", None)]
    if not extra:
        return {**ref, **rest}
    blank: dict[str, Any] = {"type": "string", "enum": [""]} if "" in extra else {"type": "null"}
    return {"anyOf": [ref, blank], **rest}


def _binary(operation: dict[str, Any]) -> None:
    """Bytes are strings of format binary, so generated clients hand back the bytes."""
    bodies = [operation.get("requestBody", {}), *operation.get("responses", {}).values()]
    for body in bodies:
        for media_type, content in body.get("content", {}).items():
            if media_type.startswith(BINARY_TYPES):
                content["schema"] = dict(BINARY)


def _errors(path: str, method: str, operation: dict[str, Any]) -> None:
    """The errors this operation can answer: sign-in (401) and refusal (403) for every one,
    404 and 422 where anything is read from the request (any number in it may name no
    record), the body's own errors where there is a body, and what the route declared."""
    statuses = {401, 403}
    if "{" in path or operation.get("parameters") or "requestBody" in operation:
        # A record named in the path, the query or the body may not exist.
        statuses |= {404, 422}
    if method in BODY_METHODS:
        statuses |= {400, 413, 415}
    if method in CHANGING_METHODS:
        statuses.add(409)
    responses = operation.setdefault("responses", {})
    declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    for status in sorted(statuses | declared):
        responses[str(status)] = {
            "description": responses.get(str(status), {}).get("description")
            or error_meaning(status),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}},
        }
