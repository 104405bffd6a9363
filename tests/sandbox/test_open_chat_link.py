"""The phone page opens a chat link as WhatsApp does: the chat with the link's number,
its text already in the composer, nothing sent until the customer sends it."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from puente.sandbox import SandboxConfig, create_sandbox_app
from puente.sandbox.phone import parse_chat_link
from puente.sandbox.seed import DEMO_NUMBER, DEMO_PHONE
from tests.sandbox.conftest import LUCIA

TEXT = "Hola, quiero reservar (ref: K7P2QX)"


@pytest.fixture
def phone() -> Iterator[TestClient]:
    with TestClient(create_sandbox_app(SandboxConfig())) as client:
        yield client


def test_a_wa_me_link_opens_the_chat_with_its_text(phone: TestClient) -> None:
    link = f"https://wa.me/{DEMO_PHONE}?text={quote(TEXT)}"
    opened = phone.get(
        "/_sandbox/phone/open", params={"link": link, "customer": LUCIA}, follow_redirects=False
    )
    assert opened.status_code == 303
    chat = f"/_sandbox/phone/{DEMO_NUMBER}/chat/{LUCIA}"
    assert opened.headers["location"].startswith(chat + "?text=")
    page = phone.get(opened.headers["location"])
    assert 'value="Hola, quiero reservar (ref: K7P2QX)"' in page.text
    assert phone.get(f"/_sandbox/api/numbers/{DEMO_NUMBER}/chats/{LUCIA}").json() == []


@pytest.mark.parametrize(
    ("link", "phone_digits", "text"),
    [
        (f"https://wa.me/{DEMO_PHONE}?text=Hola%20amigos", DEMO_PHONE, "Hola amigos"),
        (f"wa.me/+{DEMO_PHONE}", DEMO_PHONE, ""),
        (f"https://api.whatsapp.com/send?phone={DEMO_PHONE}&text=Hi", DEMO_PHONE, "Hi"),
    ],
)
def test_the_link_forms_whatsapp_reads(link: str, phone_digits: str, text: str) -> None:
    assert parse_chat_link(link) == (phone_digits, text)


def test_a_link_to_no_number_here_says_so(phone: TestClient) -> None:
    for link, reason in (
        ("https://wa.me/19995550000?text=Hola", "no number +19995550000"),
        ("https://example.com/chat", "not a WhatsApp chat link"),
    ):
        res = phone.get("/_sandbox/phone/open", params={"link": link, "customer": LUCIA})
        assert res.status_code == 200
        assert reason in res.text
        assert f'value="{link}"' in res.text  # kept in the field to correct it
