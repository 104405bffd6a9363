"""Which customer messages an automation has already answered in this transaction, so
that the next one in automation.reactions' order does not answer them again: a message
a workflow takes (its keyword, or the answer to its question) is not the bot's."""

from __future__ import annotations

from sqlalchemy.orm import Session

_KEY = "puente.automation.answered"


def mark_answered(session: Session, message_id: int) -> None:
    session.info.setdefault(_KEY, set()).add(message_id)


def was_answered(session: Session, message_id: int) -> bool:
    return message_id in session.info.get(_KEY, ())
