"""Coexistence state of a channel: history import progress, the owner's contacts synced
from the Business app, and the connection state Meta reports in account updates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from puente.channels.events import publish_channel_updated
from puente.channels.models import (
    AppContactSync,
    Channel,
    ChannelSync,
    ConnectionState,
    HistoryChunkSeen,
    SyncState,
)
from puente.contacts.models import Contact, ContactIdentity, ContactSource
from puente.contacts.resolve import Person, resolve_people, wa_id_variants
from puente.contacts.service import add_source
from puente.db.base import utcnow
from puente.db.bulk import insert_ignore
from puente.events import ChannelConnectionChanged, ChannelSyncProgress, ContactUpdated, publish
from puente.reports.hooks import contact_created

HISTORY_DONE = 100
_HISTORY_SEEN = {SyncState.DECLINED.value, SyncState.IMPORTING.value, SyncState.COMPLETE.value}


def access_sync_state(session: Session, channel: Channel) -> ChannelSync:
    """The channel's sync row, created on first use."""
    query = select(ChannelSync).where(ChannelSync.channel_id == channel.id)
    state = session.scalar(query)
    if state is None:
        session.execute(
            insert_ignore(session, ChannelSync, ["channel_id"]),
            [
                {
                    "workspace_id": channel.workspace_id,
                    "channel_id": channel.id,
                    "history_progress": {},
                    "updated_at": utcnow(),
                }
            ],
        )
        state = session.scalar(query)
        assert state is not None
    return state


def do_mark_sync_requested(
    session: Session, channel: Channel, *, kind: str, request_id: str | None
) -> ChannelSync:
    """Record that `smb_app_data` accepted a sync ("history" or "smb_app_state_sync")."""
    state = access_sync_state(session, channel)
    now = utcnow()
    if kind == "history":
        state.history_request_id = request_id
        state.history_requested_at = now
        if state.history_state == SyncState.NOT_REQUESTED.value:
            state.history_state = SyncState.REQUESTED.value
    else:
        state.contacts_request_id = request_id
        state.contacts_requested_at = now
        if state.contacts_state == SyncState.NOT_REQUESTED.value:
            state.contacts_state = SyncState.REQUESTED.value
    _publish_progress(session, channel, state)
    return state


def history_messages_by_phase(session: Session, channel: Channel) -> dict[int, int]:
    """Messages imported per history phase (0: last day, 1: 1-90 days, 2: 90-180 days),
    for phases that sent any chunk. Meta's `progress` is a figure for the whole import,
    not per phase, so what each phase brought is told in messages."""
    chunks = HistoryChunkSeen.__table__.c
    rows = session.execute(
        select(chunks.phase, func.sum(chunks.messages))
        .where(chunks.channel_id == channel.id)
        .group_by(chunks.phase)
    )
    return {int(phase): int(total or 0) for phase, total in rows}


def overall_progress(state: ChannelSync) -> int:
    """One figure for a progress bar: how far the import has got without a gap, 100 when
    complete. A chunk that arrives ahead of a missing one does not move it."""
    if state.history_state == SyncState.COMPLETE.value:
        return HISTORY_DONE
    return state.history_overall


def _starts_after(phase: int, order: int, upto_phase: int, upto_order: int) -> bool:
    """Whether chunk (phase, order) continues the unbroken run ending at (upto_*).

    Orders count from 1 within a phase (0 when Meta gave none). A phase's first chunk
    follows any earlier phase: an empty phase sends nothing, so it cannot be waited for.
    """
    if phase == upto_phase:
        return order == upto_order + 1
    return phase > upto_phase and order <= 1


def _advance_unbroken_run(session: Session, channel: Channel, state: ChannelSync) -> None:
    """Move the run's end over every chunk that now follows it without a gap."""
    chunks = HistoryChunkSeen.__table__.c
    rows = session.execute(
        select(chunks.phase, chunks.chunk_order, chunks.progress)
        .where(
            chunks.channel_id == channel.id,
            or_(
                chunks.phase > state.history_upto_phase,
                and_(
                    chunks.phase == state.history_upto_phase,
                    chunks.chunk_order > state.history_upto_order,
                ),
            ),
        )
        .order_by(chunks.phase, chunks.chunk_order)
    )
    phase, order, overall = (
        state.history_upto_phase,
        state.history_upto_order,
        state.history_overall,
    )
    for row_phase, row_order, row_progress in rows:
        if not _starts_after(row_phase, row_order, phase, order):
            break
        phase, order = row_phase, row_order
        if row_progress is not None:
            overall = max(overall, row_progress)
    state.history_upto_phase, state.history_upto_order = phase, order
    state.history_overall = overall


