"""Small factory functions for test data. Import them explicitly."""

from __future__ import annotations

import itertools

from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.accounts.service import do_create_workspace
from puente.accounts.tokens import do_create_token
from puente.channels.models import Channel, ChannelMode

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
