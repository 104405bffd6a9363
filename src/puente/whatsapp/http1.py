"""A small HTTP/1.1 keep-alive client for the Graph calls that run hundreds of times a
second (message sends): one JSON POST, one answer, on plain asyncio streams.

httpx spends about 1.5 ms of CPU per request on this kind of call (its request and
response models, and a connection pool that checks every pooled connection for every
request, which grows with the pool), which caps a lane near a few hundred sends a second
on one core. This pool hands out idle connections in O(1) and writes each request in one
buffer. It speaks only what the Graph API answers: status line, headers, a body by
Content-Length, chunked, or up to the close; no redirects, no compression, no proxies
(`GraphClient` keeps httpx for those).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.parse
from dataclasses import dataclass

import httpx


class ConnectFailed(Exception):
    """No connection: the request was never written."""

    def __init__(self, message: str, *, timeout: bool) -> None:
        super().__init__(message)
        self.timeout = timeout


class RequestFailed(Exception):
    """The request was written (it may have reached the server) but no whole answer came."""

    def __init__(self, message: str, *, timeout: bool) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def reusable(self, now: float, expiry: float) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and now - self.idle_since < expiry
        )

    def close(self) -> None:
        self.writer.close()


class KeepAlivePool:
    """Up to `max_connections` keep-alive connections to one origin."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        timeout: float,
        connect_timeout: float,
        keepalive_expiry: float = 5.0,
        user_agent: str = "Puente/1.0",
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        default_port = self.port == (443 if url.scheme == "https" else 80)
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.prefix = url.path.rstrip("/")
        # The same trust store as httpx's default (certifi), so both clients accept the
        # same servers.
        self._ssl: ssl.SSLContext | None = (
            httpx.create_ssl_context() if url.scheme == "https" else None
        )
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.keepalive_expiry = keepalive_expiry
        self._fixed_headers = (
            f"Host: {host_header}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n"
            "Accept-Encoding: identity\r\n"
        ).encode("latin-1")
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max(1, max_connections))

    async def post_json(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body` (JSON) to `path` under the base URL and read the whole answer."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = (
            f"POST {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1")
            + self._fixed_headers
            + (
                f"{extra}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode("latin-1")
        )
        async with self._slots:
            conn = await self._connection()
            keep = False
            try:
                conn.writer.write(head + body)
                try:
                    async with asyncio.timeout(self.timeout):
                        answer, keep = await _read_answer(conn.reader)
                except TimeoutError as exc:
                    raise RequestFailed("the server did not answer in time", timeout=True) from exc
                except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
                    raise RequestFailed(
                        f"the connection failed before a whole answer: {exc!r}", timeout=False
                    ) from exc
                except asyncio.LimitOverrunError as exc:
                    raise RequestFailed("the answer's headers are too long", timeout=False) from exc
            finally:
                if keep:
                    conn.idle_since = time.monotonic()
                    self._idle.append(conn)
                else:
                    conn.close()
        return answer

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the least likely to be stale
            if conn.reusable(now, self.keepalive_expiry):
                return conn
            conn.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )
        except TimeoutError as exc:
            raise ConnectFailed("connecting timed out", timeout=True) from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect: {exc}", timeout=False) from exc
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    """One response; also whether the connection may carry another request."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status = int(rest[:3])
        if status >= 200 or status == 101:
            break  # 1xx interim answers (100 Continue) come before the real one
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif status in (204, 304):
        body = b""
    else:
        body = await reader.read()  # delimited by the close
        keep = False
    return Answer(status, headers, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk without its CRLF")
