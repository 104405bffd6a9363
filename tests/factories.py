"""Small factory functions for test data. Import them explicitly."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy.orm import Session

from puente.accounts.models import Team, TeamMember, User, Workspace
from puente.accounts.service import do_create_workspace
from puente.accounts.tokens import do_create_token
from puente.channels.models import Channel, ChannelMode
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Message

_seq = itertools.count(1)


def make_workspace(session: Session, name: str | None = None) -> Workspace:
    n = next(_seq)
    return do_create_workspace(session, name=name or f"Workspace {n}")


def make_token(session: Session, workspace: Workspace, scopes: list[str] | None = None) -> str:
    return do_create_token(session, workspace_id=workspace.id, name="test", scopes=scopes).secret


def make_channel(
    session: Session,
    workspace: Workspace,
    *,
    phone_number_id: str | None = None,
    display_phone_number: str = "15550001111",
    mode: ChannelMode = ChannelMode.CLOUD_API,
    waba_id: str = "100200300",
) -> Channel:
    n = next(_seq)
    channel = Channel(
        workspace_id=workspace.id,
        name=f"Number {n}",
        phone_number_id=phone_number_id or f"10{n:08d}",
        waba_id=waba_id,
        display_phone_number=display_phone_number,
        mode=mode.value,
        throughput_mps=20 if mode is ChannelMode.COEXISTENCE else 80,
        settings={},
    )
    session.add(channel)
    session.flush()
    return channel


def make_contact(
    session: Session,
    workspace: Workspace,
    *,
    wa_id: str | None = None,
    name: str | None = None,
    profile_name: str | None = None,
    business_app_name: str | None = None,
    sources: list[str] | None = None,
) -> Contact:
    n = next(_seq)
    wa_id = wa_id or f"1415555{n:04d}"
    contact = Contact(
        workspace_id=workspace.id,
        wa_id=wa_id,
        phone_e164="+" + wa_id,
        name=name,
        profile_name=profile_name,
        business_app_name=business_app_name,
        sources=sources or ["whatsapp"],
        custom_fields={},
    )
    session.add(contact)
    session.flush()
    return contact


def make_conversation(
    session: Session,
    channel: Channel,
    contact: Contact,
    *,
    status: str = "open",
    last_activity_at: dt.datetime | None = None,
    assignee_id: int | None = None,
    labels: list[str] | None = None,
) -> Conversation:
    conversation = Conversation(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        contact_id=contact.id,
        status=status,
        last_activity_at=last_activity_at,
        assignee_id=assignee_id,
        labels=labels or [],
    )
    session.add(conversation)
    session.flush()
    return conversation


def make_message(
    session: Session,
    conversation: Conversation,
    *,
    timestamp: dt.datetime,
    text: str = "hola",
    direction: str = "inbound",
    source: str = "customer",
    status: str = "received",
    wamid: str | None = None,
    content: dict[str, Any] | None = None,
) -> Message:
    n = next(_seq)
    message = Message(
        workspace_id=conversation.workspace_id,
        channel_id=conversation.channel_id,
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        wamid=wamid or f"wamid.TEST{n:08d}",
        direction=direction,
        source=source,
        type="text",
        content=content or {"body": text},
        text=text,
        timestamp=timestamp,
        status=status,
    )
    session.add(message)
    session.flush()
    return message


# --- People (accounts) --------------------------------------------------------------------

PASSWORD = "correct-horse-battery"


def make_user(
    session: Session,
    workspace: Workspace,
    *,
    role: str = "agent",
    email: str | None = None,
    name: str | None = None,
    password: str = PASSWORD,
) -> User:
    from puente.accounts.models import Role
    from puente.accounts.service import do_create_user

    n = next(_seq)
    user, _membership = do_create_user(
        session,
        workspace=workspace,
        email=email or f"{role}{n}@example.com",
        password=password,
        name=name or f"{role.title()} {n}",
        role=Role(role),
    )
    return user


def make_team(session: Session, workspace: Workspace, name: str, members: list[User]) -> Team:
    team = Team(workspace_id=workspace.id, name=name)
    session.add(team)
    session.flush()
    session.add_all(
        TeamMember(workspace_id=workspace.id, team_id=team.id, user_id=u.id) for u in members
    )
    session.flush()
    return team
