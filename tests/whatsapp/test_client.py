"""The Graph API client over real HTTP against a Meta-shaped server."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from puente.whatsapp import errors
from puente.whatsapp.client import GraphClient, SyncGraphClient
from tests.conftest import free_port
from tests.outbound.fake_graph import TOKEN, FakeGraph, serve

T = TypeVar("T")


@pytest.fixture
def graph(live_server_factory: Any) -> FakeGraph:
    return serve(
        live_server_factory,
        phone_numbers={
            "106540352242922": {
                "display_phone_number": "15550783881",
                "verified_name": "Panadería Luz",
                "is_on_biz_app": True,
                "platform_type": "CLOUD_API",
                "throughput": {"level": "STANDARD"},
            }
        },
    )


def run(graph: FakeGraph, call: Callable[[GraphClient], Awaitable[T]], token: str = TOKEN) -> T:
    async def _go() -> T:
        async with GraphClient(graph.base_url, "v23.0", token, timeout=5) as client:
            return await call(client)

    return asyncio.run(_go())


PNID = "106540352242922"


def test_send_text_returns_the_wamid_and_sends_meta_shape(graph: FakeGraph) -> None:
    payload = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "text",
        "text": {"body": "Hola", "preview_url": False},
    }
    result = run(graph, lambda c: c.send_message(PNID, payload))
    assert result.wamid.startswith("wamid.")
    assert result.wa_id == "16505551234"
    (sent,) = graph.sends()
    assert sent.path == f"/v23.0/{PNID}/messages"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.body["text"] == {"body": "Hola", "preview_url": False}


def test_mark_read_and_typing_indicator(graph: FakeGraph) -> None:
    assert run(graph, lambda c: c.mark_read(PNID, "wamid.IN1"))
    assert run(graph, lambda c: c.send_typing(PNID, "wamid.IN2"))
    bodies = [r.body for r in graph.requests]
    assert bodies[0] == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN1",
    }
    assert bodies[1]["typing_indicator"] == {"type": "text"}
    assert bodies[1]["message_id"] == "wamid.IN2"


@pytest.mark.parametrize(
    ("code", "http_status", "cls", "retryable"),
    [
        (131047, 400, errors.ReEngagementRequired, False),
        (131026, 400, errors.Undeliverable, False),
        (131050, 400, errors.MarketingOptOut, False),
        (132001, 404, errors.TemplateError, False),
        (130429, 400, errors.RateLimited, True),
        (131056, 400, errors.PairRateLimited, True),
        (131057, 503, errors.Maintenance, True),
        (80007, 400, errors.RateLimited, True),
        (190, 401, errors.AuthError, False),
        (100, 400, errors.InvalidParameter, False),
        (200, 403, errors.GraphPermissionError, False),
        (999999, 500, errors.ServerError, True),
    ],
)
def test_meta_errors_become_typed_exceptions(
    graph: FakeGraph, code: int, http_status: int, cls: type[errors.GraphError], retryable: bool
) -> None:
    graph.fail_next(
        code, http_status=http_status, message=f"(#{code}) message", details="the details"
    )
    payload = {"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {"body": "x"}}
    with pytest.raises(errors.GraphError) as caught:
        run(graph, lambda c: c.send_message(PNID, payload))
    exc = caught.value
    assert type(exc) is cls
    assert exc.code == code
    assert exc.retryable is retryable
    assert exc.http_status == http_status
    assert exc.message == f"(#{code}) message"
    assert exc.details == "the details"
    assert exc.fbtrace_id == "AbCdEf123"
    assert str(code) in exc.reason


def test_reason_speaks_plainly_for_a_closed_window(graph: FakeGraph) -> None:
    graph.closed_windows.add("16505551234")
    payload = {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "text",
        "text": {"body": "late"},
    }
    with pytest.raises(errors.ReEngagementRequired) as caught:
        run(graph, lambda c: c.send_message(PNID, payload))
    assert "only a template can be sent" in caught.value.reason
    assert caught.value.as_dict()["retryable"] is False


def test_expired_token_is_an_auth_error_with_subcode(graph: FakeGraph) -> None:
    with pytest.raises(errors.AuthError) as caught:
        run(graph, lambda c: c.get_phone_number(PNID), token="stale")
    assert caught.value.subcode == 463
    assert "reconnect" in caught.value.reason


def test_unreachable_server_is_a_retryable_transport_error() -> None:
    async def _go() -> None:
        async with GraphClient(f"http://127.0.0.1:{free_port()}", "v23.0", TOKEN) as client:
            await client.mark_read(PNID, "wamid.x")

    with pytest.raises(errors.GraphTransportError) as caught:
        asyncio.run(_go())
    assert caught.value.retryable
    assert caught.value.request_sent is False


def test_media_upload_get_url_download_and_delete(graph: FakeGraph) -> None:
    content = b"\x89PNG fake image bytes"

    async def flow(c: GraphClient) -> tuple[str, Any, bytes, bool]:
        media_id = await c.upload_media(PNID, content, mime_type="image/png", filename="a.png")
        info = await c.get_media(media_id, phone_number_id=PNID)
        data = await c.download_media(info.url)
        deleted = await c.delete_media(media_id)
        return media_id, info, data, deleted

    media_id, info, data, deleted = run(graph, flow)
    assert info.mime_type == "image/png"
    assert info.sha256 == hashlib.sha256(content).hexdigest()
    assert info.file_size == len(content)
    assert data == content
    assert deleted
    download = next(r for r in graph.requests if r.path == f"/files/{media_id}")
    assert download.headers["authorization"] == f"Bearer {TOKEN}"


def test_expired_media_url_raises_media_url_expired(graph: FakeGraph) -> None:
    media_id = run(graph, lambda c: c.upload_media(PNID, b"x", mime_type="image/jpeg"))
    info = run(graph, lambda c: c.get_media(media_id))
    graph.expired_media.add(media_id)
    with pytest.raises(errors.MediaUrlExpired):
        run(graph, lambda c: c.download_media(info.url))


def test_sync_facade_for_threaded_workers(graph: FakeGraph) -> None:
    media_id = run(graph, lambda c: c.upload_media(PNID, b"voice", mime_type="audio/ogg"))
    with SyncGraphClient(graph.base_url, "v23.0", TOKEN, timeout=5) as sync:
        info = sync.get_media(media_id)
        assert sync.download_media(info.url) == b"voice"
        with pytest.raises(errors.InvalidParameter):
            sync.get_media("999999999999")  # Meta's shape, but unknown there
        with pytest.raises(errors.BadMediaId):
            sync.get_media("does-not-exist")  # refused before any request


def test_templates_list_all_pages_create_and_delete(graph: FakeGraph) -> None:
    for i in range(3):
        graph.templates.append(
            {"id": str(i), "name": f"t{i}", "language": "es", "status": "APPROVED"}
        )

    async def flow(c: GraphClient) -> tuple[list[str], str, bool]:
        first = await c.list_templates("WABA1", limit=2)
        assert first.after is not None
        all_names = [t.name for t in await c.list_all_templates("WABA1")]
        created = await c.create_template(
            "WABA1",
            {
                "name": "order_ready",
                "category": "UTILITY",
                "language": "es",
                "components": [{"type": "BODY", "text": "Listo {{1}}"}],
            },
        )
        deleted = await c.delete_template("WABA1", name="t0")
        return all_names, created.id, deleted

    names, created_id, deleted = run(graph, flow)
    assert names == ["t0", "t1", "t2"]
    assert created_id
    assert deleted
    assert [t["name"] for t in graph.templates] == ["t1", "t2", "order_ready"]
    with pytest.raises(errors.InvalidParameter):
        run(graph, lambda c: c.delete_template("WABA1", name="nope"))


def test_numbers_subscriptions_sync_and_code_exchange(graph: FakeGraph) -> None:
    async def flow(c: GraphClient) -> tuple[Any, Any, bool, str, str]:
        number = await c.get_phone_number(PNID, ("is_on_biz_app", "platform_type"))
        numbers = await c.list_phone_numbers("WABA1")
        subscribed = await c.subscribe_app("WABA1")
        contacts = await c.smb_app_data(PNID, "smb_app_state_sync")
        history = await c.smb_app_data(PNID, "history")
        return number, numbers, subscribed, contacts, history

    number, numbers, subscribed, contacts, history = run(graph, flow)
    assert number.is_on_biz_app is True
    assert number.platform_type == "CLOUD_API"
    assert [n.display_phone_number for n in numbers] == ["15550783881"]
    assert subscribed
    assert (contacts, history) == ("req-smb_app_state_sync", "req-history")
    sync_bodies = [r.body for r in graph.requests if r.path.endswith("/smb_app_data")]
    assert sync_bodies == [
        {"messaging_product": "whatsapp", "sync_type": "smb_app_state_sync"},
        {"messaging_product": "whatsapp", "sync_type": "history"},
    ]

    token = run(
        graph,
        lambda c: c.exchange_code(app_id="1", app_secret="s", code="good-code"),
        token="",
    )
    assert token.access_token == "EAAG-business-token"
    exchange = next(r for r in graph.requests if r.path.endswith("/oauth/access_token"))
    assert "authorization" not in exchange.headers
    with pytest.raises(errors.InvalidParameter) as caught:
        run(
            graph,
            lambda c: c.exchange_code(app_id="1", app_secret="s", code="old"),
            token="",
        )
    assert caught.value.subcode == 36007


def test_sends_read_chunked_answers_and_reconnect_after_the_server_closes() -> None:
    """Message sends use their own keep-alive connections: an answer in chunks, a server
    that closes the connection after answering, and a connection that went stale while
    idle all still end in a delivered send, each request written once."""
    seen: list[bytes] = []
    connections = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(
            line.split(b":")[1] for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ))  # fmt: skip
        seen.append(await reader.readexactly(length))
        n = len(seen)
        body = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.C%d"}]}' % n
        if n == 1:  # chunked, then the server closes
            chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + chunks
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()  # every connection is closed after one answer

    async def go() -> list[str]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        payload = {"messaging_product": "whatsapp", "to": "1555", "type": "text",
                   "text": {"body": "¿listo?"}}  # fmt: skip
        try:
            async with GraphClient(f"http://127.0.0.1:{port}", "v23.0", TOKEN) as client:
                first = await client.send_message(PNID, payload)
                await asyncio.sleep(0.05)  # the second connection is closed while idle
                second = await client.send_message(PNID, payload)
                await asyncio.sleep(0.05)
                third = await client.send_message(PNID, b'{"to":"1555","type":"text"}')
        finally:
            server.close()
            await server.wait_closed()
        return [first.wamid, second.wamid, third.wamid]

    assert asyncio.run(go()) == ["wamid.C1", "wamid.C2", "wamid.C3"]
    assert connections == 3
    assert [json.loads(b)["to"] for b in seen] == ["1555", "1555", "1555"]
    assert json.loads(seen[0])["text"]["body"] == "¿listo?"


def test_a_send_cut_off_before_the_answer_may_have_reached_meta() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()  # read the request, then hang up without answering

    async def go() -> None:
        server = await asyncio.start_server(cut, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with GraphClient(f"http://127.0.0.1:{port}", "v23.0", TOKEN) as client:
                await client.send_message(PNID, {"to": "1555", "type": "text"})
        finally:
            server.close()
            await server.wait_closed()

    with pytest.raises(errors.GraphTransportError) as caught:
        asyncio.run(go())
    # Not resent at once: the request may have been taken before the hang-up.
    assert caught.value.request_sent is True
    assert caught.value.retryable
