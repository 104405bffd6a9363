"""The HTTP client outgoing webhooks send with: one POST of a JSON body over a keep-alive
HTTP/1.1 connection of the standard library's `http.client`, and of the answer only the
status, the `location` header and at most a kilobyte of the body.

Why not httpx, as everything else does: a delivery is one small request, a thousand a
second when messages pour in, sent from threads of the process that also runs ingest.
httpx spends about 360 µs of CPU on each (its request and response models, h11's event
machine, cookie and URL handling, its pool's checks); this, about 75 to 100. (Measured with
`time.process_time()` over 2,000 POSTs on one keep-alive connection to a local receiver in
another process.) aiohttp, which the Graph sends use (`puente.whatsapp.http1`), wants an
event loop, and the sender's lanes are threads.

Why not a client of our own over raw sockets, as Puente had for a while (about 25 µs in
the same measurement): parsing answers (status lines, headers, content-length against
chunked bodies, interim answers, when a connection may carry another request) is a job
for a well-kept library, and some 60 µs a delivery do not pay for owning that code. What
is ours is small: which connection a post takes (an idle one to the same origin, not
expired and not closed by the server, or a new one), where a new one goes (to addresses the
caller checked, when it gives them: see `Poster.post`), one write for the head and the
body, and an overall deadline on reading the answer, which `http.client`'s per-read timeout
lacks.

What it does not do, on purpose: follow redirects (one is a failure the delivery log
shows), decompress (it asks for none), read a big answer (the connection is dropped after
the excerpt instead of being drained), send a request twice (a connection that fails once
the request was written is a failed try, retried later with the same webhook-id, never
resent here)."""

from __future__ import annotations

import functools
import http.client
import io
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

Origin = tuple[str, str, int]  # scheme, host, port: what a connection can be reused for


class PostFailed(Exception):
    """No answer; the message is what the delivery log shows."""


@dataclass(frozen=True)
class Answer:
    status: int
    location: str | None
    excerpt: bytes  # the first bytes of the body, at most the poster's `excerpt_bytes`


@functools.lru_cache(maxsize=1024)
def _target_of(url: str) -> tuple[Origin, str]:
    """The origin to connect to and the path (with the query) to ask for."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostFailed(f"not an http(s) URL: {url[:200]}")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except (UnicodeError, ValueError) as exc:
        raise PostFailed(f"invalid URL: {exc}") from None
    # As a browser would send it: what is already escaped stays, the rest is escaped.
    path = quote(parts.path or "/", safe="/%!$&'()*+,;=:@-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/?%!$&'()*+,;=:@-._~")
    return (parts.scheme, host, port), path


class _DeadlineReader(io.RawIOBase):
    """An answer's bytes from the socket, each read bounded by the read timeout and all of
    them by the post's deadline: a receiver dripping its answer cannot hold a lane."""

    def __init__(self, sock: socket.socket, read_timeout: float, deadline_at: float) -> None:
        # The socket's own file: it keeps the socket open after the connection lets go of
        # it (an answer that closes the connection is read after `http.client` closed it).
        self._raw = sock.makefile("rb", buffering=0)
        self._sock = sock
        self._read_timeout = read_timeout
        self._deadline_at = deadline_at

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline_at - time.monotonic()
        if left <= 0:
            raise TimeoutError("timeout")
        self._sock.settimeout(min(self._read_timeout, left))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Response(http.client.HTTPResponse):
    def begin(self) -> None:
        super().begin()
        # `http.client` skips a 100 Continue but returns other interim answers (103 Early
        # Hints) as the answer: they are skipped too, the final answer follows them.
        while 100 < self.status < 200 and self.status != 101:
            self.headers = self.msg = None  # type: ignore[assignment]  # begin() reads anew
            super().begin()


