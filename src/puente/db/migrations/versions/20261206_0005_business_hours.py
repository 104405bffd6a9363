"""business hours and away messages per number

The hours themselves live in each number's settings (channels.settings, JSON); this table
records when a number last sent its away message to a contact.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "away_messages_sent",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("channel_id", ID, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_away_messages_sent_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_away_messages_sent_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_away_messages_sent_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_away_messages_sent_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_away_messages_sent")),
        sa.UniqueConstraint(
            "channel_id", "contact_id", name=op.f("uq_away_messages_sent_channel_id_contact_id")
        ),
    )
    with op.batch_alter_table("away_messages_sent", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_away_messages_sent_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_away_messages_sent_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_away_messages_sent_workspace_id"), ["workspace_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("away_messages_sent")
