"""The Graph API client over real HTTP against Puente's Meta sandbox (and, for broken
connections, against small raw servers)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from puente.sandbox import SandboxConfig
from puente.whatsapp import errors
from puente.whatsapp.client import GraphClient, SyncGraphClient
from tests.conftest import LiveServer, free_port
from tests.graph_sandbox import TOKEN, GraphSandbox, start_graph_sandbox

T = TypeVar("T")
CUSTOMER = "16505551234"
PNID = "106540352242922"  # for servers that do not look at it


@pytest.fixture
def graph(live_server_factory: type[LiveServer]) -> GraphSandbox:
    return start_graph_sandbox(live_server_factory)


@pytest.fixture
def number(graph: GraphSandbox) -> dict[str, Any]:
    """A number onboarded from the Business app (coexistence)."""
    return graph.add_number(
        coexistence=True, display_phone_number="15550783881", verified_name="Panadería Luz"
    )


@pytest.fixture
def pnid(number: dict[str, Any]) -> str:
    return str(number["id"])


def run(graph: GraphSandbox, call: Callable[[GraphClient], Awaitable[T]], token: str = TOKEN) -> T:
    async def _go() -> T:
        async with GraphClient(graph.url, "v23.0", token, timeout=5) as client:
            return await call(client)

    return asyncio.run(_go())


def test_send_text_returns_the_wamid_and_sends_meta_shape(graph: GraphSandbox, pnid: str) -> None:
    payload = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+" + CUSTOMER,
        "type": "text",
        "text": {"body": "Hola", "preview_url": False},
    }
    result = run(graph, lambda c: c.send_message(pnid, payload))
    assert result.wamid.startswith("wamid.")
    assert result.wa_id == CUSTOMER
    assert [m["id"] for m in graph.sent()] == [result.wamid]
    (sent,) = graph.send_requests()
    assert sent["path"] == f"/v23.0/{pnid}/messages"
    assert sent["authorization"] == f"Bearer {TOKEN}"
    assert sent["body"]["text"] == {"body": "Hola", "preview_url": False}


def test_mark_read_and_typing_indicator(graph: GraphSandbox, pnid: str) -> None:
    first = graph.customer_writes(pnid, CUSTOMER, "Hola")
    second = graph.customer_writes(pnid, CUSTOMER, "¿Tienen pan dulce?")
    assert run(graph, lambda c: c.mark_read(pnid, first))
    assert run(graph, lambda c: c.send_typing(pnid, second))
    calls = graph.requests("/messages")
    assert [r["status"] for r in calls] == [200, 200]
    assert calls[0]["body"] == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": first,
    }
    assert calls[1]["body"]["typing_indicator"] == {"type": "text"}
    assert calls[1]["body"]["message_id"] == second


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
    graph: GraphSandbox,
    pnid: str,
    code: int,
    http_status: int,
    cls: type[errors.GraphError],
    retryable: bool,
) -> None:
    graph.fail_next(code, status=http_status, message=f"(#{code}) message", details="the details")
    payload = {
        "messaging_product": "whatsapp",
        "to": CUSTOMER,
        "type": "text",
        "text": {"body": "x"},
    }
    with pytest.raises(errors.GraphError) as caught:
        run(graph, lambda c: c.send_message(pnid, payload))
    exc = caught.value
    assert type(exc) is cls
    assert exc.code == code
    assert exc.retryable is retryable
    assert exc.http_status == http_status
    assert exc.message == f"(#{code}) message"
    assert exc.details == "the details"
    (refused,) = graph.send_requests()
    assert exc.fbtrace_id and exc.fbtrace_id == refused["answer"]["error"]["fbtrace_id"]
    assert str(code) in exc.reason


def test_reason_speaks_plainly_for_a_closed_window(graph: GraphSandbox, pnid: str) -> None:
    # The customer never wrote; Meta refuses in its answer rather than in a status.
    graph.configure(policy_errors_sync=True)
    payload = {
        "messaging_product": "whatsapp",
        "to": CUSTOMER,
        "type": "text",
        "text": {"body": "late"},
    }
    with pytest.raises(errors.ReEngagementRequired) as caught:
        run(graph, lambda c: c.send_message(pnid, payload))
    assert "only a template can be sent" in caught.value.reason
    assert caught.value.as_dict()["retryable"] is False


def test_expired_token_is_an_auth_error_with_subcode(
    graph: GraphSandbox, number: dict[str, Any], pnid: str
) -> None:
    token = graph.expiring_token([number["waba_id"]])
    assert run(graph, lambda c: c.get_phone_number(pnid), token=token).id == pnid
    graph.expire_tokens()
    with pytest.raises(errors.AuthError) as caught:
        run(graph, lambda c: c.get_phone_number(pnid), token=token)
    assert caught.value.subcode == 463
    assert "Session has expired" in caught.value.message
    assert "reconnect" in caught.value.reason


def test_unreachable_server_is_a_retryable_transport_error() -> None:
    async def _go() -> None:
        async with GraphClient(f"http://127.0.0.1:{free_port()}", "v23.0", TOKEN) as client:
            await client.mark_read(PNID, "wamid.x")

    with pytest.raises(errors.GraphTransportError) as caught:
        asyncio.run(_go())
    assert caught.value.retryable
    assert caught.value.request_sent is False


def test_media_upload_get_url_download_and_delete(graph: GraphSandbox, pnid: str) -> None:
    content = b"\x89PNG fake image bytes"

    async def flow(c: GraphClient) -> tuple[str, Any, bytes, bool]:
        media_id = await c.upload_media(pnid, content, mime_type="image/png", filename="a.png")
        info = await c.get_media(media_id, phone_number_id=pnid)
        data = await c.download_media(info.url)
        deleted = await c.delete_media(media_id)
        return media_id, info, data, deleted

    media_id, info, data, deleted = run(graph, flow)
    assert info.mime_type == "image/png"
    assert info.sha256 == hashlib.sha256(content).hexdigest()
    assert info.file_size == len(content)
    assert data == content
    assert deleted
    (download,) = graph.requests(f"/_sandbox/lookaside/{media_id}")
    assert download["authorization"] == f"Bearer {TOKEN}"
    with pytest.raises(errors.InvalidParameter):  # deleted at Meta
        run(graph, lambda c: c.get_media(media_id))


def test_expired_media_url_raises_media_url_expired(graph: GraphSandbox, pnid: str) -> None:
    media_id = run(graph, lambda c: c.upload_media(pnid, b"x", mime_type="image/jpeg"))
    info = run(graph, lambda c: c.get_media(media_id))
    graph.advance_clock(301)  # Meta's media URLs last five minutes
    with pytest.raises(errors.MediaUrlExpired):
        run(graph, lambda c: c.download_media(info.url))


def test_sync_facade_for_threaded_workers(graph: GraphSandbox, pnid: str) -> None:
    media_id = run(graph, lambda c: c.upload_media(pnid, b"voice", mime_type="audio/ogg"))
    with SyncGraphClient(graph.url, "v23.0", TOKEN, timeout=5) as sync:
        info = sync.get_media(media_id)
        assert sync.download_media(info.url) == b"voice"
        with pytest.raises(errors.InvalidParameter):
            sync.get_media("999999999999")  # Meta's shape, but unknown there
        with pytest.raises(errors.BadMediaId):
            sync.get_media("does-not-exist")  # refused before any request


def test_templates_list_all_pages_create_and_delete(
    graph: GraphSandbox, number: dict[str, Any]
) -> None:
    waba = number["waba_id"]
    for i in range(3):
        graph.add_template(
            waba,
            name=f"t{i}",
            language="es",
            category="UTILITY",
            components=[{"type": "BODY", "text": f"Hola {i}"}],
        )

    async def flow(c: GraphClient) -> tuple[list[str], str, bool]:
        first = await c.list_templates(waba, limit=2)
        assert first.after is not None
        all_names = [t.name for t in await c.list_all_templates(waba)]
        created = await c.create_template(
            waba,
            {
                "name": "order_ready",
                "category": "UTILITY",
                "language": "es",
                "components": [{"type": "BODY", "text": "Listo {{1}}"}],
            },
        )
        deleted = await c.delete_template(waba, name="t0")
        return all_names, created.id, deleted

    names, created_id, deleted = run(graph, flow)
    assert names == ["t0", "t1", "t2"]
    assert created_id
    assert deleted
    assert [(t["name"], t["id"] == created_id) for t in graph.templates(waba)] == [
        ("t1", False),
        ("t2", False),
        ("order_ready", True),
    ]
    with pytest.raises(errors.InvalidParameter):
        run(graph, lambda c: c.delete_template(waba, name="nope"))


def test_numbers_subscriptions_sync_and_code_exchange(
    graph: GraphSandbox, number: dict[str, Any], pnid: str
) -> None:
    waba = number["waba_id"]

    async def flow(c: GraphClient) -> tuple[Any, Any, bool, str, str]:
        number = await c.get_phone_number(pnid, ("is_on_biz_app", "platform_type"))
        numbers = await c.list_phone_numbers(waba)
        subscribed = await c.subscribe_app(waba)
        contacts = await c.smb_app_data(pnid, "smb_app_state_sync")
        history = await c.smb_app_data(pnid, "history")
        return number, numbers, subscribed, contacts, history

    info, numbers, subscribed, contacts, history = run(graph, flow)
    assert info.is_on_biz_app is True
    assert info.platform_type == "CLOUD_API"
    assert [n.display_phone_number for n in numbers] == ["15550783881"]
    assert subscribed
    at_meta = graph.control("GET", f"/numbers/{pnid}").json()
    assert at_meta["syncs"] == {"smb_app_state_sync": contacts, "history": history}
    assert contacts != history
    sync_bodies = [r["body"] for r in graph.requests("/smb_app_data")]
    assert sync_bodies == [
        {"messaging_product": "whatsapp", "sync_type": "smb_app_state_sync"},
        {"messaging_product": "whatsapp", "sync_type": "history"},
    ]

    app = SandboxConfig()
    good, old = (signup_code(graph, phone) for phone in ("15550000101", "15550000102"))
    token = run(
        graph,
        lambda c: c.exchange_code(app_id=app.app_id, app_secret=app.app_secret, code=good),
        token="",
    )
    assert token.access_token.startswith("EAAG")
    (exchange,) = graph.requests("/oauth/access_token")
    assert exchange["authorization"] is None
    graph.advance_clock(31)  # codes are good for 30 seconds
    with pytest.raises(errors.InvalidParameter) as caught:
        run(
            graph,
            lambda c: c.exchange_code(app_id=app.app_id, app_secret=app.app_secret, code=old),
            token="",
        )
    assert caught.value.subcode == 36007


def signup_code(graph: GraphSandbox, phone: str) -> str:
    """The code Embedded Signup hands the browser for a new number."""
    answer = graph.control("POST", "/signups", json={"mode": "new", "phone": phone})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["code"])


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