def do_record_history_chunk(
    session: Session,
    channel: Channel,
    *,
    event_id: int | None,
    phase: int,
    chunk_order: int | None,
    progress: int | None,
    messages: int,
) -> bool:
    """Count a processed chunk once and move the phase's progress. Returns whether the
    chunk was new (a repeated chunk changes nothing)."""
    inserted = session.execute(
        insert_ignore(session, HistoryChunkSeen, ["channel_id", "phase", "chunk_order"]).returning(
            HistoryChunkSeen.__table__.c.id
        ),
        [
            {
                "channel_id": channel.id,
                "phase": phase,
                "chunk_order": chunk_order if chunk_order is not None else 0,
                "progress": progress,
                "messages": messages,
                "event_id": event_id,
                "processed_at": utcnow(),
            }
        ],
    ).first()
    if inserted is None:
        return False
    # Lock the sync row: chunks of one channel processed at once must each see the
    # others' rows, or the unbroken run could stop short of a chunk already stored.
    state = access_sync_state(session, channel)
    session.execute(
        select(ChannelSync)
        .where(ChannelSync.id == state.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    state.history_chunks += 1
    state.history_messages += messages
    phases = dict(state.history_progress or {})
    if progress is not None and progress > int(phases.get(str(phase), -1)):
        phases[str(phase)] = progress
        state.history_progress = phases
    order = chunk_order if chunk_order is not None else 0
    if _starts_after(phase, order, state.history_upto_phase, state.history_upto_order):
        _advance_unbroken_run(session, channel, state)
    # Meta: "progress 100 means the sync is done", but chunks come out of order: done is
    # when the run without gaps reaches 100. Later chunks still count when they come.
    if state.history_overall >= HISTORY_DONE:
        state.history_state = SyncState.COMPLETE.value
        state.history_completed_at = state.history_completed_at or utcnow()
    elif state.history_state != SyncState.COMPLETE.value:
        state.history_state = SyncState.IMPORTING.value
    if (
        channel.connection_state == ConnectionState.SYNCING.value
        and state.history_state == SyncState.COMPLETE.value
    ):
        channel.connection_state = ConnectionState.CONNECTED.value
        channel.state_changed_at = utcnow()
        _publish_connection(session, channel, ConnectionState.SYNCING.value)
    _publish_progress(session, channel, state, phase=phase)
    return True


def do_history_declined(session: Session, channel: Channel, error: dict[str, Any]) -> None:
    """The owner chose not to share chat history (error 2593109)."""
    state = access_sync_state(session, channel)
    # Chunks already imported prove the history was shared; a stray decline changes nothing.
    if state.history_state in _HISTORY_SEEN:
        return
    state.history_state = SyncState.DECLINED.value
    state.history_error = error
    _publish_progress(session, channel, state)


def _publish_progress(
    session: Session, channel: Channel, state: ChannelSync, *, phase: int | None = None
) -> None:
    publish(
        session,
        ChannelSyncProgress(
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            history_state=state.history_state,
            phase=phase,
            progress=dict(state.history_progress or {}),
            overall=overall_progress(state),
            chunks=state.history_chunks,
            messages=state.history_messages,
            contacts_state=state.contacts_state,
            contacts_synced=state.contacts_synced,
        ),
    )


# --- contacts from the owner's Business app ----------------------------------------------


@dataclass(frozen=True)
class AppContactChange:
    phone: str  # digits, as in the owner's address book
    action: str  # "add" (new or edited) | "remove"
    timestamp: dt.datetime
    full_name: str | None = None
    first_name: str | None = None


def do_apply_contact_sync(
    session: Session, channel: Channel, changes: Sequence[AppContactChange]
) -> int:
    """Mirror the owner's address book. Returns how many changes applied.

    The name from the phone goes to Contact.business_app_name (never the name agents
    edit); a removal only marks the identity as no longer in the app.
    """
    latest = _latest_change_per_phone(changes)
    if not latest:
        return 0
    seen = {
        row.phone: row
        for row in session.scalars(
            select(AppContactSync).where(
                AppContactSync.channel_id == channel.id, AppContactSync.phone.in_(latest)
            )
        )
    }
    fresh = [
        c for c in latest.values() if c.phone not in seen or seen[c.phone].timestamp < c.timestamp
    ]
    if not fresh:
        return 0
    adds = [c for c in fresh if c.action == "add"]
    removes = [c for c in fresh if c.action == "remove"]
    touched = _apply_adds(session, channel, adds) + _apply_removes(session, channel, removes)
    for change in fresh:
        row = seen.get(change.phone)
        if row is None:
            session.add(
                AppContactSync(
                    channel_id=channel.id,
                    phone=change.phone,
                    action=change.action,
                    timestamp=change.timestamp,
                )
            )
        else:
            row.action, row.timestamp = change.action, change.timestamp
    state = access_sync_state(session, channel)
    state.contacts_synced += len(adds)
    state.contacts_state = SyncState.COMPLETE.value
    newest = max(c.timestamp for c in fresh)
    state.contacts_last_at = max(newest, state.contacts_last_at or newest)
    if channel.last_phone_activity_at is None or newest > channel.last_phone_activity_at:
        channel.last_phone_activity_at = newest
    session.flush()
    for contact_id in sorted(set(touched)):
        publish(session, ContactUpdated(workspace_id=channel.workspace_id, contact_id=contact_id))
    publish_channel_updated(session, channel)
    return len(fresh)


def _latest_change_per_phone(changes: Sequence[AppContactChange]) -> dict[str, AppContactChange]:
    latest: dict[str, AppContactChange] = {}
    for change in changes:
        if not change.phone:
            continue
        prev = latest.get(change.phone)
        if prev is None or change.timestamp >= prev.timestamp:
            latest[change.phone] = change
    return latest


def _apply_adds(session: Session, channel: Channel, adds: list[AppContactChange]) -> list[int]:
    if not adds:
        return []
    resolved = resolve_people(
        session,
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        people=[Person(wa_id=c.phone) for c in adds],
        source=ContactSource.BUSINESS_APP.value,
    )
    touched = []
    for change in adds:
        found = resolved[change.phone]
        if found.created:
            contact_created(session, channel.workspace_id, ContactSource.BUSINESS_APP.value)
        add_source(found.contact, ContactSource.BUSINESS_APP.value)
        name = change.full_name or change.first_name
        if name and found.contact.business_app_name != name:
            found.contact.business_app_name = name
        found.identity.in_business_app = True
        found.contact.business_app_removed_at = None
        touched.append(found.contact.id)
    return touched


def _apply_removes(
    session: Session, channel: Channel, removes: list[AppContactChange]
) -> list[int]:
    if not removes:
        return []
    candidates: dict[str, str] = {}
    removes_by_phone = {change.phone: change.timestamp for change in removes}
    for change in removes:
        for wa_id in (change.phone, *wa_id_variants(change.phone)):
            candidates.setdefault(wa_id, change.phone)
    rows = session.execute(
        select(Contact.id, Contact.wa_id).where(
            Contact.workspace_id == channel.workspace_id, Contact.wa_id.in_(candidates)
        )
    ).tuples()
    removed_at = {
        contact_id: removes_by_phone[candidates[wa_id]]
        for contact_id, wa_id in rows
        if wa_id is not None
    }
    touched = []
    # The CRM contact stays (with the name agents gave it and the customer's profile
    # name): only its place in the owner's address book, and the name kept there, go.
    for identity in session.scalars(
        select(ContactIdentity).where(
            ContactIdentity.channel_id == channel.id,
            ContactIdentity.contact_id.in_(list(removed_at)),
        )
    ):
        if identity.in_business_app:
            identity.in_business_app = False
            touched.append(identity.contact_id)
    still_in_a_book = set(
        session.scalars(
            select(ContactIdentity.contact_id).where(
                ContactIdentity.contact_id.in_(touched),
                ContactIdentity.channel_id != channel.id,
                ContactIdentity.in_business_app,
            )
        )
    )
    for contact_id in touched:
        contact = session.get(Contact, contact_id)
        if contact is None or contact_id in still_in_a_book:
            continue  # another of the workspace's numbers still has it in its book
        contact.business_app_name = None
        contact.business_app_removed_at = removed_at[contact_id]
    return touched


# --- connection state from account_update -------------------------------------------------


def do_set_connection_state(
    session: Session,
    channel: Channel,
    state: ConnectionState,
    *,
    reason: str | None,
    at: dt.datetime,
) -> bool:
    """Record what Meta says about the number's connection. An event older than the
    state already recorded is ignored. Returns whether the state changed."""
    if channel.state_changed_at is not None and at < channel.state_changed_at:
        return False
    if channel.connection_state == state.value and channel.state_reason == reason:
        return False
    previous = channel.connection_state
    channel.connection_state = state.value
    channel.state_reason = reason
    channel.state_changed_at = at
    publish_channel_updated(session, channel)
    if previous != channel.connection_state:
        _publish_connection(session, channel, previous)
    return True


def _publish_connection(session: Session, channel: Channel, previous: str | None) -> None:
    changed = ChannelConnectionChanged(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        connection_state=channel.connection_state,
        previous_state=previous,
        state_reason=channel.state_reason,
    )
    publish(session, changed)
