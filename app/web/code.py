"""The current form as code: the request the app would send PixelDojo, with the key left out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.core.errors import InvalidParameters
from app.domain.code_examples import KEY_VARIABLE, code_examples
from app.features.jobs.references import placeholder
from app.web.deps import ServicesDep, TemplatesDep
from app.web.forms import GenerateForm

router = APIRouter(include_in_schema=False)


@router.get("/playground/code", response_class=HTMLResponse)
def form_as_code(request: Request, services: ServicesDep, templates: TemplatesDep) -> Response:
    form = GenerateForm.from_post(request.query_params, model=services.settings.model)
    context: dict[str, object] = {"form": form, "key_variable": KEY_VARIABLE, "examples": []}
    try:
        model = form.model if form.model_id_is_valid() else services.settings.model
        in_force = services.rules.in_force(model)
        body = form.to_run(in_force).upstream_body()
        if form.references and in_force.image_input is not None:
            # The images themselves go as data: URIs or signed links, made when submitting.
            body[in_force.image_input.name] = in_force.image_input.body_value(
                [placeholder(image_id) for image_id in form.reference_ids()]
            )
    except InvalidParameters:
        pass  # the fragment lists form.errors instead
    else:
        context["examples"] = code_examples(
            base_url=services.settings.pixeldojo_base_url, model=form.model, body=body
        )
    return templates.TemplateResponse(request, "partials/_code.html", context)
