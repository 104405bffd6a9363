"""The report tables: raw facts, their daily rollups, and customer-satisfaction surveys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import Base, BigIntPK, IdMixin, TimestampMixin, WorkspaceOwned


class ReportFact(WorkspaceOwned, IdMixin, Base):
    """One thing a report counts, written in the transaction of the change that caused it
    (see reports.facts). Identical facts of one transaction (the same kind, dimensions and
    quarter hour, without a duration) are written as one row with their `count`.

    `at` is the UTC moment it happened (Meta's clock for messages). A duration (`seconds`)
    ends at `at`, so it began at `at - seconds`: the rollup works out the part of it that
    fell within the number's business hours. `rolled_up` is the rollup worker's queue."""

    __tablename__ = "report_facts"
    __table_args__ = (
        Index("ix_report_facts_pending", "rolled_up", "id"),
        Index("ix_report_facts_at", "workspace_id", "at"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime]
    channel_id: Mapped[int] = mapped_column(default=0)
    conversation_id: Mapped[int] = mapped_column(BigIntPK, default=0)
    team_id: Mapped[int] = mapped_column(default=0)
    agent_id: Mapped[int] = mapped_column(default=0)
    source: Mapped[str] = mapped_column(String(24), default="")
    label: Mapped[str] = mapped_column(String(64), default="")
    count: Mapped[int] = mapped_column(default=1)
    seconds: Mapped[float | None]
    rolled_up: Mapped[bool] = mapped_column(default=False)


class ReportRollup(WorkspaceOwned, IdMixin, Base):
    """The facts summed per local day (the workspace's time zone) and dimension. 0 and ""
    stand for "none" so that the unique key, which the incremental upsert relies on, holds
    (NULLs are never equal). `bucket` is a histogram bin for durations (reports.buckets), an
    hour of the week (0 = Monday 00:00) for arrival patterns, or 0."""

    __tablename__ = "report_rollups"
    __table_args__ = (
        UniqueConstraint(
            "workspace_id",
            "metric",
            "day",
            "channel_id",
            "team_id",
            "agent_id",
            "source",
            "label",
            "bucket",
            name="uq_report_rollups_key",
        ),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(40))
    day: Mapped[dt.date] = mapped_column(Date)
    channel_id: Mapped[int] = mapped_column(default=0)
    team_id: Mapped[int] = mapped_column(default=0)
    agent_id: Mapped[int] = mapped_column(default=0)
    source: Mapped[str] = mapped_column(String(24), default="")
    label: Mapped[str] = mapped_column(String(64), default="")
    bucket: Mapped[int] = mapped_column(default=0)
    count: Mapped[int] = mapped_column(default=0)
    total: Mapped[float] = mapped_column(default=0.0)


class CsatSurvey(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    """A satisfaction survey sent when a conversation closed, and its answer. `state`:
    asked (waiting for a score), comment (the score came, waiting for a comment), answered,
    expired (no answer in time, or the customer wrote something else)."""

    __tablename__ = "csat_surveys"
    __table_args__ = (Index("ix_csat_surveys_conversation", "conversation_id", "state"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(BigIntPK)
    contact_id: Mapped[int] = mapped_column(BigIntPK)
    agent_id: Mapped[int | None] = mapped_column(BigIntPK)
    team_id: Mapped[int | None] = mapped_column(BigIntPK)
    state: Mapped[str] = mapped_column(String(16), default="asked")
    score: Mapped[int | None]
    comment: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
