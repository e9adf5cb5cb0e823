"""The current form as code: the request the app would send PixelDojo, with the key left out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.code_examples import KEY_VARIABLE, code_examples
from app.errors import InvalidParameters
from app.web.deps import ServicesDep, TemplatesDep
from app.web.forms import GenerateForm

router = APIRouter(include_in_schema=False)


@router.get("/playground/code", response_class=HTMLResponse)
def form_as_code(request: Request, services: ServicesDep, templates: TemplatesDep) -> Response:
    form = GenerateForm.from_post(request.query_params, model=services.settings.model)
    context: dict[str, object] = {"form": form, "key_variable": KEY_VARIABLE, "examples": []}
    try:
        model = form.model if form.model_id_is_valid() else services.settings.model
        body = form.to_params(services.rules.in_force(model).rules).upstream_body()
    except InvalidParameters:
        pass  # the fragment lists form.errors instead
    else:
        context["examples"] = code_examples(
            base_url=services.settings.pixeldojo_base_url, model=form.model, body=body
        )
    return templates.TemplateResponse(request, "partials/_code.html", context)
