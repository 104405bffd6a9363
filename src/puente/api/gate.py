"""The API's door: a request that carries a body shows a live token before a byte of
the body is read, and the body is refused past `max_api_body_bytes`.

FastAPI reads and parses a JSON body before it runs a route's dependencies (where the
token is checked), so without this anyone could make the server hold any amount of data
for as long as it took to send, then answer 401.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from puente.accounts.tokens import access_token
from puente.db.session import Database
from puente.errors import NotAuthenticated, PuenteError

_WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


class PayloadTooLarge(PuenteError):
    status_code = 413
    code = "payload_too_large"


class ApiGate:
    def __init__(self, app: ASGIApp, *, db: Database, max_body: int) -> None:
        self.app = app
        self.db = db
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _WITHOUT_BODY:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._refuse(scope, receive, send, self._too_large())
            return
        problem = await anyio.to_thread.run_sync(self._token_problem, headers)
        if problem is not None:
            await self._refuse(scope, receive, send, problem)
            return
        # A body without a length (chunked) is counted as it arrives, then replayed.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nothing to answer, nothing to run
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._refuse(scope, receive, send, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _token_problem(self, headers: Headers) -> PuenteError | None:
        scheme, _, secret = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return NotAuthenticated("send an API token as 'Authorization: Bearer <token>'")
        with self.db.read(unscoped="finding whose API token this is") as session:
            if access_token(session, secret.strip()) is None:
                return NotAuthenticated(
                    "this API token is unknown or revoked", code="invalid_token"
                )
        return None

    def _too_large(self) -> PuenteError:
        return PayloadTooLarge(f"request bodies are limited to {self.max_body} bytes")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: PuenteError) -> None:
        # Closing the connection tells the client to stop sending what we will not read.
        response = JSONResponse(
            exc.to_json(), status_code=exc.status_code, headers={"connection": "close"}
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
