"""A small Meta-shaped Graph API server for tests, served over real HTTP.

It records every request (with the time it arrived) and answers with Meta's shapes and
error bodies. Tests script failures (`fail_next`), hold a send open (`hold_sends`) to
simulate a worker dying between Meta's answer and the local commit, and read back what
was "sent". It stands in for Meta; it is not a mock of Puente's client.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "test-graph-token"


@dataclass
class Recorded:
    at: float  # time.monotonic() on arrival
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class Failure:
    http_status: int
    code: int
    message: str
    subcode: int | None = None
    details: str | None = None
    to: str | None = None  # only for this recipient (digits), else any send


def meta_error(code: int, message: str, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEf123",
    }
    if extra.get("subcode") is not None:
        err["error_subcode"] = extra["subcode"]
    if extra.get("details"):
        err["error_data"] = {"messaging_product": "whatsapp", "details": extra["details"]}
    return {"error": err}


@dataclass
class FakeGraph:
    phone_numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    expired_media: set[str] = field(default_factory=set)
    templates: list[dict[str, Any]] = field(default_factory=list)
    # Recipients whose 24 h window is closed: non-template sends get 131047.
    closed_windows: set[str] = field(default_factory=set)
    # While set, accepted sends are recorded but their answer waits for release_sends().
    holding: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    require_token: str = TOKEN
    base_url: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests call ----------------------------------------------------------------

    def fail_next(
        self,
        code: int,
        *,
        times: int = 1,
        http_status: int = 400,
        message: str = "(#error) failure",
        details: str | None = None,
        to: str | None = None,
        subcode: int | None = None,
    ) -> None:
        for _ in range(times):
            self.failures.append(Failure(http_status, code, message, subcode, details, to))

    def hold_sends(self) -> None:
        self.released.clear()
        self.holding.set()

    def release_sends(self) -> None:
        self.holding.clear()
        self.released.set()

    def sends(self) -> list[Recorded]:
        """Accepted message sends (not reads), in arrival order."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "POST"
                and r.path.endswith("/messages")
                and isinstance(r.body, dict)
                and "type" in r.body
                and r.body.get("accepted")
            ]

    def accepted(self) -> list[dict[str, Any]]:
        return [r.body for r in self.sends()]

    # -- the app ------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/files/{media_id}", self.download, methods=["GET"]),
                Route("/{ver}/oauth/access_token", self.oauth, methods=["GET"]),
                Route("/{ver}/{node}/messages", self.messages, methods=["POST"]),
                Route("/{ver}/{node}/media", self.upload, methods=["POST"]),
                Route(
                    "/{ver}/{node}/message_templates",
                    self.message_templates,
                    methods=["GET", "POST", "DELETE"],
                ),
                Route("/{ver}/{node}/phone_numbers", self.phone_numbers_of, methods=["GET"]),
                Route("/{ver}/{node}/subscribed_apps", self.subscribed, methods=["GET", "POST"]),
                Route("/{ver}/{node}/smb_app_data", self.smb_app_data, methods=["POST"]),
                Route("/{ver}/{node}", self.node, methods=["GET", "DELETE"]),
            ]
        )

    async def _record(self, request: Request) -> Recorded:
        body: Any = None
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            body = await request.json()
        elif content_type.startswith("multipart/"):
            form = await request.form()
            body = {
                k: (await v.read(), v.content_type) if hasattr(v, "read") else v
                for k, v in form.items()
            }
        rec = Recorded(
            time.monotonic(), request.method, request.url.path, body, dict(request.headers)
        )
        with self._lock:
            self.requests.append(rec)
        return rec

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.require_token}"

    @staticmethod
    def _unauthorised() -> JSONResponse:
        return JSONResponse(
            meta_error(190, "Error validating access token: Session has expired", subcode=463),
            status_code=401,
        )

    def _take_failure(self, to: str) -> Failure | None:
        with self._lock:
            for i, failure in enumerate(self.failures):
                if failure.to is None or failure.to == to:
                    return self.failures.pop(i)
        return None

    async def messages(self, request: Request) -> Response:
        rec = await self._record(request)
        if not self._authorised(request):
            return self._unauthorised()
        body = rec.body if isinstance(rec.body, dict) else {}
        if body.get("status") == "read":
            return JSONResponse({"success": True})
        to = str(body.get("to", "")).lstrip("+")
        failure = self._take_failure(to)
        if failure is not None:
            return JSONResponse(
                meta_error(
                    failure.code,
                    failure.message,
                    subcode=failure.subcode,
                    details=failure.details,
                ),
                status_code=failure.http_status,
            )
        if to in self.closed_windows and body.get("type") != "template":
            return JSONResponse(
                meta_error(
                    131047,
                    "Re-engagement message",
                    details="Message failed to send because more than 24 hours have passed "
                    "since the customer last replied to this number.",
                ),
                status_code=400,
            )
        wamid = f"wamid.FAKE{next(self._ids):06d}"
        body["accepted"] = wamid
        while self.holding.is_set() and not self.released.is_set():
            await asyncio.sleep(0.01)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body.get("to"), "wa_id": to}],
                "messages": [{"id": wamid}],
            }
        )

    async def upload(self, request: Request) -> Response:
        rec = await self._record(request)
        if not self._authorised(request):
            return self._unauthorised()
        form = rec.body or {}
        if form.get("messaging_product") != "whatsapp" or "file" not in form:
            return JSONResponse(meta_error(100, "Invalid parameter"), status_code=400)
        content, mime = form["file"]
        media_id = f"{9000 + next(self._ids)}"
        self.media[media_id] = (content, mime)
        return JSONResponse({"id": media_id})

    async def node(self, request: Request) -> Response:
        await self._record(request)
        if not self._authorised(request):
            return self._unauthorised()
        node = request.path_params["node"]
        if node in self.media:
            if request.method == "DELETE":
                del self.media[node]
                return JSONResponse({"success": True})
            content, mime = self.media[node]
            return JSONResponse(
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.base_url}/files/{node}",
                    "mime_type": mime,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "file_size": len(content),
                    "id": node,
                }
            )
        if node in self.phone_numbers:
            info = {"id": node, **self.phone_numbers[node]}
            fields = request.query_params.get("fields")
            if fields:
                info = {k: v for k, v in info.items() if k in {"id", *fields.split(",")}}
            return JSONResponse(info)
        return JSONResponse(
            meta_error(
                100,
                f"Unsupported get request. Object with ID '{node}' does not exist",
                subcode=33,
            ),
            status_code=400,
        )

    async def download(self, request: Request) -> Response:
        await self._record(request)
        if not self._authorised(request):
            return self._unauthorised()
        media_id = request.path_params["media_id"]
        if media_id in self.expired_media or media_id not in self.media:
            return Response("Not Found", status_code=404)
        content, mime = self.media[media_id]
        return Response(content, media_type=mime)

    async def message_templates(self, request: Request) -> Response:
        rec = await self._record(request)
        if not self._authorised(request):
            return self._unauthorised()
        if request.method == "POST":
            body = rec.body or {}
            template_id = f"{70000 + next(self._ids)}"
            self.templates.append({"id": template_id, "status": "PENDING", **body})
            return JSONResponse(
                {"id": template_id, "status": "PENDING", "category": body.get("category")}
            )
        if request.method == "DELETE":
            name = request.query_params.get("name")
            before = len(self.templates)
            self.templates = [t for t in self.templates if t.get("name") != name]
            if len(self.templates) == before:
                return JSONResponse(
                    meta_error(100, "Invalid parameter", subcode=2593002), status_code=400
                )
            return JSONResponse({"success": True})
        limit = int(request.query_params.get("limit", "25"))
        start = int(request.query_params.get("after", "0") or 0)
        page = self.templates[start : start + limit]
        paging: dict[str, Any] = {"cursors": {"before": str(start), "after": str(start + limit)}}
        if start + limit < len(self.templates):
            paging["next"] = f"{self.base_url}{request.url.path}?after={start + limit}"
        return JSONResponse({"data": page, "paging": paging})

    async def phone_numbers_of(self, request: Request) -> Response:
        await self._record(request)
        if not self._authorised(request):
            return self._unauthorised()
        data = [{"id": k, **v} for k, v in self.phone_numbers.items()]
        return JSONResponse({"data": data, "paging": {"cursors": {"before": "", "after": ""}}})

    async def subscribed(self, request: Request) -> Response:
        await self._record(request)
        if not self._authorised(request):
            return self._unauthorised()
        if request.method == "GET":
            return JSONResponse({"data": [{"whatsapp_business_api_data": {"id": "1"}}]})
        return JSONResponse({"success": True})

    async def smb_app_data(self, request: Request) -> Response:
        rec = await self._record(request)
        if not self._authorised(request):
            return self._unauthorised()
        return JSONResponse(
            {"messaging_product": "whatsapp", "request_id": f"req-{rec.body.get('sync_type')}"}
        )

    async def oauth(self, request: Request) -> Response:
        await self._record(request)
        if request.query_params.get("code") != "good-code":
            return JSONResponse(
                meta_error(100, "This authorization code has expired.", subcode=36007),
                status_code=400,
            )
        return JSONResponse({"access_token": "EAAG-business-token", "token_type": "bearer"})


def serve(live_server_factory: Any, **kwargs: Any) -> FakeGraph:
    """Start a FakeGraph on a free port; `live_server_factory` stops it after the test."""
    graph = FakeGraph(**kwargs)
    server = live_server_factory(graph.app()).start()
    graph.base_url = server.url
    return graph
