"""The away message: when a customer writes to a number that is closed, Puente answers
once with the number's away text (queued in the outbox, from the bot), and not again to
that customer on that number within the number's period (12 hours unless set otherwise).

It runs inside the transaction that stored the customer's message (see reactions.py):
the record that it went and the queued message commit with that message or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.automation.away_models import AwayMessageSent
from puente.automation.hours import BusinessHours, away_message_on, hours_of, is_open
from puente.channels.models import Channel
from puente.contacts.models import Contact
from puente.contacts.optout_keywords import match_optout_keyword, optout_keywords
from puente.conversations.models import Conversation, Message, MessageSource, bot_is_paused
from puente.db.base import utcnow
from puente.errors import PuenteError
from puente.events import MessageStored
from puente.outbound.broadcasts.audience import Person
from puente.outbound.broadcasts.params import ValueResolver
from puente.outbound.outbox.service import do_queue_message

log = logging.getLogger(__name__)

# Messages that are not the customer saying something: no answer is owed.
_SILENT_TYPES = frozenset({"system", "reaction", "unsupported"})
# A `{field}` written without a fallback (broadcasts' syntax, see broadcasts/params.py).
_NO_FALLBACK = re.compile(r"\{([^{}|\s][^{}|]*?)\s*\}")


def send_away_message(session: Session, event: MessageStored) -> None:
    """The step in reactions.STEPS. Free when the number sends no away message: the
    channel is in the session already (ingest loaded it), and nothing else is read."""
    channel = session.get(Channel, event.channel_id)
    if channel is None or not away_message_on(channel) or event.type in _SILENT_TYPES:
        return
    hours = hours_of(channel)
    now = utcnow()
    if hours is None or is_open(hours, now):
        return
    conversation = session.get(Conversation, event.conversation_id)
    # A conversation whose bot was paused (by an agent, or because the owner answered from
    # the phone) has a person in it: nothing automatic interrupts them.
    if conversation is None or bot_is_paused(conversation, now):
        return
    if _is_optout_keyword(session, event):
        return  # the opt-out's own confirmation answers it
    contact = session.get(Contact, conversation.contact_id)
    if contact is None:
        return
    # The customer just wrote, so the service window is open; if the message still cannot
    # be queued (the number is disconnected, say), the record goes with it and the
    # customer's message is stored all the same.
    try:
        with session.begin_nested():
            claim = _claim(session, channel, contact.id, now, hours)
            if claim is None:
                return
            message = do_queue_message(
                session,
                workspace_id=channel.workspace_id,
                message_type="text",
                content={"body": away_text(hours, contact)},
                conversation_id=conversation.id,
                source=MessageSource.BOT,
            )
            session.execute(
                update(AwayMessageSent)
                .where(AwayMessageSent.id == claim)
                .values(message_id=message.id)
            )
    except PuenteError as exc:
        log.warning("away message to contact %s not queued: %s", contact.id, exc)


def away_text(hours: BusinessHours, contact: Contact) -> str:
    """The away message for this contact, its `{contact.name}`-style fields filled in as
    broadcasts fill theirs; a field without a value and without a fallback is left out
    (a broadcast skips such a person; an answer to someone who wrote cannot)."""
    person = Person(
        contact.id,
        contact.wa_id,
        contact.name or contact.business_app_name or contact.profile_name or "",
        contact.custom_fields or {},
    )
    lenient = _NO_FALLBACK.sub(r"{\1|}", hours.away_message)
    values, _missing = ValueResolver({"text": lenient})(person, None)
    return values.get("text") or hours.away_message


def _is_optout_keyword(session: Session, event: MessageStored) -> bool:
    if event.type != "text":
        return False
    workspace = session.get(Workspace, event.workspace_id)
    message = session.get(Message, event.message_id)
    if workspace is None or message is None:
        return False
    return match_optout_keyword(message.text, optout_keywords(workspace)) is not None


def _claim(
    session: Session, channel: Channel, contact_id: int, now: dt.datetime, hours: BusinessHours
) -> int | None:
    """Record that the away message goes to this contact now, unless it went within the
    period: one conditional upsert, so of two transactions racing for the same contact
    the second waits for the first's row and then finds it recent (PostgreSQL), or runs
    after it (SQLite, one writer). The row's id, or None when it is not the time."""
    table = AwayMessageSent.__table__
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table).values(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        contact_id=contact_id,
        sent_at=now,
    )
    statement = insert.on_conflict_do_update(
        index_elements=["channel_id", "contact_id"],
        set_={"sent_at": insert.excluded.sent_at, "message_id": None},
        where=table.c.sent_at <= now - hours.away_every,
    ).returning(table.c.id)
    claimed: int | None = session.scalar(statement)
    return claimed
