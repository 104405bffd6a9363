"""field `user_preferences`: a customer stopped or resumed marketing messages from
WhatsApp itself. Recorded on the contact's consent like a 131050 refusal, latest wins."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from puente.contacts.consent import record_preference_from_meta
from puente.contacts.models import ContactSource
from puente.contacts.resolve import Person, resolve_people
from puente.ingest.processors import ChangeRef
from puente.ingest.processors.channel import channel_of
from puente.ingest.processors.convert import from_unix
from puente.runtime import Runtime
from puente.whatsapp import webhooks as wire

log = logging.getLogger(__name__)


def process(session: Session, _runtime: Runtime, change: ChangeRef) -> None:
    value = wire.UserPreferencesValue.model_validate(change.value)
    prefs = [p for p in value.user_preferences if p.category == wire.MARKETING_PREFERENCES]
    if not prefs:
        return
    channel = channel_of(session, change)
    people = [_person(pref, value.contacts) for pref in prefs]
    resolved = resolve_people(
        session,
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        people=people,
        source=ContactSource.WHATSAPP.value,
    )
    for pref, person in zip(prefs, people, strict=True):
        found = resolved.get(person.key)
        if found is None:
            log.warning("user_preferences %s names no customer; kept only raw", pref.value)
            continue
        record_preference_from_meta(session, found.contact, pref.value, from_unix(pref.timestamp))


def _person(pref: wire.UserPreference, contacts: list[wire.WebhookContact]) -> Person:
    match = next(
        (
            c
            for c in contacts
            if (pref.wa_id and c.wa_id == pref.wa_id)
            or (pref.user_id and c.user_id == pref.user_id)
        ),
        contacts[0] if len(contacts) == 1 else None,
    )
    return Person(
        wa_id=pref.wa_id or (match.wa_id if match else None) or None,
        bsuid=pref.user_id or (match.user_id if match else None),
        parent_bsuid=match.parent_user_id if match else None,
        username=match.username if match else None,
        profile_name=match.profile.name if match and match.profile else None,
    )
