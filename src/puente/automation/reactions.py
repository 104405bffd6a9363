"""The reactions to a stored customer message, in the order they run.

Only a customer's own new message counts: echoes of what the owner sent from the phone,
imported history, everything Puente or an agent sent, and a satisfaction survey's answer
(taken before the inbox sees it, see conversations.replies) never trigger anything.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from puente.automation.away import send_away_message
from puente.automation.kb_bot import answer_with_knowledge_base
from puente.automation.routing.step import route_customer_message
from puente.automation.workflows.triggers import on_customer_message
from puente.conversations.models import Direction, MessageSource
from puente.conversations.replies import was_taken
from puente.events import MessageStored, react

Step = Callable[[Session, MessageStored], None]

# In order: each capability adds its step here. Workflows come first: a run waiting for
# this answer takes it, and a workflow the message starts answers it instead of the bot.
# Then the bot (a question it can answer needs nobody); outside business hours the away
# message goes; then routing puts the conversation in a team's queue or with an agent.
STEPS: list[Step] = [
    on_customer_message,
    answer_with_knowledge_base,
    send_away_message,
    route_customer_message,
]


def on_message_stored(session: Session, event: MessageStored) -> None:
    if event.direction != Direction.INBOUND.value or event.source != MessageSource.CUSTOMER:
        return
    if was_taken(session, event.message_id):
        return  # a satisfaction survey's answer: nothing automatic answers it
    for step in STEPS:
        step(session, event)


react(MessageStored, on_message_stored)
