"""API shapes for contacts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from puente.contacts.models import Contact


class ContactOut(BaseModel):
    id: int
    wa_id: str | None
    phone: str | None = Field(description="E.164, e.g. +5215512345678")
    name: str | None = Field(
        description="the display name: Puente's, else the phone's, else WhatsApp's"
    )
    profile_name: str | None = Field(description="the name on the customer's WhatsApp profile")
    business_app_name: str | None = Field(description="the name kept in the owner's Business app")
    in_address_book: bool = Field(
        description="whether the contact is in the owner's Business app address book"
    )
    removed_from_address_book_at: dt.datetime | None = Field(
        description="when the owner removed it from the Business app address book"
    )
    sources: list[str] = Field(description="e.g. whatsapp, business_app, history, api")
    custom_fields: dict[str, Any]
    tags: list[str] = []
    created_at: dt.datetime

    @classmethod
    def of(cls, c: Contact, tags: list[str] | None = None) -> ContactOut:
        return cls(
            id=c.id,
            wa_id=c.wa_id,
            phone=c.phone_e164,
            name=c.display_name or None,
            profile_name=c.profile_name,
            business_app_name=c.business_app_name,
            in_address_book=c.in_address_book,
            removed_from_address_book_at=c.business_app_removed_at,
            sources=c.sources or [],
            custom_fields=c.custom_fields or {},
            tags=tags or [],
            created_at=c.created_at,
        )
