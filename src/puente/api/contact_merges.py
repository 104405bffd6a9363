"""REST API for merging two contacts, splitting a merge, and the suggested duplicates."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from puente.api.common import error_responses
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.contacts import duplicates, merge, service
from puente.contacts.models import ContactMerge
from puente.contacts.schemas import ContactOut

router = APIRouter(prefix="/contacts", tags=["contacts"])

ReadCaller = Annotated[ApiCaller, scoped("contacts:read")]
WriteCaller = Annotated[ApiCaller, scoped("contacts:write")]
ContactId = Annotated[int, Path(ge=1, le=2**62, description="the contact that is kept")]
MergeId = Annotated[int, Path(ge=1, le=2**62, description="the merge's id")]


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_contact_id: int = Field(
        ge=1, le=2**62, description="the contact absorbed into this one (it stops existing)"
    )
    fields: dict[str, Literal["keep", "other"]] = Field(
        default_factory=dict,
        description='which value wins per field ("name", "custom.<key>"): keep (this '
        "contact's) or other; a field not named keeps this contact's value, or the other's "
        "when this one has none",
    )


class MergeOut(BaseModel):
    id: int
    contact_id: int = Field(description="the kept contact")
    merged_contact_id: int = Field(description="the absorbed contact (restored by a split)")
    merged_at: dt.datetime
    split_at: dt.datetime | None
    moved: dict[str, int] = Field(description='rows moved per "table.column"')
    conversations: list[int] = Field(description="the conversations that moved")

    @classmethod
    def of(cls, m: ContactMerge) -> MergeOut:
        return cls(
            id=m.id,
            contact_id=m.contact_id,
            merged_contact_id=m.merged_contact_id,
            merged_at=m.merged_at,
            split_at=m.split_at,
            moved={key: len(ids) for key, ids in (m.moved or {}).items()},
            conversations=list(m.moved_conversations or []),
        )


class MergeResult(BaseModel):
    merge: MergeOut
    contact: ContactOut


class SplitResult(BaseModel):
    merge: MergeOut
    contact: ContactOut = Field(description="the kept contact, as it is after the split")
    restored: ContactOut = Field(description="the absorbed contact, back")


class DuplicateOut(BaseModel):
    reason: Literal["same_number", "same_parent_bsuid", "same_email"]
    key: str = Field(description="the number, parent BSUID or e-mail they share")
    contacts: list[ContactOut] = Field(description="oldest first")


class DuplicatesOut(BaseModel):
    items: list[DuplicateOut]


def _contact(session: SessionDep, workspace_id: int, contact_id: int) -> ContactOut:
    contact = service.access_contact(session, workspace_id, contact_id)
    return ContactOut.of(contact, service.tags_of(session, [contact.id])[contact.id])


@router.get(
    "/duplicates",
    response_model=DuplicatesOut,
    summary="Contacts that look like the same person, for review",
    responses=error_responses(403),
)
def list_duplicates(caller: ReadCaller, session: SessionDep) -> DuplicatesOut:
    found = duplicates.find_duplicates(session, caller.workspace_id)
    tags = service.tags_of(session, sorted({c.id for s in found for c in s.contacts}))
    return DuplicatesOut(
        items=[
            DuplicateOut(
                reason=s.reason,
                key=s.key,
                contacts=[ContactOut.of(c, tags[c.id]) for c in s.contacts],
            )
            for s in found
        ]
    )


@router.post(
    "/{contact_id}/merge",
    response_model=MergeResult,
    status_code=201,
    summary="Merge another contact into this one",
    description="Everything of the other contact (conversations, messages, numbers, tags, "
    "consent, activity) moves to this one, which keeps the chosen field values; the other "
    "contact stops existing until the merge is split. Refused (409) when both have their "
    "own conversation on the same number.",
    responses=error_responses(400, 403, 404, 409),
)
def merge_contacts(
    contact_id: ContactId, body: MergeIn, caller: WriteCaller, session: SessionDep
) -> MergeResult:
    keep, other = merge.access_merge_pair(
        session, caller.workspace_id, contact_id, body.other_contact_id
    )
    done = merge.do_merge_contacts(session, keep, other, dict(body.fields), actor=caller.actor)
    return MergeResult(
        merge=MergeOut.of(done), contact=_contact(session, caller.workspace_id, contact_id)
    )


@router.post(
    "/{contact_id}/merges/{merge_id}/split",
    response_model=SplitResult,
    summary="Split a merge: the absorbed contact comes back with what moved",
    description="Refused (409, with the reasons in details) once something was written "
    "since the merge that could belong to either contact: see docs/contacts.md.",
    responses=error_responses(403, 404, 409),
)
def split_merge(
    contact_id: ContactId, merge_id: MergeId, caller: WriteCaller, session: SessionDep
) -> SplitResult:
    found = merge.access_merge(session, caller.workspace_id, contact_id, merge_id)
    restored = merge.do_split_merge(session, found, actor=caller.actor)
    return SplitResult(
        merge=MergeOut.of(found),
        contact=_contact(session, caller.workspace_id, found.contact_id),
        restored=_contact(session, caller.workspace_id, restored.id),
    )
