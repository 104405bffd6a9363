"""The poster outgoing webhooks send with, against a raw socket server in this process
that answers byte for byte as told: a keep-alive connection carries the next delivery; a
chunked answer gives its first kilobyte; interim answers are skipped; a huge answer is not
read to its end; a connection the receiver closed while idle is not reused; a connection
that drops before the answer is a failure, and the request is not sent again; an answer
dripping slowly ends at the deadline; a certificate that is not trusted is refused."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from puente.integrations.webhooks.posting import Poster, PostFailed, _readable
from tests.waiting import wait_until

OK = b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{"ok":true}'


@dataclass
class RawServer:
    """Reads each request whole, then writes what `answer(n)` returns for the n-th
    request (None: close the connection without an answer)."""

    answer: Callable[[int], bytes | None]
    close_after: bool = False  # hang up after each answer (an idle timeout, early)
    drip: float = 0.0  # seconds between the bytes of an answer
    tls: ssl.SSLContext | None = None
    sock: socket.socket = field(default_factory=socket.socket)
    connections: int = 0
    hangups: int = 0  # connections the client closed
    requests: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.sock.getsockname()[1]}/hook?x=1"
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
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()  # the client refused the certificate
                return
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        with self.lock:
                            self.hangups += 1
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
                if self.drip:
                    try:
                        for byte in out:
                            conn.sendall(bytes([byte]))
                            time.sleep(self.drip)
                    except OSError:
                        with self.lock:
                            self.hangups += 1
                        return
                else:
                    conn.sendall(out)
                if self.close_after:
                    return


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[int], bytes | None]], RawServer]]:
    servers: list[RawServer] = []

    def start(
        answer: Callable[[int], bytes | None],
        close_after: bool = False,
        drip: float = 0.0,
        tls: ssl.SSLContext | None = None,
    ) -> RawServer:
        server = RawServer(answer, close_after, drip, tls)
        server.sock.bind(("127.0.0.1", 0))
        server.sock.listen()
        threading.Thread(target=server.serve, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.sock.close()


def poster(read_timeout: float = 2.0, deadline: float = 5.0) -> Poster:
    return Poster(
        connect_timeout=2.0,
        read_timeout=read_timeout,
        deadline=deadline,
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


def test_a_chunked_answer_gives_its_first_bytes_and_interim_answers_are_skipped(
    serve: Callable[..., RawServer],
) -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
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


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3B9ACA00\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",  # a body that ends when the connection does
    ],
    ids=["content-length", "chunked", "until-close"],
)
def test_a_huge_answer_gives_its_first_bytes_and_its_connection_is_dropped(
    serve: Callable[..., RawServer], head: bytes
) -> None:
    # A gigabyte announced, a little of it sent, the rest never: the poster does not wait
    # for it (it would time out) and hangs up instead of draining it.
    server = serve(lambda n: head + b"y" * 100 if n == 1 else OK)
    client = poster()
    answer = client.post(server.url, b"{}", HEADERS)
    assert (answer.status, answer.excerpt) == (200, b"y" * 16)
    wait_until(lambda: server.hangups == 1, what="the poster to hang up")
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
        idle = [idle.conn.sock for conns in client._idle.values() for idle in conns]
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


def test_an_answer_dripping_slower_than_the_deadline_times_out(
    serve: Callable[..., RawServer],
) -> None:
    # Each byte comes well within the read timeout, the whole answer would take seconds.
    slow = b"HTTP/1.1 200 OK\r\nx-padding: " + b"p" * 100 + b"\r\n" + OK[17:]
    server = serve(lambda n: slow, drip=0.05)
    with pytest.raises(PostFailed, match=r"^timeout$"):
        poster(read_timeout=2.0, deadline=0.3).post(server.url, b"{}", HEADERS)
    wait_until(lambda: server.hangups == 1, what="the poster to hang up")


def test_https_keeps_its_connection_and_refuses_a_certificate_it_does_not_trust(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    trusted = ssl.create_default_context()
    server = serve(lambda n: OK, tls=_self_signed(tmp_path, trusted))
    with pytest.raises(PostFailed, match="certificate verify failed"):
        poster().post(server.url, b"{}", HEADERS)  # certifi's roots, as in production
    client = poster()
    client._ssl = trusted  # the same verification, with the test's certificate trusted
    for _ in range(2):
        assert client.post(server.url, b"{}", HEADERS).excerpt == b'{"ok":true}'
    assert (server.connections, len(server.requests)) == (2, 2)


def _self_signed(
    tmp_path: Path, trusting: ssl.SSLContext, name: str = "localhost"
) -> ssl.SSLContext:
    """A server context with a new certificate for `name`, which `trusting` trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    trusting.load_verify_locations(cert_file)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return server


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
