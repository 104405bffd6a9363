"""number health (quality, display name review) on channels; address-book removal on contacts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-23 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quality_rating", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("quality_event", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("quality_changed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("name_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("requested_name", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("name_rejection_reason", sa.String(length=500), nullable=True)
        )
        batch_op.add_column(sa.Column("name_changed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("business_app_removed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("business_app_removed_at")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("name_changed_at")
        batch_op.drop_column("name_rejection_reason")
        batch_op.drop_column("requested_name")
        batch_op.drop_column("name_status")
        batch_op.drop_column("quality_changed_at")
        batch_op.drop_column("quality_event")
        batch_op.drop_column("quality_rating")
