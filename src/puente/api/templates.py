"""REST API for message templates: list, get, check, create and submit, preview, sync, delete."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from puente.api.common import error_responses
from puente.api.deps import ApiCaller, RuntimeDep, SessionDep, scoped
from puente.outbound.models import MessageTemplate
from puente.outbound.templates import service
from puente.outbound.templates.preview import render_preview
from puente.outbound.templates.rules import validate_template

router = APIRouter(prefix="/templates", tags=["templates"])

ReadCaller = Annotated[ApiCaller, scoped("templates:read")]
WriteCaller = Annotated[ApiCaller, scoped("templates:write")]
TemplateId = Annotated[int, Path(ge=1, le=2**62, description="the template's id in Puente")]


class TemplateOut(BaseModel):
    id: int
    waba_id: str
    name: str
    language: str
    category: str
    status: str = Field(
        description="DRAFT (local only), PENDING, APPROVED, REJECTED, PAUSED, DISABLED, ..."
    )
    status_reason: str | None = Field(description="Meta's reason for a rejection, pause or disable")
    status_changed_at: dt.datetime | None
    parameter_format: str = Field(description="positional ({{1}}) or named ({{order_id}})")
    components: list[dict[str, Any]]
    meta_id: str | None = Field(description="Meta's id for this language variant (hsm_id)")
    quality: str | None
    created_at: dt.datetime
    last_synced_at: dt.datetime | None

    @classmethod
    def of(cls, t: MessageTemplate) -> TemplateOut:
        return cls(
            id=t.id,
            waba_id=t.waba_id,
            name=t.name,
            language=t.language,
            category=t.category,
            status=t.status,
            status_reason=t.status_reason,
            status_changed_at=t.status_changed_at,
            parameter_format=t.parameter_format,
            components=t.components or [],
            meta_id=t.meta_id,
            quality=t.quality,
            created_at=t.created_at,
            last_synced_at=t.last_synced_at,
        )


class TemplateList(BaseModel):
    items: list[TemplateOut]


class TemplateIn(BaseModel):
    """Meta's create body. Types may be written in any case."""

    model_config = ConfigDict(extra="forbid")

    name: Any = Field(description="lowercase letters, digits and _, at most 512")
    category: Any = Field(description="MARKETING, UTILITY or AUTHENTICATION")
    language: Any = Field(description="e.g. es, es_MX, en_US")
    parameter_format: Any = Field(default="positional", description="positional or named")
    components: Any = Field(description="HEADER?, BODY, FOOTER?, BUTTONS? as in Meta's API")
    waba_id: str | None = Field(
        default=None, description="needed only when the workspace has several WABAs"
    )
    submit: bool = Field(default=True, description="false keeps a local draft, not sent to Meta")

    def template(self) -> dict[str, Any]:
        return self.model_dump(exclude={"waba_id", "submit"})


class Problem(BaseModel):
    field: str
    code: str
    message: str


class CheckOut(BaseModel):
    valid: bool
    problems: list[Problem]


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: dict[Literal["header", "body", "buttons"], dict[str, str]] = Field(
        default_factory=dict,
        description='e.g. {"body": {"1": "Ana"}} or {"body": {"order_id": "A-17"}};'
        " missing ones use the template's samples",
    )


class PreviewOut(BaseModel):
    header_format: str | None
    header: str | None
    body: str
    footer: str | None
    buttons: list[dict[str, str]]
    missing: list[str] = Field(description="variables without a value or sample")


class SyncOut(BaseModel):
    waba_id: str
    created: int
    updated: int
    removed: int


@router.get(
    "", response_model=TemplateList, summary="List templates", responses=error_responses(403)
)
def list_templates(
    caller: ReadCaller,
    session: SessionDep,
    status: Annotated[str | None, Query(max_length=32)] = None,
    name: Annotated[str | None, Query(max_length=512)] = None,
    language: Annotated[str | None, Query(max_length=16)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
) -> TemplateList:
    rows = service.list_templates(
        session,
        caller.workspace_id,
        status=status,
        name=name,
        language=language,
        category=category,
    )
    return TemplateList(items=[TemplateOut.of(t) for t in rows])


@router.post(
    "/check",
    response_model=CheckOut,
    summary="Check a template against Meta's rules without creating it",
    responses=error_responses(403),
)
def check_template(body: TemplateIn, caller: ReadCaller) -> CheckOut:
    problems = validate_template(body.template())
    return CheckOut(valid=not problems, problems=[Problem(**p.as_dict()) for p in problems])


@router.post(
    "",
    response_model=TemplateOut,
    status_code=201,
    summary="Create a template and submit it to Meta for review",
    description="Refused with 422 `template_invalid` and every problem in `details` when the"
    " template breaks Meta's rules; nothing is sent to Meta then.",
    responses=error_responses(403, 404, 409, 502),
)
def create_template(
    body: TemplateIn, caller: WriteCaller, session: SessionDep, runtime: RuntimeDep
) -> TemplateOut:
    template = service.do_create_template(
        session,
        runtime,
        workspace_id=caller.workspace_id,
        data=body.template(),
        waba_id=body.waba_id,
        submit=body.submit,
        actor=caller.actor,
    )
    return TemplateOut.of(template)


@router.post(
    "/sync",
    response_model=list[SyncOut],
    summary="Read every template from Meta now",
    responses=error_responses(403, 502),
)
def sync_templates(caller: WriteCaller, session: SessionDep, runtime: RuntimeDep) -> list[SyncOut]:
    results = service.do_sync_workspace(session, runtime, caller.workspace_id, caller.actor)
    return [
        SyncOut(waba_id=r.waba_id, created=r.created, updated=r.updated, removed=r.removed)
        for r in results
    ]


@router.get(
    "/{template_id}",
    response_model=TemplateOut,
    summary="Get a template",
    responses=error_responses(403, 404),
)
def get_template(template_id: TemplateId, caller: ReadCaller, session: SessionDep) -> TemplateOut:
    return TemplateOut.of(service.access_template(session, caller.workspace_id, template_id))


@router.post(
    "/{template_id}/submit",
    response_model=TemplateOut,
    summary="Submit a draft to Meta for review",
    responses=error_responses(403, 404, 409, 502),
)
def submit_template(
    template_id: TemplateId, caller: WriteCaller, session: SessionDep, runtime: RuntimeDep
) -> TemplateOut:
    template = service.access_template(session, caller.workspace_id, template_id)
    return TemplateOut.of(service.do_submit_template(session, runtime, template, caller.actor))


@router.post(
    "/{template_id}/preview",
    response_model=PreviewOut,
    summary="The message as a customer would see it, with sample or given values",
    responses=error_responses(403, 404),
)
def preview_template(
    template_id: TemplateId, body: PreviewIn, caller: ReadCaller, session: SessionDep
) -> PreviewOut:
    template = service.access_template(session, caller.workspace_id, template_id)
    p = render_preview(template.components or [], {k: v for k, v in body.values.items()})
    return PreviewOut(
        header_format=p.header_format,
        header=p.header,
        body=p.body,
        footer=p.footer,
        buttons=p.buttons,
        missing=p.missing,
    )


@router.delete(
    "/{template_id}",
    status_code=204,
    summary="Delete a template (this language variant) at Meta and here",
    responses=error_responses(403, 404, 502),
)
def delete_template(
    template_id: TemplateId, caller: WriteCaller, session: SessionDep, runtime: RuntimeDep
) -> Response:
    template = service.access_template(session, caller.workspace_id, template_id)
    service.do_delete_template(session, runtime, template, caller.actor)
    return Response(status_code=204)
