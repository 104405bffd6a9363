"""Chat links and QR codes of a number: a `wa.me` link whose prefilled text ends with a
short tracking reference, "(ref: K7P2QX)", its QR code (segno) as SVG or PNG, and the
conversations each link started.

A conversation counts for a link when the customer's message that opened it carries the
link's reference, in its text (the prefilled text, sent as it was or edited around the
reference) or in Meta's `referral` (a post or ad whose link or text holds it). It counts
once per link and conversation; imported history never counts (it publishes no
MessageStored), nor do later messages of the same conversation.
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import segno
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action, actor_ref
from puente.channels.chat_links_models import ChatLink, ChatLinkStart
from puente.channels.models import Channel
from puente.conversations.incoming import stored_in_session
from puente.conversations.models import Direction, Message, MessageSource
from puente.db.base import utcnow
from puente.db.bulk import insert_ignore
from puente.errors import InvalidInput, NotFound
from puente.events import MessageStored, react

MAX_NAME = 120
# The prefilled text stays short: the QR code of a longer link gets too dense to scan
# reliably once printed small (Spanish accents take six characters each in the URL).
MAX_TEXT = 300
MAX_LINKS_PER_CHANNEL = 500
# No 0/O, 1/I/L: a customer who reads the reference aloud or types it cannot confuse them.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
REFERENCE = re.compile(r"\(\s*ref\s*:?\s*([A-Za-z0-9]{6})\s*\)", re.IGNORECASE)
QR_ERROR = "m"  # 15 % of the code may be smudged or covered and it still reads
QR_SCALES = range(1, 41)


def reference_of(code: str) -> str:
    return f"(ref: {code})"


def prefilled_text(text: str, code: str) -> str:
    """What the customer's composer holds when the link opens."""
    return f"{text} {reference_of(code)}" if text else reference_of(code)


def wa_me_url(phone_digits: str, prefilled: str) -> str:
    return f"https://wa.me/{phone_digits}?text={quote(prefilled, safe='')}"


@dataclass(frozen=True)
class LinkView:
    """A link as pages, the API and the CLI show it."""

    link: ChatLink
    phone: str  # the number's digits
    conversations: int

    @property
    def prefilled(self) -> str:
        return prefilled_text(self.link.text, self.link.code)

    @property
    def url(self) -> str:
        return wa_me_url(self.phone, self.prefilled)


# -- reading -------------------------------------------------------------------------------


def access_link(session: Session, channel: Channel, link_id: int) -> ChatLink:
    link = session.scalar(
        select(ChatLink).where(
            ChatLink.id == link_id,
            ChatLink.channel_id == channel.id,
            ChatLink.workspace_id == channel.workspace_id,
        )
    )
    if link is None:
        raise NotFound("no chat link %(id)s on this number", params={"id": link_id})
    return link


def started_counts(session: Session, link_ids: Iterable[int]) -> dict[int, int]:
    ids = list(link_ids)
    if not ids:
        return {}
    query = (
        select(ChatLinkStart.link_id, func.count())
        .where(ChatLinkStart.link_id.in_(ids))
        .group_by(ChatLinkStart.link_id)
    )
    return {link_id: int(n) for link_id, n in session.execute(query).tuples()}


def list_links(session: Session, channel: Channel) -> list[LinkView]:
    links = list(
        session.scalars(
            select(ChatLink)
            .where(ChatLink.channel_id == channel.id, ChatLink.workspace_id == channel.workspace_id)
            .order_by(ChatLink.id)
        )
    )
    counts = started_counts(session, (link.id for link in links))
    return [LinkView(link, channel.display_phone_number, counts.get(link.id, 0)) for link in links]


def url_of(channel: Channel, link: ChatLink) -> str:
    return wa_me_url(channel.display_phone_number, prefilled_text(link.text, link.code))


def view_of(session: Session, channel: Channel, link: ChatLink) -> LinkView:
    count = started_counts(session, [link.id]).get(link.id, 0)
    return LinkView(link, channel.display_phone_number, count)


# -- changing ------------------------------------------------------------------------------


def _field_error(field: str, message: str, **params: Any) -> InvalidInput:
    """A refusal naming its field (for the API) whose message pages translate."""
    text = message % params if params else message
    return InvalidInput(message, params=params or None, details=[{"field": field, "message": text}])


def check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise _field_error("name", "Give the link a name.")
    if len(cleaned) > MAX_NAME:
        raise _field_error("name", "The name is longer than %(most)s characters.", most=MAX_NAME)
    return cleaned


def check_text(text: str) -> str:
    """The prefilled text as stored: trimmed, with no reference of its own. Empty is
    allowed: the chat then opens with the reference alone."""
    cleaned = text.strip()
    if len(cleaned) > MAX_TEXT:
        raise _field_error(
            "text", "The prefilled text is longer than %(most)s characters.", most=MAX_TEXT
        )
    if REFERENCE.search(cleaned):
        raise _field_error("text", "Leave out the reference: Puente adds it to the text.")
    return cleaned


