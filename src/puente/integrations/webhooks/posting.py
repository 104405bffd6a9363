"""The HTTP client outgoing webhooks send with: one POST of a JSON body over a keep-alive
HTTP/1.1 connection, and of the answer only the status, the `location` header and at most
a kilobyte of the body.

Why not httpx, as everything else does: a delivery is one small request, a thousand a
second when messages pour in, sent from threads of the process that also runs ingest. httpx
spent about 490 µs of CPU on each (its request and response models, h11's event machine,
cookie and URL handling, its pool's checks); this spends about 45, signing included
(measured against the same local receiver). aiohttp, which the Graph sends use
(`puente.whatsapp.http1`), wants an event loop, and the sender's lanes are threads.

What it does not do, on purpose: follow redirects (one is a failure the delivery log
shows), decompress (it asks for none), read a big answer (the connection is dropped
instead), send a request twice (a connection that fails once the request was written is a
failed try, retried later with the same webhook-id, never resent here)."""

from __future__ import annotations

import functools
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

MAX_HEAD = 64 * 1024  # an answer's status line and headers
_NO_BODY = frozenset({204, 304})


class PostFailed(Exception):
    """No answer; the message is what the delivery log shows."""


@dataclass(frozen=True)
class Answer:
    status: int
    location: str | None
    excerpt: bytes  # the first bytes of the body, at most the poster's `excerpt_bytes`


