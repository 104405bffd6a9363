"""The away message end to end: a number's hours set through the API, customers writing
from the sandbox's phones, and what those phones receive. Once per contact per period,
however Meta delivers the webhook; never for the owner's own messages; never while open."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from puente.automation.away_models import AwayMessageSent
from puente.contacts.models import Contact
from puente.conversations.models import Message
from tests.channels.conftest import NUMBER, Coex, make_coex  # noqa: F401 (a fixture)
from tests.conftest import APP_SECRET
from tests.ingest.helpers import signed
from tests.waiting import wait_until

LUCIA, PEDRO, ANA, OWNER_FRIEND = "5215590000001", "5215590000002", "34690000003", "5215590000004"
AWAY = "Hola {contact.name|}, ya cerramos. Te respondemos el lunes a las 9."
ALWAYS = [{"start": "00:00", "end": "24:00"}]
ALL_DAY = {day: ALWAYS for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def live(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    return make_coex()


def set_hours(live: Coex, channel_id: int, *, open_always: bool, **extra: Any) -> dict[str, Any]:
    body = {
        "time_zone": "America/Mexico_City",
        # Closed every day (no intervals) or open every minute: the test never depends on
        # the hour it runs at.
        "week": ALL_DAY if open_always else {},
        "away_enabled": True,
        "away_message": AWAY,
        "away_every_hours": 12,
        **extra,
    }
    res = live.api.put(f"/channels/{channel_id}/business-hours", json=body)
    assert res.status_code == 200, res.text
    return dict(res.json())


def customer_writes(live: Coex, sender: str, text: str, name: str = "Lucía") -> str:
    res = live.control.post(
        f"/numbers/{NUMBER}/inbound", json={"from": sender, "name": name, "text": text}
    )
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def messages_with(live: Coex, wa_id: str) -> list[dict[str, Any]]:
    """The messages Puente stored with `wa_id`, oldest first."""
    with live.db.read(unscoped="test") as session:
        rows = session.execute(
            select(Message.id, Message.wamid, Message.source, Message.text)
            .join(Contact, Contact.id == Message.contact_id)
            .where(Contact.wa_id == wa_id)
            .order_by(Message.id)
        ).all()
    return [dict(row._mapping) for row in rows]


def stored(live: Coex, wa_id: str, wamid: str) -> list[dict[str, Any]]:
    """Waits until Puente stored the message `wamid`: whatever the away step queues is
    committed in the same transaction, so it is there too by then."""
    found: list[dict[str, Any]] = wait_until(
        lambda: (m := messages_with(live, wa_id)) and any(x["wamid"] == wamid for x in m) and m,
        what=f"message {wamid} stored",
    )
    return found


def bot_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages if m["source"] == "bot"]


def phone_received(live: Coex, wa_id: str) -> list[str]:
    chat = live.control.get(f"/numbers/{NUMBER}/chats/{wa_id}").json()
    return [m["content"]["text"]["body"] for m in chat if m["direction"] == "out"]


def connected(live: Coex) -> int:
    channel_id = live.onboard(import_history=False)
    return channel_id


def test_a_closed_number_answers_once_per_period_and_the_phone_receives_it(live: Coex) -> None:
    channel_id = connected(live)
    shown = set_hours(live, channel_id, open_always=False)
    assert (shown["configured"], shown["open_now"], shown["next_opening"]) == (True, False, None)

    first = customer_writes(live, LUCIA, "¿Siguen abiertos?")
    expected = "Hola Lucía, ya cerramos. Te respondemos el lunes a las 9."
    assert bot_texts(stored(live, LUCIA, first)) == [expected]
    wait_until(lambda: phone_received(live, LUCIA) == [expected], what="the away message")

    # Within the period the customer writes again: nothing more.
    second = customer_writes(live, LUCIA, "¿Hola?")
    assert bot_texts(stored(live, LUCIA, second)) == [expected]

    # Once the period is over (its record made 13 hours old), the next message gets one.
    with live.db.unit_of_work(unscoped="test") as session:
        session.execute(
            update(AwayMessageSent).values(sent_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=13))
        )
    third = customer_writes(live, LUCIA, "¿Mañana abren?")
    assert bot_texts(stored(live, LUCIA, third)) == [expected, expected]
    wait_until(lambda: len(phone_received(live, LUCIA)) == 2, what="the second away message")
    with live.db.read(unscoped="test") as session:
        [record] = session.scalars(select(AwayMessageSent)).all()
        assert record.message_id == max(
            m["id"] for m in messages_with(live, LUCIA) if m["source"] == "bot"
        )


def test_a_webhook_delivered_twice_sends_one_away_message(live: Coex) -> None:
    channel_id = connected(live)
    set_hours(live, channel_id, open_always=False)
    assert live.control.patch("/config", json={"faults": {"duplicate": 1.0}}).status_code == 200
    wamid = customer_writes(live, PEDRO, "Buenas noches", name="Pedro")
    drained = live.control.post("/webhooks/drain").json()
    assert drained["drained"] and drained["duplicated"] >= 1
    assert len(bot_texts(stored(live, PEDRO, wamid))) == 1

    # Meta may also send the same message again in another envelope (another body, so
    # not the same raw event): stored once, answered once.
    [value] = [
        u["value"]
        for u in live.control.get("/webhooks", params={"field": "messages"}).json()
        if any(m["id"] == wamid for m in u["value"].get("messages", []))
    ]
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "another-entry", "changes": [{"field": "messages", "value": value}]}],
        },
        indent=1,
    ).encode()
    res = httpx.post(
        f"{live.puente.url}/webhooks/whatsapp",
        content=body,
        headers={"Content-Type": "application/json", **signed(body, APP_SECRET)},
    )
    assert res.status_code == 200, res.text
    later = customer_writes(live, PEDRO, "¿Me leen?", name="Pedro")
    assert len(bot_texts(stored(live, PEDRO, later))) == 1
    wait_until(lambda: len(phone_received(live, PEDRO)) == 1, what="the away message")
    assert len(phone_received(live, PEDRO)) == 1


def test_the_owners_own_messages_trigger_nothing(live: Coex) -> None:
    channel_id = connected(live)
    set_hours(live, channel_id, open_always=False)
    echo = live.control.post(
        f"/numbers/{NUMBER}/owner/messages", json={"to": OWNER_FRIEND, "text": "Te llamo mañana"}
    )
    assert echo.status_code == 201, echo.text
    messages = stored(live, OWNER_FRIEND, echo.json()["id"])
    assert [m["source"] for m in messages] == ["business_app"]
    assert phone_received(live, OWNER_FRIEND) == ["Te llamo mañana"]


def test_an_open_number_sends_no_away_message(live: Coex) -> None:
    channel_id = connected(live)
    shown = set_hours(live, channel_id, open_always=True)
    assert shown["open_now"] is True
    wamid = customer_writes(live, ANA, "Hola, ¿tienen talla M?", name="Ana")
    assert bot_texts(stored(live, ANA, wamid)) == []


def test_a_number_without_an_away_message_sends_none(live: Coex) -> None:
    channel_id = connected(live)
    set_hours(live, channel_id, open_always=False, away_enabled=False)
    wamid = customer_writes(live, ANA, "Hola", name="Ana")
    assert bot_texts(stored(live, ANA, wamid)) == []


def test_an_opt_out_gets_its_confirmation_and_no_away_message(live: Coex) -> None:
    channel_id = connected(live)
    set_hours(live, channel_id, open_always=False)
    wamid = customer_writes(live, LUCIA, "BAJA")
    [confirmation] = bot_texts(stored(live, LUCIA, wamid))
    assert confirmation.startswith("Listo: ya no te enviaremos mensajes promocionales")


def test_the_api_refuses_bad_hours_naming_each_field(live: Coex) -> None:
    channel_id = connected(live)
    res = live.api.put(
        f"/channels/{channel_id}/business-hours",
        json={
            "time_zone": "America/Mexico_City",
            "week": {
                "mon": [{"start": "13:00", "end": "09:00"}],
                "tue": [{"start": "09:00", "end": "14:00"}, {"start": "13:00", "end": "18:00"}],
            },
            "holidays_country": "ZZ",
            "away_enabled": True,
            "away_message": "",
        },
    )
    assert res.status_code == 422, res.text
    fields = {d["field"]: d["message"] for d in res.json()["error"]["details"]}
    assert fields == {
        "week.mon.0": "the interval ends before it starts",
        "week.tue.1": "overlaps another interval of the same day",
        "holidays_country": "no public holidays are known for this country "
        "(use a two-letter code: MX, ES)",
        "away_message": "write the away message, or turn it off",
    }
    # Nothing was stored: the number still has no hours.
    assert live.api.get(f"/channels/{channel_id}/business-hours").json()["configured"] is False
