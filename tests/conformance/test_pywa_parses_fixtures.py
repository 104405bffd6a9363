"""pywa, an independent implementation, reads our fixtures the same way we do: a check
that the payloads we test against are shaped like Meta's."""

from __future__ import annotations

from typing import Any

import pytest
from pywa import WhatsApp, types

from tests.conformance.replay import all_payload_names, load

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def wa() -> WhatsApp:
    return WhatsApp(phone_id="106540352242922", token="test-token", server=None)


def _first(payload: dict[str, Any], key: str) -> dict[str, Any]:
    item: dict[str, Any] = payload["entry"][0]["changes"][0]["value"][key][0]
    return item


MESSAGES = [
    n
    for n in all_payload_names()
    if n.startswith("messages_") and n not in ("messages_errors_only",)
]


@pytest.mark.parametrize("name", MESSAGES)
def test_pywa_parses_inbound_messages(wa: WhatsApp, name: str) -> None:
    payload = load(name)
    wire = _first(payload, "messages")
    if wire["type"] == "edit":
        parsed: Any = types.EditedMessage.from_update(client=wa, update=payload)
        assert parsed.original_message_id == wire["edit"]["original_message_id"]
    elif wire["type"] == "revoke":
        parsed = types.DeletedMessage.from_update(client=wa, update=payload)
        assert parsed.original_message_id == wire["revoke"]["original_message_id"]
    else:
        parsed = types.Message.from_update(client=wa, update=payload)
        assert parsed.id == wire["id"]
    assert int(parsed.timestamp.timestamp()) == int(wire["timestamp"])
    assert (
        parsed.from_user.bsuid
        == payload["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"]
    )


@pytest.mark.parametrize("name", [n for n in all_payload_names() if n.startswith("status_")])
def test_pywa_parses_statuses(wa: WhatsApp, name: str) -> None:
    payload = load(name)
    wire = _first(payload, "statuses")
    parsed = types.MessageStatus.from_update(client=wa, update=payload)
    assert (parsed.id, parsed.status.value) == (wire["id"], wire["status"])
    if wire["status"] == "failed":
        assert parsed.error is not None and parsed.error.code == wire["errors"][0]["code"]


@pytest.mark.parametrize("name", [n for n in all_payload_names() if n.startswith("echo_")])
def test_pywa_parses_echoes(wa: WhatsApp, name: str) -> None:
    payload = load(name)
    wire = _first(payload, "message_echoes")
    classes = {
        "edit": types.OutgoingEditedMessage,
        "revoke": types.OutgoingDeletedMessage,
    }
    cls: Any = classes.get(wire["type"], types.OutgoingMessage)
    parsed = cls.from_update(client=wa, update=payload)
    assert parsed.id == wire["id"]
    assert parsed.to_user.wa_id == wire["to"]


@pytest.mark.parametrize("name", [n for n in all_payload_names() if n.startswith("account_")])
def test_pywa_parses_account_updates(wa: WhatsApp, name: str) -> None:
    payload = load(name)
    value = payload["entry"][0]["changes"][0]["value"]
    parsed = types.AccountUpdate.from_update(client=wa, update=payload)
    assert parsed.event.value == value["event"]
    info = value.get("disconnection_info")
    if info:
        assert parsed.disconnection_info is not None
        assert parsed.disconnection_info.reason.value == info["reason"]
