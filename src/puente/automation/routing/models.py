"""How each team routes its conversations, and where its round robin stands."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, WorkspaceOwned, utcnow


class Strategy(enum.StrEnum):
    MANUAL = "manual"  # the queue waits for someone to take or assign each conversation
    ROUND_ROBIN = "round_robin"  # the next available agent in turn
    LEAST_BUSY = "least_busy"  # the available agent with the fewest open conversations


class TeamRouting(WorkspaceOwned, Base):
    """One row per team that has routing settings. The row is also the team's lock: a
    routing pass holds it while it assigns, so two workers never hand out the same turn."""

    __tablename__ = "team_routing"

    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    strategy: Mapped[str] = mapped_column(String(16), default=Strategy.MANUAL.value)
    # The most open conversations an agent may hold before routing passes them by;
    # None: no limit.
    capacity: Mapped[int | None]
    # The round robin's pointer: whoever routing assigned last. The next turn goes to
    # the first available member after them (by user id), so the order survives restarts
    # and is the same for every process.
    last_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
