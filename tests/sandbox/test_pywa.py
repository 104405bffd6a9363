"""Interoperability with pywa, an independent implementation: its client sends to the sandbox,
and its update parsing understands the webhooks the sandbox emits."""

from __future__ import annotations

import json
from typing import Any

import httpx
from pywa import WhatsApp, types
from pywa.types import Button, Section, SectionList, SectionRow
from pywa.types.templates import BodyText, TemplateLanguage

from tests.sandbox.conftest import LUCIA, NUMBER, TOKEN, WABA, Harness


class ToSandbox(httpx.BaseTransport):
    """Sends pywa's graph.facebook.com requests to the sandbox instead (scheme, host, port)."""

    def __init__(self, url: str) -> None:
        self.target = httpx.URL(url)
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self.target.scheme, host=self.target.host, port=self.target.port
        )
        return self.inner.handle_request(request)


def pywa_client(sandbox: Harness) -> WhatsApp:
    return WhatsApp(
        phone_id=NUMBER,
        token=TOKEN,
        waba_id=WABA,
        session=httpx.Client(transport=ToSandbox(sandbox.url)),
    )


def test_pywa_client_sends_text_template_interactive_and_uploads_media(sandbox: Harness) -> None:
    wa = pywa_client(sandbox)
    sandbox.inbound(text="hola")
    text = wa.send_message(to=LUCIA, text="¡Hola desde pywa!")
    buttons = wa.send_message(
        to=LUCIA,
        text="¿Confirmas?",
        buttons=[Button(title="Sí", callback_data="si"), Button(title="No", callback_data="no")],
    )
    listing = wa.send_message(
        to=LUCIA,
        text="Elige",
        buttons=SectionList(
            button_title="Ver",
            sections=[
                Section(
                    title="Tallas",
                    rows=[
                        SectionRow(title="M", callback_data="m"),
                        SectionRow(title="L", callback_data="l"),
                    ],
                )
            ],
        ),
    )
    template = wa.send_template(
        to=LUCIA,
        name="pedido_confirmado",
        language=TemplateLanguage.SPANISH,
        params=[BodyText.params("Lucía", "A-17")],
    )
    media = wa.upload_media(media=b"\x89PNG-pywa", mime_type="image/png", filename="p.png")
    image = wa.send_image(to=LUCIA, image=media.id, caption="Foto")
    sent = {m["id"]: m for m in sandbox.control.get("/sent").json()}
    assert sent[text.id]["content"]["text"]["body"] == "¡Hola desde pywa!"
    assert sent[buttons.id]["content"]["interactive"]["type"] == "button"
    assert sent[listing.id]["content"]["interactive"]["type"] == "list"
    assert sent[template.id]["content"]["template"]["name"] == "pedido_confirmado"
    assert sent[image.id]["content"]["image"]["id"] == media.id
    assert wa.get_media_url(media.id).mime_type == "image/png"


def parsed(sandbox: Harness, field: str, count: int) -> list[Any]:
    """Feed each delivered POST to pywa and collect the objects its handlers built."""
    wa = WhatsApp(phone_id=NUMBER, token=TOKEN, waba_id=WABA, server=None, validate_updates=False)
    seen: list[Any] = []
    wa.on_message()(lambda _, m: seen.append(m))
    wa.on_message_status()(lambda _, s: seen.append(s))
    wa.on_account_update()(lambda _, u: seen.append(u))
    wa.on_callback_button()(lambda _, b: seen.append(b))
    for handler in (
        "on_outgoing_message",
        "on_outgoing_edited_message",
        "on_outgoing_deleted_message",
        "on_edited_message",
        "on_deleted_message",
    ):
        if hasattr(wa, handler):
            getattr(wa, handler)()(lambda _, m: seen.append(m))
    posts = sandbox.receiver.wait_for(
        lambda: len(sandbox.receiver.changes(field)) >= count and sandbox.receiver.posts
    )
    for post in posts:
        if post["status"] == 200 and post["body"]["entry"][0]["changes"][0]["field"] == field:
            wa.webhook_update_handler(json.dumps(post["body"]).encode())
    return seen


def test_pywa_parses_messages_statuses_echoes_and_account_updates(sandbox: Harness) -> None:
    first = sandbox.inbound(text="hola", name="Lucía Gómez")
    sandbox.inbound(
        type="interactive",
        payload={"type": "button_reply", "button_reply": {"id": "si", "title": "Sí"}},
    )
    messages = parsed(sandbox, "messages", 2)
    assert isinstance(messages[0], types.Message) and messages[0].text == "hola"
    assert messages[0].from_user.wa_id == LUCIA and messages[0].from_user.name == "Lucía Gómez"
    assert messages[0].id == first["id"]
    assert isinstance(messages[1], types.CallbackButton) and messages[1].data == "si"

    wamid = sandbox.text(LUCIA, "gracias", biz_opaque_callback_data="t-1").json()["messages"][0][
        "id"
    ]
    sandbox.receiver.wait_for(lambda: len(sandbox.receiver.statuses_of(wamid)) == 3)
    statuses = [s for s in parsed(sandbox, "messages", 5) if isinstance(s, types.MessageStatus)]
    assert [s.status.value for s in statuses] == ["sent", "delivered", "read"]
    assert statuses[0].tracker == "t-1" and statuses[0].pricing is not None
    assert statuses[0].pricing.category.value == "service"

    echo = sandbox.control.post(
        f"/numbers/{NUMBER}/owner/messages", json={"to": LUCIA, "text": "Soy el dueño"}
    ).json()
    sandbox.control.post(
        f"/numbers/{NUMBER}/owner/messages",
        json={
            "to": LUCIA,
            "type": "edit",
            "payload": {"original_message_id": echo["id"], "text": "Soy la dueña"},
        },
    )
    sandbox.control.post(
        f"/numbers/{NUMBER}/owner/messages",
        json={"to": LUCIA, "type": "revoke", "payload": {"original_message_id": echo["id"]}},
    )
    echoes = parsed(sandbox, "smb_message_echoes", 3)
    assert len(echoes) == 3
    assert echoes[0].text == "Soy el dueño" and echoes[0].id == echo["id"]
    assert (
        type(echoes[1]).__name__ == "OutgoingEditedMessage"
        and echoes[1].original_message_id == echo["id"]
    )
    assert type(echoes[2]).__name__ == "OutgoingDeletedMessage"

    sandbox.control.post(
        f"/numbers/{NUMBER}/events",
        json={"event": "PARTNER_REMOVED", "reason": "PRIMARY_INACTIVITY", "initiated_by": "SYSTEM"},
    )
    sandbox.control.post(f"/numbers/{NUMBER}/events", json={"event": "ACCOUNT_OFFBOARDED"})
    sandbox.control.post(f"/numbers/{NUMBER}/events", json={"event": "ACCOUNT_RECONNECTED"})
    updates = parsed(sandbox, "account_update", 3)
    assert [u.event.value for u in updates] == [
        "PARTNER_REMOVED",
        "ACCOUNT_OFFBOARDED",
        "ACCOUNT_RECONNECTED",
    ]
    assert updates[0].disconnection_info.reason.value == "PRIMARY_INACTIVITY"
