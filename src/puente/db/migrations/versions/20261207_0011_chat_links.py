"""chat links

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "chat_links",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("channel_id", ID, nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_by_user_id", ID, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_chat_links_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_chat_links_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_chat_links_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_links")),
        sa.UniqueConstraint("channel_id", "code", name="uq_chat_links_code"),
    )
    with op.batch_alter_table("chat_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_chat_links_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "chat_link_starts",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("link_id", ID, nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_chat_link_starts_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["chat_links.id"],
            name=op.f("fk_chat_link_starts_link_id_chat_links"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_chat_link_starts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_link_starts")),
        sa.UniqueConstraint("link_id", "conversation_id", name="uq_chat_link_starts_conversation"),
    )


def downgrade() -> None:
    op.drop_table("chat_link_starts")
    with op.batch_alter_table("chat_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_links_workspace_id"))
    op.drop_table("chat_links")
