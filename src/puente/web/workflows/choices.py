"""What the builder's selects offer: the workspace's agents, teams, approved templates,
other workflows, numbers, broadcasts and tags, and contacts for a test run."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from puente.accounts.service import list_members, list_teams
from puente.automation.workflows.models import Workflow
from puente.channels.models import Channel
from puente.contacts.directory import workspace_tags
from puente.contacts.models import Contact
from puente.contacts.service import ContactFilter, list_contacts
from puente.conversations.models import Conversation
from puente.outbound.models import Broadcast, MessageTemplate, TemplateStatus

Choice = tuple[str, str]  # (value, label), values as the form posts them


@dataclass(frozen=True)
class Choices:
    agents: list[Choice]
    teams: list[Choice]
    templates: list[Choice]  # "name|language"
    workflows: list[Choice]
    channels: list[Choice]
    broadcasts: list[Choice]
    tags: list[str]


def builder_choices(session: Session, workspace_id: int, workflow_id: int) -> Choices:
    templates = session.execute(
        select(MessageTemplate.name, MessageTemplate.language)
        .where(
            MessageTemplate.workspace_id == workspace_id,
            MessageTemplate.status == TemplateStatus.APPROVED.value,
        )
        .distinct()
        .order_by(MessageTemplate.name, MessageTemplate.language)
    ).all()
    workflows = session.execute(
        select(Workflow.id, Workflow.name)
        .where(Workflow.workspace_id == workspace_id, Workflow.id != workflow_id)
        .order_by(Workflow.name)
    ).all()
    channels = session.execute(
        select(Channel.id, Channel.name, Channel.display_phone_number)
        .where(Channel.workspace_id == workspace_id)
        .order_by(Channel.name)
    ).all()
    broadcasts = session.execute(
        select(Broadcast.id, Broadcast.name)
        .where(Broadcast.workspace_id == workspace_id)
        .order_by(Broadcast.id.desc())
        .limit(50)
    ).all()
    return Choices(
        agents=[
            (str(user.id), user.name)
            for user, membership in list_members(session, workspace_id)
            if membership.is_active and user.is_active
        ],
        teams=[(str(team.id), team.name) for team, _members in list_teams(session, workspace_id)],
        templates=[(f"{name}|{language}", f"{name} ({language})") for name, language in templates],
        workflows=[(str(i), name) for i, name in workflows],
        channels=[(str(i), f"{name} (+{phone})") for i, name, phone in channels],
        broadcasts=[(str(i), name) for i, name in broadcasts],
        tags=[name for name, _count in workspace_tags(session, workspace_id)],
    )


def contacts_to_try(session: Session, workspace_id: int, query: str = "") -> list[Contact]:
    """Contacts to try a workflow on: those matching `query`, else the ones who wrote
    last."""
    if query.strip():
        return list_contacts(session, workspace_id, ContactFilter(q=query.strip()), limit=20)
    latest = (
        select(Conversation.contact_id, func.max(Conversation.last_activity_at).label("at"))
        .where(Conversation.workspace_id == workspace_id)
        .group_by(Conversation.contact_id)
        .subquery()
    )
    recent = list(
        session.scalars(
            select(Contact)
            .join(latest, latest.c.contact_id == Contact.id)
            .where(Contact.workspace_id == workspace_id)
            .order_by(latest.c.at.desc().nulls_last(), Contact.id.desc())
            .limit(20)
        )
    )
    return recent or list_contacts(session, workspace_id, ContactFilter(), limit=20)


def latest_conversation(
    session: Session, workspace_id: int, contact_id: int
) -> Conversation | None:
    """The contact's conversation a test run talks in: the one they wrote in last."""
    return session.scalar(
        select(Conversation)
        .where(Conversation.workspace_id == workspace_id, Conversation.contact_id == contact_id)
        .order_by(Conversation.last_activity_at.desc().nulls_last(), Conversation.id.desc())
        .limit(1)
    )