class _Timed(http.client.HTTPConnection):
    """A connection whose answers are read with a deadline (`deadline_at`, set per post)."""

    read_timeout = 5.0
    deadline_at = 0.0
    body = b""  # sent with the head by endheaders(): one write, one segment
    address: str | None = None  # the checked address connected to; None: by the host's name
    # How `http.client` opens the socket (`socket.create_connection` unless replaced).
    _create_connection: Callable[..., socket.socket]

    def connect_to(self, addresses: Sequence[str]) -> None:
        """Connect to the first of `addresses` that accepts, not to what the host's name
        resolves to now; the host header, TLS's server name and the certificate's check
        stay on the name (`http.client` wraps the socket with `server_hostname=self.host`)."""

        def open_checked(
            _host_port: Any, timeout: float | None, source: Any = None
        ) -> socket.socket:
            failed: OSError = socket.gaierror("no address")
            for address in addresses:
                try:
                    sock = socket.create_connection((address, self.port), timeout, source)
                except OSError as exc:
                    failed = exc
                    continue
                self.address = address
                return sock
            raise failed

        # Kept on the connection: were `http.client` to reconnect it by itself (it does
        # when a request finds no socket), it would still go to a checked address.
        self._create_connection = open_checked
        self.connect()

    def send(self, data: Any) -> None:
        # `http.client` writes a request's head and body with two calls: one is about 10 µs
        # of CPU less per delivery (measured on loopback), and one segment on the wire.
        if self.body:
            data, self.body = data + self.body, b""
        super().send(data)

    # `http.client` makes each answer with `self.response_class(self.sock, method=...)`: a
    # method here gives the answer a reader that knows this post's deadline.
    def response_class(  # type: ignore[override]
        self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: Any = None
    ) -> _Response:
        reader = _DeadlineReader(sock, self.read_timeout, self.deadline_at)
        response = _Response(sock, debuglevel, method=method, url=url)
        response.fp.close()  # the plain socket file `HTTPResponse` made, not read
        response.fp = io.BufferedReader(reader)
        return response


class _TimedTLS(_Timed, http.client.HTTPSConnection):
    pass


@dataclass
class _Idle:
    conn: _Timed
    since: float


