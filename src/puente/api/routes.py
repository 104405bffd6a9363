"""Assembles the /api/v1 sub-application from each domain's router."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from puente.api.broadcasts import router as broadcasts
from puente.api.business_hours import router as business_hours
from puente.api.channels import router as channels
from puente.api.chat_links import router as chat_links
from puente.api.consent import router as consent
from puente.api.contact_merges import router as contact_merges
from puente.api.contacts import router as contacts
from puente.api.conversations import router as conversations
from puente.api.gate import ApiGate
from puente.api.kb import router as kb
from puente.api.media import router as media
from puente.api.messages import router as messages
from puente.api.onboarding import router as onboarding
from puente.api.privacy import router as privacy
from puente.api.reports import router as reports
from puente.api.routing import router as routing
from puente.api.segments import router as segments
from puente.api.templates import router as templates
from puente.api.webhook_events import router as events
from puente.api.webhooks import router as webhooks
from puente.api.workflows import router as workflows
from puente.api.workspace import router as workspace
from puente.api.workspace_export import router as workspace_export
from puente.errors import PuenteError
from puente.runtime import Runtime

API_DESCRIPTION = """\
Puente's REST API. Authenticate with `Authorization: Bearer <token>`; create a token with
`puente tokens create --workspace NAME` or on the settings page. Errors are JSON:
`{"error": {"code": "...", "message": "...", "details": ...}}`.
"""


def build_api(runtime: Runtime) -> FastAPI:
    api = FastAPI(
        title="Puente API",
        version="1.0",
        description=API_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.runtime = runtime

    @api.exception_handler(PuenteError)
    async def puente_error(_request: Request, exc: PuenteError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status_code)

    @api.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own refusals (a body that is not JSON, an unknown path, a wrong
        # method) get the same error shape as everything else.
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        body = {"error": {"code": codes.get(exc.status_code, "error"), "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name fields as the client wrote them ("phone", "tags.0"), the way the domain's
        # own errors do, and say separately where they were ("body", "query", "path").
        details = [
            {"field": _field_name(e["loc"]), "message": e["msg"], "in": str(e["loc"][0])}
            for e in exc.errors()
        ]
        body = {
            "error": {"code": "invalid", "message": "the request is not valid", "details": details}
        }
        return JSONResponse(body, status_code=422)

    for router in _routers():
        api.include_router(router)
    api.add_middleware(ApiGate, db=runtime.db, max_body=runtime.settings.max_api_body_bytes)
    return api


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = loc[1:] if len(loc) > 1 and loc[0] in ("body", "query", "path", "header") else loc
    return ".".join(str(p) for p in parts)


def _routers() -> list[APIRouter]:
    """Every API router. Add new ones here."""
    # onboarding before channels: its /channels/onboardings paths must win over /{id}.
    return [
        workspace,
        workspace_export,
        onboarding,
        channels,
        chat_links,
        business_hours,
        contact_merges,  # before contacts: /contacts/duplicates must win over /{id}
        contacts,
        segments,
        consent,
        privacy,
        conversations,
        media,
        events,
        templates,
        messages,
        broadcasts,
        kb,
        routing,
        workflows,
        reports,
        webhooks,
    ]


def mount(app: FastAPI, runtime: Runtime) -> None:
    app.mount("/api/v1", build_api(runtime))
