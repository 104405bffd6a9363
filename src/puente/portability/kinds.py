"""What a workspace archive carries, table by table, and how ids inside it are remapped.

Every workspace-owned table is either exported (EXPORTED) or left out with the reason
(NOT_EXPORTED); tests/portability/test_kinds.py fails when a new table is on neither list,
and when an exported table has an id-like column that nobody said how to remap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from puente.db.models import Base

USERS = "users"


@dataclass(frozen=True)
class Kind:
    """One exported table: the columns whose value is replaced on the way out (secrets,
    connection state) and on the way in, and the ids the metadata's foreign keys do not
    name (columns copied for queries without a foreign key)."""

    table: str
    # column -> table whose ids it holds, beyond the foreign keys.
    refs: dict[str, str] = field(default_factory=dict)
    # Columns pointing at a table loaded later: set in a second pass.
    deferred: dict[str, str] = field(default_factory=dict)
    # Written as this value in the archive (credentials, the source's live state).
    scrub: dict[str, Any] = field(default_factory=dict)
    # Set to this value in the target, whatever the archive says.
    on_import: dict[str, Any] = field(default_factory=dict)
    # Columns whose value 0 means "none" (report dimensions), kept as 0.
    zero_is_none: frozenset[str] = frozenset()


# In the order they are loaded: a table comes after every table its ids point at.
EXPORTED: tuple[Kind, ...] = (
    Kind("teams"),
    Kind("memberships"),
    Kind("team_members"),
    Kind("team_routing"),
    Kind(
        "channels",
        # An archive holds no credential: the number comes over disconnected and is
        # connected again on the target (its own onboarding, its own token).
        scrub={"access_token_encrypted": None},
        on_import={"connection_state": "disconnected", "state_reason": None},
    ),
    Kind("contacts"),
    Kind("contact_identities"),
    Kind("tags"),
    Kind("contact_tags"),
    Kind("segments"),
    Kind("message_templates"),
    Kind("snippets"),
    Kind("kb_entries"),
    Kind("kb_phrasings"),
    Kind("workflows", deferred={"published_version_id": "workflow_versions"}),
    Kind("workflow_versions"),
    Kind("conversations", deferred={"last_message_id": "messages"}),
    Kind("messages", refs={"channel_id": "channels", "contact_id": "contacts"}),
    Kind("media"),
    Kind("consent_events"),
    Kind("contact_consents"),
    Kind("conversation_notes"),
    Kind("note_mentions"),
    Kind("conversation_events"),
    Kind(
        "csat_surveys",
        refs={
            "channel_id": "channels",
            "contact_id": "contacts",
            "agent_id": USERS,
            "team_id": "teams",
        },
    ),
    Kind(
        "report_facts",
        refs={
            "channel_id": "channels",
            "conversation_id": "conversations",
            "team_id": "teams",
            "agent_id": USERS,
        },
        zero_is_none=frozenset({"channel_id", "conversation_id", "team_id", "agent_id"}),
        # The rollup worker sums them again in the target's time zone and hours.
        on_import={"rolled_up": False},
    ),
    Kind("chat_links"),
    Kind("chat_link_starts", refs={"contact_id": "contacts", "message_id": "messages"}),
)

NOT_EXPORTED: dict[str, str] = {
    "api_tokens": "credentials: the target issues its own tokens",
    "auth_links": "pending invitations and reset links are single-use credentials",
    "web_sessions": "sign-ins of the source installation: people sign in again",
    "outgoing_mail": "mail already sent, or queued for the source's mail server",
    "audit_entries": "the target's audit log is its own hash chain; the import is audited there",
    "report_rollups": "derived from report_facts: the rollup worker (or `puente reports "
    "rebuild`) sums them again",
    "status_events": "raw status webhooks, already applied to the messages",
    "pending_message_ops": "processing state of webhooks that arrived out of order",
    "outbox": "the source's sending queue: messages come over, queued sends do not",
    "broadcasts": "sending jobs of the source's numbers; their messages come over",
    "broadcast_recipients": "the state of a broadcast's sending, with the broadcast",
    "channel_onboardings": "how the number was connected to the source installation",
    "channel_syncs": "the coexistence sync state of the source's connection",
    "channel_sync_requests": "calls the source made to Meta",
    "composer_submissions": "keys against sending twice, for requests long answered",
    "notifications": "agents' alerts on the source installation",
    "away_messages_sent": "when the source last sent an away message (a sending guard)",
    "kb_conversations": "the bot's short memory of open conversations",
    "workflow_runs": "runs are jobs of the source; the workflows and versions come over",
    "workflow_run_steps": "the timeline of those runs",
    "webhook_endpoints": "integrations carry signing secrets: set them up again on the target",
    "webhook_deliveries": "the outgoing webhooks' queue",
    "webhook_attempts": "the outgoing webhooks' delivery log",
    "webhook_sequences": "the outgoing webhooks' ordering counters",
    "contact_merges": "what undoing a merge needs: merged contacts come over merged, and stay so",
}

# Columns named like ids that hold no row id of ours (Meta's ids, WhatsApp ids, keys),
# by name or as table.column.
NOT_ROW_IDS = frozenset(
    {
        "phone_number_id",
        "waba_id",
        "wa_id",
        "bsuid",
        "parent_bsuid",
        "meta_media_id",
        "meta_id",
        "step_id",
        "request_id",
        "history_request_id",
        "contacts_request_id",
        "chat_links.created_by",  # who made the link, as text
    }
)


def table(name: str) -> Table:
    return Base.metadata.tables[name]


def present() -> list[Kind]:
    """The exported kinds whose table exists in this installation's schema."""
    return [k for k in EXPORTED if k.table in Base.metadata.tables]


def references(kind: Kind) -> dict[str, str]:
    """Every id column of the kind's table (but workspace_id and its own id) -> the table
    its ids belong to, deferred ones included."""
    refs: dict[str, str] = {}
    for column in table(kind.table).c:
        for fk in column.foreign_keys:
            if column.name != "workspace_id":
                refs[column.name] = fk.column.table.name
    refs.update(kind.refs)
    refs.update(kind.deferred)
    return refs


def owned_tables() -> set[str]:
    return {t.name for t in Base.metadata.sorted_tables if "workspace_id" in t.c}