@dataclass(frozen=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port: what a connection can be reused for
    host_header: str
    path: str

    @property
    def https(self) -> bool:
        return self.origin[0] == "https"


@functools.lru_cache(maxsize=1024)
def _target_of(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostFailed(f"not an http(s) URL: {url[:200]}")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except (UnicodeError, ValueError) as exc:
        raise PostFailed(f"invalid URL: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != (443 if parts.scheme == "https" else 80):
        shown = f"{shown}:{parts.port}"
    # As a browser would send it: what is already escaped stays, the rest is escaped.
    path = quote(parts.path or "/", safe="/%!$&'()*+,;=:@-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/?%!$&'()*+,;=:@-._~")
    return _Target((parts.scheme, host, port), shown, path)


@dataclass
class _Idle:
    sock: socket.socket
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
        self.excerpt_bytes = excerpt_bytes
        # Shorter than the usual servers' idle timeout (5 s for uvicorn, node and many
        # proxies): a connection the server is about to close is not reused.
        self.keepalive_expiry = keepalive_expiry
        self.max_idle_per_origin = max_idle_per_origin
        self._head = f"user-agent: {user_agent}\r\naccept: */*\r\naccept-encoding: identity\r\n"
        self._idle: dict[tuple[str, str, int], list[_Idle]] = {}
        self._lock = threading.Lock()
        self._pruned = time.monotonic()
        self._ssl: ssl.SSLContext | None = None

    def post(self, url: str, body: bytes, headers: Iterable[tuple[str, str]]) -> Answer:
        """POST `body` to `url` with `headers` (and content-length, host, user-agent);
        raises PostFailed when no answer came."""
        target = _target_of(url)
        lines = [f"POST {target.path} HTTP/1.1\r\nhost: {target.host_header}\r\n", self._head]
        for name, value in headers:
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise PostFailed(f"invalid header {name!r}")
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"content-length: {len(body)}\r\n\r\n")
        request = "".join(lines).encode("latin-1") + body
        started = time.monotonic()
        sock = self._take(target.origin) or self._connect(target)
        try:
            sock.settimeout(self.read_timeout)
            sock.sendall(request)
            answer, reusable = self._answer(sock, started)
        except PostFailed:
            sock.close()
            raise
        except TimeoutError:
            sock.close()
            raise PostFailed("timeout") from None
        except OSError as exc:
            sock.close()
            raise PostFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if reusable:
            self._give_back(target.origin, sock)
        else:
            sock.close()
        return answer

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.sock.close()

    # -- connections ---------------------------------------------------------------------

    def _take(self, origin: tuple[str, str, int]) -> socket.socket | None:
        now = time.monotonic()
        while True:
            with self._lock:
                conns = self._idle.get(origin)
                if not conns:
                    return None
                conn = conns.pop()  # the most recently used: the least likely to be closed
            if now - conn.since < self.keepalive_expiry and not _readable(conn.sock):
                return conn.sock
            # Idle too long, or readable while idle: the server closed it (or sent junk).
            conn.sock.close()

    def _give_back(self, origin: tuple[str, str, int], sock: socket.socket) -> None:
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
                conns.append(_Idle(sock, now))
        for conn in expired:
            conn.sock.close()
        if not kept:
            sock.close()

    def _connect(self, target: _Target) -> socket.socket:
        _scheme, host, port = target.origin
        try:
            sock = socket.create_connection((host, port), timeout=self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.https:
                sock = self._tls().wrap_socket(sock, server_hostname=host)
        except socket.gaierror:
            raise PostFailed("cannot resolve host") from None
        except TimeoutError:
            raise PostFailed("timeout") from None
        except ConnectionRefusedError:
            raise PostFailed("connection refused") from None
        except OSError as exc:  # TLS failures included
            raise PostFailed(f"cannot connect: {str(exc)[:200]}") from None
        return sock

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            import httpx

            # The same trust store as httpx's default (certifi), as the rest of Puente.
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    # -- the answer ----------------------------------------------------------------------

    def _answer(self, sock: socket.socket, started: float) -> tuple[Answer, bool]:
        """The answer, and whether the connection may carry another request."""
        buf = bytearray()
        while True:  # interim answers (100 Continue, 103 Early Hints) are skipped
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                if len(buf) > MAX_HEAD:
                    raise PostFailed("invalid answer: headers too long")
                # The whole head within the deadline, however slowly it drips.
                left = started + self.deadline - time.monotonic()
                if left <= 0:
                    raise PostFailed("timeout")
                sock.settimeout(min(self.read_timeout, left))
                chunk = sock.recv(65536)
                if not chunk:
                    raise PostFailed("the server closed the connection without an answer")
                buf += chunk
                end = buf.find(b"\r\n\r\n")
            status, version, fields = _head_of(bytes(buf[:end]))
            del buf[: end + 4]
            if 100 <= status < 200 and status != 101:
                continue
            break
        keep = version == "HTTP/1.1" and "close" not in fields.get("connection", "").lower()
        location = fields.get("location")
        sock.settimeout(self.read_timeout)
        if status in _NO_BODY or status < 200:
            return Answer(status, location, b""), keep and status != 101
        if "transfer-encoding" in fields:
            if fields["transfer-encoding"].lower().rstrip().endswith("chunked"):
                excerpt, whole = self._chunked(sock, buf, started)
                return Answer(status, location, excerpt), keep and whole
            return Answer(status, location, self._until_close(sock, buf, started)), False
        if "content-length" in fields:
            try:
                length = int(fields["content-length"].split(",")[0])
            except ValueError:
                raise PostFailed("invalid answer: bad content-length") from None
            excerpt, whole = self._sized(sock, buf, length, started)
            return Answer(status, location, excerpt), keep and whole
        return Answer(status, location, self._until_close(sock, buf, started)), False

    def _more(self, sock: socket.socket, buf: bytearray, started: float) -> bool:
        """Read more of the body into `buf`; False at the end of the stream or once the
        deadline is past (the rest is never read: the connection is dropped)."""
        if time.monotonic() - started > self.deadline:
            return False
        chunk = sock.recv(65536)
        buf += chunk
        return bool(chunk)

    def _sized(
        self, sock: socket.socket, buf: bytearray, length: int, started: float
    ) -> tuple[bytes, bool]:
        want = min(length, self.excerpt_bytes)
        while len(buf) < want:
            if not self._more(sock, buf, started):
                return bytes(buf[:want]), False
        # Reusable only when the whole body came and nothing after it.
        return bytes(buf[:want]), len(buf) == length

    def _until_close(self, sock: socket.socket, buf: bytearray, started: float) -> bytes:
        while len(buf) < self.excerpt_bytes and self._more(sock, buf, started):
            pass
        return bytes(buf[: self.excerpt_bytes])

    def _chunked(self, sock: socket.socket, buf: bytearray, started: float) -> tuple[bytes, bool]:
        body = bytearray()

        def line() -> bytes | None:
            while (end := buf.find(b"\r\n")) < 0:
                if len(buf) > MAX_HEAD or not self._more(sock, buf, started):
                    return None
            found = bytes(buf[:end])
            del buf[: end + 2]
            return found

        while len(body) < self.excerpt_bytes:
            size_line = line()
            try:
                size = int((size_line or b"").split(b";")[0].strip(), 16)
            except ValueError:
                break
            if size == 0:
                while trailer := line():  # trailers, up to the blank line
                    pass
                return bytes(body), trailer == b"" and not buf
            while len(buf) < size + 2:
                if len(body) + len(buf) >= self.excerpt_bytes or not self._more(sock, buf, started):
                    body += buf
                    return bytes(body[: self.excerpt_bytes]), False
            body += buf[:size]
            del buf[: size + 2]
        return bytes(body[: self.excerpt_bytes]), False


def _head_of(head: bytes) -> tuple[int, str, dict[str, str]]:
    """The status, the HTTP version and the headers (lower-case names; a repeated one keeps
    its first value) of an answer's head."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise PostFailed(f"invalid answer: {lines[0][:100]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise PostFailed(f"invalid answer: header line {line[:100]!r}")
        fields.setdefault(name.strip().lower(), value.strip())
    return int(code), version, fields


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: the server closed it."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)
