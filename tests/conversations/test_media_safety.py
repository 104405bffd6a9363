"""A webhook's media fields are data from outside: the number's token goes to Meta's hosts
only, a media id that is not Meta's shape never reaches a Graph request, and a redirect
is not a file (issue: a signed webhook could make the worker send the token anywhere)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from puente.whatsapp.client import GraphClient
from puente.whatsapp.errors import MediaRedirected, UntrustedMediaLink
from tests.conftest import LiveServer
from tests.conversations.conftest import LUCIA, World
from tests.factories import make_channel, make_workspace
from tests.ingest.helpers import dumps, envelope, messages_change, signed

PHONE_NUMBER_ID = "106540352242922"  # the sandbox's demo number, as in the world fixture


class Catcher:
    """A server outside Meta that records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def app(self) -> Starlette:
        async def anything(request: Request) -> Response:
            self.seen.append(dict(request.headers))
            if request.url.path == "/redirect":
                return RedirectResponse("/file", status_code=302)
            return Response(b"stolen", media_type="image/jpeg")

        return Starlette(routes=[Route("/{path:path}", anything)])


def _post_image(world: World, wamid: str, image: dict[str, Any]) -> None:
    message: dict[str, Any] = {
        "from": LUCIA,
        "id": wamid,
        "timestamp": "1749416383",
        "type": "image",
    }
    message["image"] = {"mime_type": "image/jpeg", **image}
    body = dumps(
        envelope(messages_change([message], phone_number_id=PHONE_NUMBER_ID, sender=LUCIA))
    )
    base = str(world.api.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")
    res = httpx.post(f"{base}/webhooks/whatsapp", content=body, headers=signed(body))
    assert res.status_code == 200, res.text
    world.process()


def _media_by_wamid(world: World, wamid: str) -> Any:
    from sqlalchemy import select

    from puente.conversations.models import Media, Message

    with world.runtime.db.read(unscoped="test") as session:
        return session.execute(
            select(Media.state, Media.last_error, Media.attempts)
            .join(Message, Message.id == Media.message_id)
            .where(Message.wamid == wamid)
        ).one()


def test_a_media_link_to_another_host_never_receives_the_token(
    world: World, live_server_factory: type[LiveServer]
) -> None:
    catcher = Catcher()
    server = live_server_factory(catcher.app()).start()
    _post_image(world, "wamid.STEAL1", {"url": f"{server.url}/steal"})

    world.downloader.step()

    assert catcher.seen == []
    state, error, _ = _media_by_wamid(world, "wamid.STEAL1")
    assert state == "failed"  # for good: asking again would only repeat the refusal
    assert "does not point at Meta" in error


@pytest.mark.parametrize("media_id", ["../../etc/passwd", "x?access_token=1#", "12/../34"])
def test_a_media_id_that_is_not_metas_never_reaches_the_graph(world: World, media_id: str) -> None:
    _post_image(world, f"wamid.BADID{abs(hash(media_id))}", {"id": media_id})

    world.downloader.step()

    state, error, _ = _media_by_wamid(world, f"wamid.BADID{abs(hash(media_id))}")
    assert state == "failed"
    assert "not one Meta gives" in error
    seen = world.control.get("/requests").json()
    assert not any("passwd" in str(r) or "access_token" in str(r) for r in seen)


def test_a_redirect_is_not_stored_as_an_empty_file(live_server_factory: type[LiveServer]) -> None:
    catcher = Catcher()
    server = live_server_factory(catcher.app()).start()

    async def download() -> None:
        async with GraphClient(server.url, access_token="t0ken") as client:
            await client.stream_media(f"{server.url}/redirect", lambda chunk: None, max_bytes=1000)

    with pytest.raises(MediaRedirected):
        asyncio.run(download())
    assert [h.get("authorization") for h in catcher.seen] == ["Bearer t0ken"]


def test_the_token_goes_to_the_graph_host_and_metas_media_host_only() -> None:
    client = GraphClient("http://127.0.0.1:9", access_token="t")
    client.check_media_link("http://127.0.0.1:9/_sandbox/lookaside/1?hash=x")
    client.check_media_link("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1")
    for url in (
        "http://127.0.0.1:10/file",  # another port of the same host
        "https://127.0.0.1:9/file",  # another scheme
        "http://lookaside.fbsbx.com/x",  # Meta's host without TLS
        "https://lookaside.fbsbx.com.evil.test/x",
        "https://evil.test/?u=https://lookaside.fbsbx.com/",
        "file:///etc/passwd",
    ):
        with pytest.raises(UntrustedMediaLink):
            client.check_media_link(url)
    asyncio.run(client.aclose())


def test_a_bad_token_stored_in_one_workspace_does_not_stall_anothers_media(
    world: World,
) -> None:
    # A token with a non-ASCII character, stored before tokens were checked.
    with world.runtime.db.unit_of_work(unscoped="test") as session:
        other = make_channel(session, make_workspace(session), phone_number_id="109999000111")
        other.access_token_encrypted = world.runtime.secrets.encrypt("EAAGñandú-token")
    message = {
        "from": LUCIA,
        "id": "wamid.OTHER1",
        "timestamp": "1749416383",
        "type": "image",
        "image": {"id": "1065403522999", "mime_type": "image/png"},
    }
    body = dumps(envelope(messages_change([message], phone_number_id="109999000111")))
    base = str(world.api.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")
    assert httpx.post(f"{base}/webhooks/whatsapp", content=body, headers=signed(body)).is_success
    mine = world.customer_sends("image")  # the sandbox's number, with a good token

    world.downloader.step()

    assert world.media_of(mine.id).state == "stored"
    state, error, _ = _media_by_wamid(world, "wamid.OTHER1")
    assert state == "pending"  # waits for a usable token; it is not lost
    assert "no usable access token" in error
