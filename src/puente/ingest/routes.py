"""`GET/POST /webhooks/whatsapp`: Meta's verification handshake and the signed webhook
POST, stored raw before it is acknowledged (ARCHITECTURE.md decision 3).

Plain Starlette routes: this is the hottest path in Puente and needs no dependency
injection or validation beyond the signature.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from puente.ingest.worker import EventWriter, install
from puente.runtime import Runtime
from puente.whatsapp.signature import SIGNATURE_HEADER, verify_signature

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/whatsapp"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _query(request: Request, name: str) -> str | None:
    # Meta sends `hub.mode`; proxies and frameworks sometimes rewrite it as `hub_mode`.
    params = request.query_params
    return params.get(f"hub.{name}", params.get(f"hub_{name}"))


def _remote(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class WebhookEndpoint:
    def __init__(self, runtime: Runtime, writer: EventWriter) -> None:
        settings = runtime.settings
        self._verify_token = settings.meta_verify_token.get_secret_value().encode()
        self._app_secret = settings.meta_app_secret.get_secret_value().encode()
        self._limit = settings.max_webhook_bytes
        self._writer = writer

    async def verify(self, request: Request) -> Response:
        mode = _query(request, "mode")
        token = (_query(request, "verify_token") or "").encode()
        challenge = _query(request, "challenge")
        if (
            mode == "subscribe"
            and challenge is not None
            and self._verify_token
            and hmac.compare_digest(token, self._verify_token)
        ):
            return PlainTextResponse(challenge)
        log.warning("webhook verification refused for %s", _remote(request))
        return _error(403, "verification_failed", "the verify token does not match")

    async def receive(self, request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self._limit):
            if not length.isdigit():
                return _error(400, "bad_request", "invalid Content-Length")
            return self._too_large(request)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            log.warning("webhook without %s from %s", SIGNATURE_HEADER, _remote(request))
            return _error(401, "missing_signature", f"the {SIGNATURE_HEADER} header is missing")
        try:
            body = await self._read(request)
        except ClientDisconnect:
            return Response(status_code=400)
        if body is None:
            return self._too_large(request)
        if not verify_signature(self._app_secret, body, signature):
            log.warning("webhook with a wrong signature from %s", _remote(request))
            return _error(403, "invalid_signature", "the signature does not match the body")
        try:
            await self._writer.store(body)
        except Exception:
            # Not acknowledged, so Meta delivers it again later.
            return _error(503, "unavailable", "the event could not be stored; retry later")
        return Response(status_code=200)

    async def _read(self, request: Request) -> bytes | None:
        """The body, or None once it passes the limit (without reading the rest)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, request: Request) -> JSONResponse:
        log.warning("webhook over %d bytes from %s refused", self._limit, _remote(request))
        return _error(
            413, "payload_too_large", f"webhook bodies are limited to {self._limit} bytes"
        )


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Register the webhook endpoint and the ingest workers."""
    endpoint = WebhookEndpoint(runtime, install(runtime))
    app.add_route(WEBHOOK_PATH, endpoint.verify, methods=["GET"], include_in_schema=False)
    app.add_route(WEBHOOK_PATH, endpoint.receive, methods=["POST"], include_in_schema=False)
