"""The poster outgoing webhooks send with, against a raw socket server in this process
that answers byte for byte as told: a keep-alive connection carries the next delivery; a
chunked answer gives its first kilobyte; an interim 100 Continue is skipped; a connection
the receiver closed while idle is not reused; a connection that drops before the answer is
a failure, and the request is not sent again."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from puente.integrations.webhooks.posting import Poster, PostFailed, _readable
from tests.waiting import wait_until

OK = b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{"ok":true}'


@dataclass
class RawServer:
    """Reads each request whole, then writes what `answer(n)` returns for the n-th
    request (None: close the connection without an answer)."""

    answer: Callable[[int], bytes | None]
    close_after: bool = False  # hang up after each answer (an idle timeout, early)
    sock: socket.socket = field(default_factory=socket.socket)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook?x=1"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(buf) < length:
                    buf += conn.recv(65536)
                with self.lock:
                    self.requests.append(head + b"\r\n\r\n" + buf[:length])
                    n = len(self.requests)
                buf = buf[length:]
                out = self.answer(n)
                if out is None:
                    return
                conn.sendall(out)
                if self.close_after:
                    return


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[int], bytes | None]], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Callable[[int], bytes | None], close_after: bool = False) -> RawServer:
        server = RawServer(answer, close_after)
        server.sock.bind(("127.0.0.1", 0))
        server.sock.listen()
        threading.Thread(target=server.serve, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.sock.close()


def poster(read_timeout: float = 2.0) -> Poster:
    return Poster(
        connect_timeout=2.0,
        read_timeout=read_timeout,
        deadline=5.0,
        user_agent="test",
        excerpt_bytes=16,
    )


HEADERS = (("content-type", "application/json"), ("webhook-id", "msg_1"))


def test_a_keep_alive_connection_carries_the_next_delivery(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda n: OK)
    client = poster()
    for n in range(3):
        answer = client.post(server.url, b'{"n":%d}' % n, HEADERS)
        assert (answer.status, answer.excerpt) == (200, b'{"ok":true}')
    client.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert b"\r\nwebhook-id: msg_1\r\n" in first and first.endswith(b'{"n":0}')


def test_a_chunked_answer_gives_its_first_bytes_and_an_interim_answer_is_skipped(
    serve: Callable[..., RawServer],
) -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    server = serve(lambda n: chunked if n == 1 else b"x" * 40 + b"\r\n\r\n" if n == 2 else OK)
    client = poster()
    answer = client.post(server.url, b"{}", HEADERS)
    assert (answer.status, answer.excerpt) == (503, b"hello world")
    # The whole chunked answer was read: the same connection goes on (and a junk answer
    # on it is a failure, not a crash).
    with pytest.raises(PostFailed):
        client.post(server.url, b"{}", HEADERS)
    assert client.post(server.url, b"{}", HEADERS).status == 200
    assert server.connections == 2


def test_a_connection_closed_while_idle_is_not_reused(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda n: OK, close_after=True)
    client = poster()
    assert client.post(server.url, b"{}", HEADERS).status == 200
    wait_until(lambda: server.connections == 1 and _peer_gone(client), what="the hang-up")
    assert client.post(server.url, b"{}", HEADERS).status == 200
    assert (server.connections, len(server.requests)) == (2, 2)


def _peer_gone(client: Poster) -> bool:
    with client._lock:
        idle = [conn.sock for conns in client._idle.values() for conn in conns]
    return bool(idle) and all(_readable(sock) for sock in idle)


def test_a_drop_before_the_answer_fails_and_is_not_sent_again(
    serve: Callable[..., RawServer],
) -> None:
    server = serve(lambda n: None)
    client = poster()
    with pytest.raises(PostFailed, match="closed the connection without an answer"):
        client.post(server.url, b"{}", HEADERS)
    assert len(server.requests) == 1


def test_a_silent_receiver_times_out_and_a_closed_port_is_refused(
    serve: Callable[..., RawServer],
) -> None:
    release = threading.Event()
    server = serve(lambda n: OK if release.wait(5) else None)
    with pytest.raises(PostFailed, match=r"^timeout$"):
        poster(read_timeout=0.2).post(server.url, b"{}", HEADERS)
    release.set()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(PostFailed, match=r"^connection refused$"):
        poster().post(f"http://127.0.0.1:{port}/", b"{}", HEADERS)


def test_idle_connections_of_receivers_no_longer_sent_to_are_closed(
    serve: Callable[..., RawServer],
) -> None:
    first, second = serve(lambda n: OK), serve(lambda n: OK)
    client = Poster(
        connect_timeout=2.0,
        read_timeout=2.0,
        deadline=5.0,
        user_agent="test",
        keepalive_expiry=0.05,
    )
    client.post(first.url, b"{}", HEADERS)
    time.sleep(0.1)
    client.post(second.url, b"{}", HEADERS)
    assert [origin[2] for origin in client._idle] == [second.sock.getsockname()[1]]
