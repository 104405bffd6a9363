"""The keep-alive pool for the Graph calls that run hundreds of times a second (message
sends): one JSON POST, one answer, on aiohttp.

httpx spends about 1.5 ms of CPU per request on this kind of call (its request and
response models, and a connection pool that checks every pooled connection for every
request, which grows with the pool), which caps a lane near a few hundred sends a second
on one core. aiohttp parses HTTP in C and hands out idle connections from a deque. Only
this one call goes through it; `GraphClient` keeps httpx for everything else (and for
proxies and test transports).

What matters to the outbox is whether a failed request may have reached Meta: a failure
to connect means it was never written (`ConnectFailed`); anything after that may have
(`RequestFailed`), so the send is reconciled from its status webhook, never repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from dataclasses import dataclass

import aiohttp
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


class KeepAlivePool:
    """Up to `max_connections` keep-alive connections to one origin.

    The aiohttp session is made on first use, in the event loop that uses it (the lane's
    or a synchronous caller's), and made again if a later call runs in another loop.
    """

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
        self.origin = f"{url.scheme}://{url.netloc}"
        self.prefix = url.path.rstrip("/")
        self.https = url.scheme == "https"
        self.max_connections = max(1, max_connections)
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, connect=connect_timeout, sock_read=timeout
        )
        self.keepalive_expiry = keepalive_expiry
        self.headers = {"User-Agent": user_agent, "Accept-Encoding": "identity"}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                keepalive_timeout=self.keepalive_expiry,
                # The same trust store as httpx's default (certifi), so both clients
                # accept the same servers.
                ssl=httpx.create_ssl_context() if self.https else False,
            )
            self._session = aiohttp.ClientSession(
                base_url=self.origin,
                connector=connector,
                timeout=self.timeout,
                headers=self.headers,
                auto_decompress=False,
                skip_auto_headers=("Content-Type",),
            )
            self._loop = loop
        return self._session

    async def post_json(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body` (JSON) to `path` under the base URL and read the whole answer."""
        try:
            async with self._client().post(
                self.prefix + path,
                data=body,
                headers={**headers, "Content-Type": "application/json"},
                allow_redirects=False,
            ) as response:
                payload = await response.read()
                return Answer(
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                    payload,
                )
        except aiohttp.ConnectionTimeoutError as exc:
            raise ConnectFailed("connecting timed out", timeout=True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(f"cannot connect: {exc}", timeout=False) from exc
        except TimeoutError as exc:
            raise RequestFailed("the server did not answer in time", timeout=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise RequestFailed(
                f"the connection failed before a whole answer: {exc!r}", timeout=False
            ) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            # Made in an event loop that is gone: its sockets went with it.
            with contextlib.suppress(RuntimeError):
                await session.close()
