"""`GET/POST /webhooks/whatsapp`: Meta's verification handshake and the signed webhook
POST, stored raw before it is acknowledged (ARCHITECTURE.md decision 3).

The endpoint is a plain ASGI app in a Starlette route: this is Puente's hottest path,
and it needs no request object, dependency injection or validation beyond the signature.
"""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from puente import metrics
from puente.ingest.worker import EventWriter
from puente.runtime import Runtime
from puente.whatsapp.signature import SIGNATURE_HEADER, SignatureCheck

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/whatsapp"
_SIGNATURE = SIGNATURE_HEADER.encode()
_JSON = [(b"content-type", b"application/json")]


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = json.dumps({"error": {"code": code, "message": message}}).encode()


def _remote(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _respond(
    send: Send, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    start_headers = [*(headers or []), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


class WebhookEndpoint:
    def __init__(self, runtime: Runtime, writer: EventWriter) -> None:
        settings = runtime.settings
        self._verify_token = settings.meta_verify_token.get_secret_value().encode()
        self._signed = SignatureCheck(settings.meta_app_secret.get_secret_value().encode())
        self._limit = settings.max_webhook_bytes
        self._writer = writer
        self._metrics = metrics.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] == "POST":
                self._metrics.webhooks_received.inc()
                await self._receive(scope, receive)
                await _respond(send, 200)
            else:
                challenge = self._verify(scope)
                await _respond(send, 200, challenge, [(b"content-type", b"text/plain")])
        except _Refusal as refusal:
            self._metrics.webhooks_refused.labels(reason=refusal.code).inc()
            await _respond(send, refusal.status, refusal.body, _JSON)
        except _Disconnected:
            pass  # nobody is left to answer

    def _verify(self, scope: Scope) -> bytes:
        params = Request(scope).query_params

        def hub(name: str) -> str | None:
            # Meta sends `hub.mode`; some proxies and frameworks rewrite it as `hub_mode`.
            return params.get(f"hub.{name}", params.get(f"hub_{name}"))

        mode, challenge = hub("mode"), hub("challenge")
        token = (hub("verify_token") or "").encode()
        if (
            mode == "subscribe"
            and challenge is not None
            and self._verify_token
            and hmac.compare_digest(token, self._verify_token)
        ):
            return challenge.encode()
        log.warning("webhook verification refused for %s", _remote(scope))
        raise _Refusal(403, "verification_failed", "the verify token does not match")

    async def _receive(self, scope: Scope, receive: Receive) -> None:
        """Check, read and store one POST; raise _Refusal for anything but a stored event."""
        length: bytes | None = None
        signature: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == _SIGNATURE:
                signature = value
        if length is not None:
            if not length.isdigit():
                raise _Refusal(400, "bad_request", "invalid Content-Length")
            if int(length) > self._limit:
                raise self._too_large(scope)
        if not signature:
            log.warning("webhook without %s from %s", SIGNATURE_HEADER, _remote(scope))
            raise _Refusal(401, "missing_signature", f"the {SIGNATURE_HEADER} header is missing")
        body = await self._read(scope, receive)
        if not self._signed(body, signature):
            log.warning("webhook with a wrong signature from %s", _remote(scope))
            raise _Refusal(403, "invalid_signature", "the signature does not match the body")
        try:
            await self._writer.store(body)
        except Exception:
            # Not acknowledged, so Meta delivers it again later.
            raise _Refusal(
                503, "unavailable", "the event could not be stored; retry later"
            ) from None

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body; past the limit it stops reading and refuses."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise self._too_large(scope)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, scope: Scope) -> _Refusal:
        log.warning("webhook over %d bytes from %s refused", self._limit, _remote(scope))
        return _Refusal(
            413, "payload_too_large", f"webhook bodies are limited to {self._limit} bytes"
        )


class _Disconnected(Exception):
    """The client went away before its body arrived."""


def mount(app: FastAPI, runtime: Runtime, writer: EventWriter) -> None:
    """Register the webhook endpoint; `writer` (from app.install_workers) stores what it
    acknowledges."""
    endpoint = WebhookEndpoint(runtime, writer)
    # First in the route list: routes are matched in turn, and Meta's POSTs outnumber
    # every other request.
    app.router.routes.insert(0, Route(WEBHOOK_PATH, endpoint, methods=["GET", "POST"]))