def _new_code(session: Session, channel: Channel) -> str:
    taken = set(session.scalars(select(ChatLink.code).where(ChatLink.channel_id == channel.id)))
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if code not in taken:
            return code


def do_create_link(
    session: Session, channel: Channel, *, name: str, text: str, actor: Any
) -> ChatLink:
    name, text = check_name(name), check_text(text)
    count = session.scalar(
        select(func.count()).select_from(ChatLink).where(ChatLink.channel_id == channel.id)
    )
    if (count or 0) >= MAX_LINKS_PER_CHANNEL:
        raise _field_error(
            "name", "This number already has %(most)s chat links.", most=MAX_LINKS_PER_CHANNEL
        )
    who = actor_ref(actor)
    link = ChatLink(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        name=name,
        text=text,
        code=_new_code(session, channel),
        created_by=who.label[:200],
        created_by_user_id=who.user_id,
    )
    session.add(link)
    session.flush()
    _audit(session, link, Action.CHAT_LINK_CREATED, actor)
    return link


def do_update_link(
    session: Session,
    link: ChatLink,
    *,
    name: str | None = None,
    text: str | None = None,
    actor: Any,
) -> ChatLink:
    """A new name or text; the reference stays, so codes already printed still count."""
    if name is not None:
        link.name = check_name(name)
    if text is not None:
        link.text = check_text(text)
    link.updated_at = utcnow()
    session.flush()
    _audit(session, link, Action.CHAT_LINK_UPDATED, actor)
    return link


def do_delete_link(session: Session, link: ChatLink, *, actor: Any) -> None:
    _audit(session, link, Action.CHAT_LINK_DELETED, actor)
    session.delete(link)
    session.flush()


def _audit(session: Session, link: ChatLink, action: str, actor: Any) -> None:
    audit.record(
        session,
        workspace_id=link.workspace_id,
        actor=actor,
        action=action,
        target=f"chat link {link.id}",
        details={"channel_id": link.channel_id, "name": link.name, "code": link.code},
    )


# -- QR codes ------------------------------------------------------------------------------


def qr_code(url: str) -> segno.QRCode:
    return segno.make(url, error=QR_ERROR, micro=False)


def qr_svg(url: str, *, scale: int = 10, title: str | None = None) -> bytes:
    out = io.BytesIO()
    qr_code(url).save(out, kind="svg", scale=scale, border=4, light="#fff", title=title)
    return out.getvalue()


def qr_png(url: str, *, scale: int = 10) -> bytes:
    out = io.BytesIO()
    qr_code(url).save(out, kind="png", scale=scale, border=4, light="#fff")
    return out.getvalue()


# -- counting the conversations a link started ---------------------------------------------


def references_in(text: str | None, referral: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The codes a message names, with how: [(code, "text" | "referral")]."""
    found = [(m.upper(), "text") for m in REFERENCE.findall(text or "")]
    for key in ("source_url", "headline", "body"):
        value = (referral or {}).get(key)
        if isinstance(value, str):
            plain = unquote(value.replace("+", " ")) if key == "source_url" else value
            found += [(m.upper(), "referral") for m in REFERENCE.findall(plain)]
    return found


def _message_of(session: Session, message_id: int) -> tuple[str | None, dict[str, Any] | None]:
    item = stored_in_session(session, message_id)
    if item is not None:
        return item.text, item.referral
    row = session.execute(
        select(Message.text, Message.referral).where(Message.id == message_id)
    ).first()
    return (row[0], row[1]) if row else (None, None)


def record_start(session: Session, event: MessageStored) -> None:
    """The customer's message that opened a conversation names a link: count it once."""
    if not event.opened or event.direction != Direction.INBOUND.value:
        return
    if event.source != MessageSource.CUSTOMER.value:
        return
    found = references_in(*_message_of(session, event.message_id))
    if not found:
        return  # the usual case: no query at all
    links = _links_by_code(session, event.channel_id, [code for code, _ in found])
    if not links:
        return
    message = session.execute(
        select(Message.contact_id, Message.timestamp).where(Message.id == event.message_id)
    ).one()
    rows = []
    for code, via in found:
        link = links.pop(code, None)  # a code named twice counts once
        if link is not None:
            rows.append(
                {
                    "workspace_id": event.workspace_id,
                    "link_id": link.id,
                    "conversation_id": event.conversation_id,
                    "contact_id": message.contact_id,
                    "message_id": event.message_id,
                    "via": via,
                    "started_at": message.timestamp,
                    "created_at": utcnow(),
                }
            )
    if rows:
        session.execute(insert_ignore(session, ChatLinkStart, ["link_id", "conversation_id"]), rows)


def _links_by_code(session: Session, channel_id: int, codes: Sequence[str]) -> dict[str, ChatLink]:
    query = select(ChatLink).where(ChatLink.channel_id == channel_id, ChatLink.code.in_(codes))
    return {link.code: link for link in session.scalars(query)}


react(MessageStored, record_start)
