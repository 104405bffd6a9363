"""REST API for contacts: list and filter, get, create, update, tags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from puente.api.common import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Page,
    decode_cursor,
    encode_cursor,
    error_responses,
)
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.contacts import service
from puente.contacts.models import ContactSource
from puente.contacts.schemas import ContactOut

router = APIRouter(prefix="/contacts", tags=["contacts"])

ReadCaller = Annotated[ApiCaller, scoped("contacts:read")]
WriteCaller = Annotated[ApiCaller, scoped("contacts:write")]
ContactId = Annotated[int, Path(ge=1, le=2**62, description="the contact's id")]


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(
        default=None,
        max_length=40,
        description="any format with country code, e.g. +52 55 1234 5678; required unless wa_id",
    )
    wa_id: str | None = Field(default=None, max_length=32, description="WhatsApp id (digits)")
    name: str | None = Field(default=None, max_length=200)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)


class ContactUpdate(BaseModel):
    """Only what agents own; `business_app_name` follows the phone and cannot be set."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200, description="null clears it")
    custom_fields: dict[str, Any] | None = Field(
        default=None, description="merged into the existing fields; a null value removes one"
    )


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[Annotated[str, Field(max_length=100)]] = Field(max_length=50)


def _out(session: SessionDep, contact_id: int, workspace_id: int) -> ContactOut:
    contact = service.access_contact(session, workspace_id, contact_id)
    return ContactOut.of(contact, service.tags_of(session, [contact.id])[contact.id])


@router.get(
    "",
    response_model=Page[ContactOut],
    summary="List contacts, newest first",
    responses=error_responses(403),
)
def list_contacts(
    caller: ReadCaller,
    session: SessionDep,
    phone: Annotated[
        str | None, Query(max_length=40, description="exact number, written any way")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="part of a name (any of the three) or the number"),
    ] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    source: Annotated[ContactSource | None, Query(description="how the contact came in")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> Page[ContactOut]:
    filters = service.check_contact_filter(
        service.ContactFilter(phone=phone, q=q, tag=tag, source=source.value if source else None)
    )
    before_id = int(decode_cursor(cursor, 1)[0]) if cursor else None
    contacts = service.list_contacts(
        session, caller.workspace_id, filters, before_id=before_id, limit=limit + 1
    )
    more = len(contacts) > limit
    contacts = contacts[:limit]
    tags = service.tags_of(session, [c.id for c in contacts])
    return Page[ContactOut](
        items=[ContactOut.of(c, tags[c.id]) for c in contacts],
        next_cursor=encode_cursor([contacts[-1].id]) if more else None,
    )


@router.post(
    "",
    response_model=ContactOut,
    status_code=201,
    summary="Create a contact",
    responses=error_responses(400, 403, 409),
)
def create_contact(body: ContactCreate, caller: WriteCaller, session: SessionDep) -> ContactOut:
    contact = service.do_create_contact(
        session,
        workspace_id=caller.workspace_id,
        phone=body.phone,
        wa_id=body.wa_id,
        name=body.name,
        custom_fields=body.custom_fields,
        tags=body.tags,
        actor=caller.actor,
    )
    return ContactOut.of(contact, service.tags_of(session, [contact.id])[contact.id])


@router.get(
    "/{contact_id}",
    response_model=ContactOut,
    summary="Get a contact",
    responses=error_responses(403, 404),
)
def get_contact(contact_id: ContactId, caller: ReadCaller, session: SessionDep) -> ContactOut:
    return _out(session, contact_id, caller.workspace_id)


@router.patch(
    "/{contact_id}",
    response_model=ContactOut,
    summary="Change a contact's name or custom fields",
    responses=error_responses(400, 403, 404),
)
def update_contact(
    contact_id: ContactId, body: ContactUpdate, caller: WriteCaller, session: SessionDep
) -> ContactOut:
    contact = service.access_contact(session, caller.workspace_id, contact_id)
    changes: dict[str, Any] = {}
    if "name" in body.model_fields_set:
        changes["name"] = body.name
    service.do_update_contact(
        session, contact, custom_fields=body.custom_fields, actor=caller.actor, **changes
    )
    return _out(session, contact_id, caller.workspace_id)


@router.put(
    "/{contact_id}/tags",
    response_model=ContactOut,
    summary="Replace a contact's tags",
    responses=error_responses(400, 403, 404),
)
def set_tags(
    contact_id: ContactId, body: TagsIn, caller: WriteCaller, session: SessionDep
) -> ContactOut:
    contact = service.access_contact(session, caller.workspace_id, contact_id)
    return ContactOut.of(contact, service.do_set_tags(session, contact, body.tags, caller.actor))


@router.post(
    "/{contact_id}/tags",
    response_model=ContactOut,
    summary="Add tags to a contact",
    responses=error_responses(400, 403, 404),
)
def add_tags(
    contact_id: ContactId, body: TagsIn, caller: WriteCaller, session: SessionDep
) -> ContactOut:
    contact = service.access_contact(session, caller.workspace_id, contact_id)
    return ContactOut.of(contact, service.do_add_tags(session, contact, body.tags, caller.actor))


@router.delete(
    "/{contact_id}/tags/{tag}",
    response_model=ContactOut,
    summary="Remove one tag from a contact",
    responses=error_responses(403, 404),
)
def remove_tag(
    contact_id: ContactId,
    tag: Annotated[str, Path(max_length=100)],
    caller: WriteCaller,
    session: SessionDep,
) -> ContactOut:
    contact = service.access_contact(session, caller.workspace_id, contact_id)
    return ContactOut.of(contact, service.do_remove_tag(session, contact, tag, caller.actor))
