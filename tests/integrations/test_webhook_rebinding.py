"""Outgoing webhooks against a receiver whose DNS rebinds (answers with no lifetime, a
public address to the check before the send and 127.0.0.1 a moment later): with private
addresses refused, the delivery goes to the address that was checked, never to the
service listening on 127.0.0.1, and once the name points inside for the check too, the
delivery is refused naming that address. Over https, the certificate is checked and the
server name sent for the name, not the address. A name that does not resolve for the check
is not connected to by name either.

Name resolution is the standard library's `socket.getaddrinfo`, replaced here by a
resolver the test scripts. The network cannot be: the "public" address is routed to a
receiver on 127.0.0.2 by the same resolver (`socket.create_connection` asks
`getaddrinfo` for a numeric address too, where the network would route it). So the test
sees where a connection went, but it relies on the poster opening its connections with
`socket.create_connection`; one connecting otherwise would try the real address (and
fail within the test poster's short connect timeout)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from puente.config import Settings
from puente.db.session import Database
from puente.integrations.webhooks.posting import Poster
from puente.integrations.webhooks.worker import deliver_due
from tests.conftest import free_port
from tests.integrations.test_webhook_posting import _self_signed
from tests.integrations.test_webhooks import Receiver, World, _handler, _world

NAME = "hooks.example.com"
PUBLIC = "93.184.215.14"  # a public address; routed to the stand-in receiver on 127.0.0.2
STAND_IN = "127.0.0.2"
INSIDE = "127.0.0.1"  # what the rebinding DNS answers once the check has passed


@dataclass
class Resolver:
    """Answers `NAME` with `answers` in turn (the last one stays), counting the questions,
    and routes `PUBLIC` to `STAND_IN`; every other host is resolved as usual."""

    real: Callable[..., Any]
    answers: list[str | None] = field(default_factory=lambda: [PUBLIC])  # None: no such name
    asked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == NAME:
            with self.lock:
                self.asked += 1
                host = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if host is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        elif host == PUBLIC:
            host = STAND_IN
        return self.real(host, port, *args, **kwargs)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    found = Resolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", found)
    return found


@pytest.fixture
def world(settings: Settings, db: Database) -> Iterator[World]:
    yield from _world(settings, db)  # private addresses refused, as by default


@contextmanager
def serve_at(host: str, port: int, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    receiver = Receiver(port)
    server = ThreadingHTTPServer((host, port), _handler(receiver))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield receiver
    receiver.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def inside(port: int) -> Iterator[Receiver]:
    """The service beside Puente the rebinding DNS points at."""
    with serve_at(INSIDE, port) as receiver:
        yield receiver


def poster() -> Poster:
    return Poster(connect_timeout=0.5, read_timeout=2.0, deadline=5.0, user_agent="test")


def test_a_rebinding_name_gets_the_delivery_at_the_checked_address_then_is_refused(
    world: World, resolver: Resolver, inside: Receiver, port: int
) -> None:
    endpoint_id, _ = world.endpoint(f"http://{NAME}:{port}/x")  # checked: public
    with serve_at(STAND_IN, port) as public:
        # No lifetime to the answers: public to the check, 127.0.0.1 from then on.
        resolver.answers, resolver.asked = [PUBLIC, INSIDE], 0
        world.enqueue(1)
        delivered = deliver_due(world.db, client=poster())
        assert inside.requests == []  # the service beside Puente never hears of it
        [received] = public.at("/x")
        assert (delivered, resolver.asked) == (1, 1)  # the name resolved once, for the check
        assert received.headers["host"] == f"{NAME}:{port}"
        # The next batch is checked anew, and the name now points inside.
        world.enqueue(1)
        assert deliver_due(world.db, client=poster()) == 0
        assert len(public.at("/x")) == 1
    first, second = world.deliveries(endpoint_id)
    assert first.state == "delivered"
    assert second.state == "failed"
    assert second.last_error == f"refused: {NAME} resolves to a private address ({INSIDE})"
    assert inside.requests == []


def test_https_goes_to_the_checked_address_with_the_name_for_tls(
    world: World, resolver: Resolver, inside: Receiver, port: int, tmp_path: Path
) -> None:
    trusted = ssl.create_default_context()
    tls = _self_signed(tmp_path, trusted, name=NAME)
    names: list[str | None] = []
    tls.sni_callback = lambda sock, name, context: names.append(name)
    endpoint_id, _ = world.endpoint(f"https://{NAME}:{port}/x")
    with serve_at(STAND_IN, port, tls) as public:
        resolver.answers = [PUBLIC, INSIDE]
        client = poster()
        client._ssl = trusted  # the same verification, with the test's certificate trusted
        world.enqueue(2)
        delivered = deliver_due(world.db, client=client)
        assert inside.requests == []
        assert delivered == 2
        # One check for the batch (a second would have answered 127.0.0.1), and a
        # connection per delivery (the receiver speaks HTTP/1.0), each to the checked
        # address and each handshake for the name.
        assert names == [NAME, NAME]
        assert [r.headers["host"] for r in public.at("/x")] == [f"{NAME}:{port}"] * 2
    assert [d.state for d in world.deliveries(endpoint_id)] == ["delivered"] * 2
    assert inside.requests == []


def test_a_name_that_no_longer_resolves_is_not_connected_to_by_name(
    world: World, resolver: Resolver, inside: Receiver, port: int
) -> None:
    # Nothing to the check, 127.0.0.1 to a connection by name: the post is not tried.
    endpoint_id, _ = world.endpoint(f"http://{NAME}:{port}/x")
    resolver.answers = [None, INSIDE]
    world.enqueue(1)
    delivered = deliver_due(world.db, client=poster())
    assert inside.requests == []
    [delivery] = world.deliveries(endpoint_id)
    assert (delivered, delivery.state, delivery.last_error) == (0, "pending", "cannot resolve host")
