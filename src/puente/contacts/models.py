"""Contacts are per workspace; what a channel knows of them lives in ContactIdentity."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import (
    Base,
    BigIntPK,
    IdMixin,
    JSONType,
    TimestampMixin,
    WorkspaceOwned,
    utcnow,
)


class ContactSource(enum.StrEnum):
    WHATSAPP = "whatsapp"  # first seen through a message
    BUSINESS_APP = "business_app"  # synced from the owner's WhatsApp Business app
    HISTORY = "history"  # first seen in imported chat history
    API = "api"
    MANUAL = "manual"
    IMPORT = "import"


class Contact(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "wa_id"),
        Index("ix_contacts_workspace_phone", "workspace_id", "phone_e164"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # WhatsApp id (digits). Null for contacts known only by a business-scoped user id.
    wa_id: Mapped[str | None] = mapped_column(String(32))
    phone_e164: Mapped[str | None] = mapped_column(String(32))
    # The name agents edit in Puente; kept apart from what WhatsApp and the phone say.
    name: Mapped[str | None] = mapped_column(String(200))
    profile_name: Mapped[str | None] = mapped_column(String(200))  # from the customer's profile
    business_app_name: Mapped[str | None] = mapped_column(String(200))  # kept in the owner's phone
    # When the owner removed the contact from the Business app's address book (None while
    # it is there, or never was).
    business_app_removed_at: Mapped[dt.datetime | None]
    sources: Mapped[list[str]] = mapped_column(JSONType, default=list)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Legal hold: retention purges skip this contact's messages and media.
    legal_hold: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def in_address_book(self) -> bool:
        """In the owner's Business app address book (synced, and not removed since)."""
        return ContactSource.BUSINESS_APP in (self.sources or []) and (
            self.business_app_removed_at is None
        )

    @property
    def display_name(self) -> str:
        return self.name or self.business_app_name or self.profile_name or self.phone_e164 or ""


class ContactIdentity(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """How one channel addresses a contact. BSUIDs are per business, so they live here."""

    __tablename__ = "contact_identities"
    __table_args__ = (
        UniqueConstraint("channel_id", "contact_id"),
        Index("ix_contact_identities_bsuid", "channel_id", "bsuid"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    wa_id: Mapped[str | None] = mapped_column(String(32))
    bsuid: Mapped[str | None] = mapped_column(String(128))
    parent_bsuid: Mapped[str | None] = mapped_column(String(128))
    username: Mapped[str | None] = mapped_column(String(128))
    # True while the contact is in the owner's Business app address book.
    in_business_app: Mapped[bool] = mapped_column(default=False)


class Tag(WorkspaceOwned, IdMixin, Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))


class ContactTag(WorkspaceOwned, IdMixin, Base):
    __tablename__ = "contact_tags"
    __table_args__ = (UniqueConstraint("contact_id", "tag_id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)


class Segment(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A saved contact filter: broadcasts pick their audience from it when planned."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # {"tags_any": [...], "tags_none": [...], "fields": {key: value}, "opted_in": bool}
    filter: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ConsentKind(enum.StrEnum):
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"


class ConsentEvent(WorkspaceOwned, IdMixin, Base):
    """One opt-in or opt-out, kept forever as the contact's consent history."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_contact", "contact_id", "at"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(32), default="marketing")
    # How it was given: keyword, meta_131050, api, agent, web_form, import, ...
    source: Mapped[str] = mapped_column(String(32))
    # Who recorded it: a user, or a label such as "API token 'crm'" or "customer".
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    by_label: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500))
    # The message that carried it (a keyword, or the send Meta refused with 131050).
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ContactConsent(WorkspaceOwned, IdMixin, Base):
    """The current consent of a contact for one scope: the latest ConsentEvent, denormalised."""

    __tablename__ = "contact_consents"
    __table_args__ = (UniqueConstraint("contact_id", "scope"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(32), default="marketing")
    state: Mapped[str] = mapped_column(String(16))  # a ConsentKind value
    since: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("consent_events.id", ondelete="SET NULL")
    )


class ContactMerge(WorkspaceOwned, IdMixin, Base):
    """One contact absorbed into another, with what moved, so a split can move it back.

    The absorbed contact's row is deleted while merged and kept here whole; its WhatsApp
    id stays an alias of the kept contact (inbound messages from it find the kept one)
    until the merge is split. See contacts/merge.py and docs/contacts.md."""

    __tablename__ = "contact_merges"
    __table_args__ = (
        Index("ix_contact_merges_contact", "contact_id", "merged_at"),
        Index("ix_contact_merges_wa_id", "workspace_id", "merged_wa_id"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # The kept contact (a later merge of it into another moves this to that one).
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    # No foreign key: that contact does not exist while merged.
    merged_contact_id: Mapped[int] = mapped_column(BigIntPK)
    merged_wa_id: Mapped[str | None] = mapped_column(String(32))
    merged_name: Mapped[str | None] = mapped_column(String(200))
    # The absorbed contact's row, as stored.
    merged_row: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # "table.column" -> ids of the rows whose column was moved to the kept contact.
    moved: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Conversations that moved; rows such as messages follow them ("table.column" names).
    moved_conversations: Mapped[list[int]] = mapped_column(JSONType, default=list)
    follow_conversations: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # table -> whole rows removed because the kept contact had their twin (a tag both had,
    # the older current consent), put back by a split.
    set_aside: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The kept contact's fields before and right after the merge.
    fields_before: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    fields_after: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    by_label: Mapped[str | None] = mapped_column(String(200))
    merged_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    split_at: Mapped[dt.datetime | None]
    split_by_label: Mapped[str | None] = mapped_column(String(200))
