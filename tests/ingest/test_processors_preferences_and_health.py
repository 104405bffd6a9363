"""Replayed Meta payloads: user_preferences records marketing consent (latest wins, also
against a 131050 refusal), and the number's health webhooks apply in either spelling of
the messaging limit, older events changing nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from puente.channels.models import Channel, ChannelMode
from puente.config import Settings
from puente.contacts.consent import ConsentSource, access_consent, do_record_consent
from puente.contacts.models import Contact
from puente.db.base import utcnow
from puente.db.session import Database
from puente.runtime import Runtime
from tests.conformance.replay import channel, contact_of, load, replay, setup_runtime


@pytest.fixture
def runtime(settings: Settings, db: Database) -> Runtime:
    return setup_runtime(settings, db)


def _consent(db: Database) -> tuple[str | None, str | None, list[str]]:
    contact = contact_of(db)
    with db.read(unscoped="test") as session:
        view = access_consent(session, contact.workspace_id, contact.id)
        return view.state, view.source, [e.kind for e in view.events]


def _at(payload: str, seconds: int) -> dict[str, Any]:
    body = copy.deepcopy(load(payload))
    body["entry"][0]["changes"][0]["value"]["user_preferences"][0]["timestamp"] = seconds
    return body


def test_stop_from_whatsapp_opts_the_contact_out_once(runtime: Runtime, db: Database) -> None:
    replay(runtime, "user_preferences_stop", "user_preferences_stop")
    assert _consent(db) == ("opt_out", "meta_user_preferences", ["opt_out"])
    assert contact_of(db).profile_name == "Sheena Nelson"


def test_an_older_resume_arriving_late_changes_nothing(runtime: Runtime, db: Database) -> None:
    replay(runtime, "user_preferences_stop", "user_preferences_resume_older")
    state, source, kinds = _consent(db)
    assert (state, source) == ("opt_out", "meta_user_preferences")
    assert sorted(kinds) == ["opt_in", "opt_out"]  # the resume is kept in the history


def test_a_newer_resume_opts_back_in(runtime: Runtime, db: Database) -> None:
    replay(runtime, "user_preferences_stop", _at("user_preferences_resume_older", 1739321400))
    assert _consent(db)[0] == "opt_in"


def test_a_resume_older_than_a_131050_refusal_changes_nothing(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_text")
    contact = contact_of(db)
    with db.unit_of_work(unscoped="test") as session:
        row = session.get(Contact, contact.id)
        assert row is not None
        do_record_consent(
            session, contact=row, kind="opt_out", source=ConsentSource.META_131050, at=utcnow()
        )
    replay(runtime, "user_preferences_resume_older")
    assert _consent(db)[:2] == ("opt_out", "meta_131050")


def _settings(db: Database) -> dict[str, Any]:
    return dict(channel(db).settings or {})


def test_quality_updates_set_tier_quality_and_ignore_older_events(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "phone_number_quality_update_downgrade")  # newest field, TIER_2K
    assert _settings(db)["messaging_limit_tier"] == "2000"
    assert channel(db).quality_event == "DOWNGRADE"
    replay(runtime, "phone_number_quality_update_flagged_legacy")  # older: ignored
    assert _settings(db)["messaging_limit_tier"] == "2000"
    assert channel(db).quality_rating is None


def test_the_legacy_current_limit_is_read_when_alone(runtime: Runtime, db: Database) -> None:
    replay(runtime, "phone_number_quality_update_flagged_legacy")
    assert _settings(db)["messaging_limit_tier"] == "1000"
    assert (channel(db).quality_rating, channel(db).quality_event) == ("RED", "FLAGGED")


def test_throughput_upgrade_paces_a_cloud_api_number_faster(runtime: Runtime, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        row = session.get(Channel, channel(db).id)
        assert row is not None
        row.mode, row.throughput_mps = ChannelMode.CLOUD_API.value, 80
    replay(runtime, "phone_number_quality_update_throughput_upgrade")
    assert channel(db).throughput_mps == 1000
    # current_limit names the throughput level here; the messaging limit is the new field.
    assert _settings(db)["messaging_limit_tier"] == "100000"


def test_coexistence_number_keeps_its_fixed_throughput(runtime: Runtime, db: Database) -> None:
    replay(runtime, "phone_number_quality_update_throughput_upgrade")
    assert channel(db).throughput_mps == 20


def test_name_review_latest_wins(runtime: Runtime, db: Database) -> None:
    replay(runtime, "phone_number_name_update_approved", "phone_number_name_update_rejected")
    row = channel(db)
    assert (row.name_status, row.requested_name, row.name_rejection_reason) == (
        "APPROVED",
        "Tienda La Esquina",
        None,
    )
