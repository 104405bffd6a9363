"""segments

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 01:40:00

No schema change: segments keep their filter in the existing `segments.filter` JSON
column, which now holds more kinds of conditions (read by puente.contacts.segments,
which still accepts the earlier form).
"""

from collections.abc import Sequence

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