class Poster:
    """Keep-alive connections by origin, shared by the sender's threads: a post takes an
    idle connection to its origin (or opens one) and puts it back after a whole answer
    that did not ask to close. Thread-safe; a connection is used by one post at a time."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        deadline: float,
        user_agent: str,
        excerpt_bytes: int = 1024,
        keepalive_expiry: float = 4.0,
        max_idle_per_origin: int = 16,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.user_agent = user_agent
        self.excerpt_bytes = excerpt_bytes
        # Shorter than the usual servers' idle timeout (5 s for uvicorn, node and many
        # proxies): a connection the server is about to close is not reused.
        self.keepalive_expiry = keepalive_expiry
        self.max_idle_per_origin = max_idle_per_origin
        self._idle: dict[Origin, list[_Idle]] = {}
        self._lock = threading.Lock()
        self._pruned = time.monotonic()
        self._ssl: ssl.SSLContext | None = None

    def post(
        self,
        url: str,
        body: bytes,
        headers: Iterable[tuple[str, str]],
        *,
        addresses: Sequence[str] | None = None,
    ) -> Answer:
        """POST `body` to `url` with `headers` (and content-length, host, user-agent);
        raises PostFailed when no answer came.

        With `addresses` (what the caller resolved the URL's host to and found public), a
        new connection goes to one of them, never to the name resolved a second time: a
        receiver's DNS could answer a public address to the check and a private one to the
        connection a moment later. An idle connection reused went to a checked address
        when it was opened; one opened by name (with nothing to check) is not reused then.
        Without `addresses`, the name is resolved when connecting."""
        origin, path = _target_of(url)
        started = time.monotonic()
        checked = addresses is not None
        conn = self._take(origin, checked) or self._connect(origin, addresses)
        conn.deadline_at = started + self.deadline
        response: http.client.HTTPResponse | None = None
        try:
            self._request(conn, path, body, headers)
            response = conn.getresponse()
            answer, whole = self._answer(response)
        except (PostFailed, http.client.HTTPException, OSError) as exc:
            if response is not None:
                response.close()
            conn.close()
            raise PostFailed(_failure(exc)) from None
        # A connection goes on only after a whole final answer that did not ask to close
        # (for one that did, `http.client` has let go of the socket already); otherwise
        # the rest of the answer is never read.
        if whole and conn.sock is not None and answer.status >= 200:
            self._give_back(origin, conn)
        else:
            response.close()
            conn.close()
        return answer

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for idle_conn in conns:
                idle_conn.conn.close()

    def _request(
        self, conn: _Timed, path: str, body: bytes, headers: Iterable[tuple[str, str]]
    ) -> None:
        # The request is only buffered until endheaders(): an invalid header sends nothing.
        try:
            conn.putrequest("POST", path)  # with host and accept-encoding: identity
            conn.putheader("user-agent", self.user_agent)
            conn.putheader("accept", "*/*")
            for name, value in headers:
                conn.putheader(name, value)
            conn.putheader("content-length", str(len(body)))
        except ValueError as exc:
            raise PostFailed(f"invalid request: {str(exc)[:200]}") from None
        left = conn.deadline_at - time.monotonic()
        conn.sock.settimeout(max(min(self.read_timeout, left), 0.001))
        conn.body = body
        conn.endheaders()

    def _answer(self, response: http.client.HTTPResponse) -> tuple[Answer, bool]:
        """The answer, and whether all of it was read."""
        try:
            excerpt = response.read(self.excerpt_bytes)
        except http.client.IncompleteRead as exc:  # a chunked body cut short
            excerpt = exc.partial[: self.excerpt_bytes]
        answer = Answer(response.status, response.headers.get("location"), excerpt)
        return answer, response.isclosed()

    # -- connections ---------------------------------------------------------------------

    def _take(self, origin: Origin, checked: bool) -> _Timed | None:
        now = time.monotonic()
        while True:
            with self._lock:
                conns = self._idle.get(origin)
                if not conns:
                    return None
                idle = conns.pop()  # the most recently used: the least likely to be closed
            fresh = now - idle.since < self.keepalive_expiry
            if (
                fresh
                and not (checked and idle.conn.address is None)
                and not _readable(idle.conn.sock)
            ):
                return idle.conn
            # Idle too long, or readable while idle: the server closed it (or sent junk);
            # or opened by name when the post must go to a checked address. Nothing was
            # sent on it yet: a fresh connection carries the post instead.
            idle.conn.close()

    def _give_back(self, origin: Origin, conn: _Timed) -> None:
        now = time.monotonic()
        expired: list[_Idle] = []
        with self._lock:
            if now - self._pruned > self.keepalive_expiry:
                # Now and then, the connections of receivers no longer sent to are closed:
                # the idle ones are those used in the last few seconds, not every endpoint's.
                self._pruned = now
                for key, conns in list(self._idle.items()):
                    expired += [c for c in conns if now - c.since >= self.keepalive_expiry]
                    conns[:] = [c for c in conns if now - c.since < self.keepalive_expiry]
                    if not conns:
                        del self._idle[key]
            conns = self._idle.setdefault(origin, [])
            kept = len(conns) < self.max_idle_per_origin
            if kept:
                conns.append(_Idle(conn, now))
        for idle in expired:
            idle.conn.close()
        if not kept:
            conn.close()

    def _connect(self, origin: Origin, addresses: Sequence[str] | None) -> _Timed:
        scheme, host, port = origin
        if addresses is not None and not addresses:
            raise PostFailed("cannot resolve host")
        conn: _Timed
        if scheme == "https":
            conn = _TimedTLS(host, port, timeout=self.connect_timeout, context=self._tls())
        else:
            conn = _Timed(host, port, timeout=self.connect_timeout)
        conn.read_timeout = self.read_timeout
        try:
            # The TLS handshake too, within the connect timeout.
            if addresses is None:
                conn.connect()
            else:
                conn.connect_to(addresses)
        except OSError as exc:
            conn.close()  # a TCP connection whose TLS handshake failed
            raise PostFailed(_cannot_connect(exc)) from None
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            import httpx

            # The same trust store as httpx's default (certifi), as the rest of Puente.
            self._ssl = httpx.create_ssl_context()
        return self._ssl


def _failure(exc: Exception) -> str:
    """What the delivery log shows of a post that got no answer."""
    if isinstance(exc, PostFailed):
        return str(exc)
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, http.client.HTTPException):
        return f"invalid answer: {type(exc).__name__} {str(exc)[:100]!r}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _cannot_connect(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "cannot resolve host"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect: {str(exc)[:200]}"  # TLS failures included


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: the server closed it."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)
