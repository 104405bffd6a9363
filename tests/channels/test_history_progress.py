"""The channel page tells the history import in figures that agree: Meta's progress is one
percentage for the whole import, so each period (last day, 1-90 days, 90-180 days) is
told in the messages it brought, never as a second, contradicting percentage."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from puente.app import create_app
from puente.channels.models import Channel
from puente.config import Settings
from puente.db.session import Database
from puente.runtime import Runtime
from tests.conformance.replay import coexistence_channel, replay
from tests.factories import PASSWORD, make_user, make_workspace
from tests.webclient import WebClient


@pytest.fixture
def owner(settings: Settings, db: Database) -> Iterator[tuple[WebClient, Runtime, int]]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        user = make_user(session, ws, role="owner")
        channel: Channel = coexistence_channel(session, ws)
        email, channel_id = user.email, channel.id
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        yield web, Runtime.from_settings(settings, db), channel_id


def _periods(html: str) -> dict[str, str]:
    found = re.findall(r'data-testid="history-phase-(\d)">(.*?)</li>', html, re.S)
    return {phase: " ".join(text.split()) for phase, text in found}


def test_each_period_is_told_in_messages_beside_one_overall_percentage(
    owner: tuple[WebClient, Runtime, int],
) -> None:
    web, runtime, channel_id = owner
    replay(runtime, "history_phase0_chunk1", "history_phase0_chunk2")
    importing = web.get(f"/channels/{channel_id}/progress").text
    assert 'data-testid="history-percent">60 %<' in importing
    assert _periods(importing) == {
        "0": "Last day: 5 messages",
        "1": "1 to 90 days ago: not received yet",
        "2": "90 to 180 days ago: not received yet",
    }
    assert "Meta's figure for the whole import" in importing

    replay(runtime, "history_phase1_chunk1")
    done = web.get(f"/channels/{channel_id}/progress").text
    assert 'data-testid="history-percent">100 %<' in done and "Complete" in done
    assert _periods(done) == {
        "0": "Last day: 5 messages",
        "1": "1 to 90 days ago: 2 messages",
        "2": "90 to 180 days ago: no messages",
    }
    assert "7 messages imported." in done
    # No second percentage per period to contradict the overall one.
    assert re.findall(r"\d+ %", done) == ["100 %", "100 %"]
