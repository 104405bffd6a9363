"""An async client for the parts of Meta's Graph API that Puente uses (protocol §5, §7–§9).

One `httpx.AsyncClient` per `GraphClient`, plus a lighter keep-alive pool for message sends
(`puente.whatsapp.http1`); the base URL is configurable so the same client talks to Meta
or to the sandbox. Unsuccessful answers raise `puente.whatsapp.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import re
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from puente.whatsapp.errors import (
    BadMediaId,
    GraphError,
    GraphTimeout,
    GraphTransportError,
    MediaRedirected,
    MediaTooLarge,
    MediaUrlExpired,
    UntrustedMediaLink,
    parse_graph_error,
)
from puente.whatsapp.http1 import Answer, ConnectFailed, KeepAlivePool, RequestFailed

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v23.0"
# Where Meta serves media downloads (the URL `GET /{media-id}` answers, and the `url` of
# a webhook's media object). With the Graph host itself, the only hosts a number's token
# is ever sent to when downloading.
META_MEDIA_HOSTS = frozenset({"lookaside.fbsbx.com"})
# Meta's media ids are decimal numbers; anything else is refused before it can become a
# path segment ("../../etc/passwd") or a query ("x?access_token=1#") of a Graph request.
_MEDIA_ID = re.compile(r"[0-9]{1,40}")


# Meta's access tokens are long runs of letters and digits; the sandbox's and tests' use
# hyphens too. Nothing else may go into an Authorization header: a non-ASCII character
# made httpx raise for a whole batch, and CR/LF would split the header.
_ACCESS_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{8,4096}")


def is_access_token(value: str) -> bool:
    return bool(_ACCESS_TOKEN.fullmatch(value))


def check_media_id(media_id: str) -> str:
    if not _MEDIA_ID.fullmatch(media_id):
        raise BadMediaId(f"not a Meta media id: {media_id[:40]!r}")
    return media_id


T = TypeVar("T")


class GraphModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class SendResult(GraphModel):
    wamid: str
    # Only present for paced templates; Meta's documented values are unconfirmed.
    message_status: str | None = None
    wa_id: str | None = None
    input: str | None = None


class MediaInfo(GraphModel):
    url: str
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | None = None
    id: str | None = None


class TemplateInfo(GraphModel):
    id: str
    name: str
    language: str | None = None
    status: str | None = None
    category: str | None = None
    parameter_format: str | None = None
    components: list[dict[str, Any]] = Field(default_factory=list)


# Meta lists a template's default fields only (no rejection reason or quality), so the ones
# the sync reads are asked for by name.
TEMPLATE_FIELDS = (
    "id,name,language,status,category,parameter_format,components,rejected_reason,quality_score"
)


class TemplatePage(GraphModel):
    templates: list[TemplateInfo]
    after: str | None = None  # cursor for the next page, None on the last one


class TemplateCreated(GraphModel):
    id: str
    status: str | None = None
    category: str | None = None


class PhoneNumberInfo(GraphModel):
    id: str
    display_phone_number: str | None = None
    verified_name: str | None = None
    quality_rating: str | None = None
    is_on_biz_app: bool | None = None
    platform_type: str | None = None
    throughput: dict[str, Any] | None = None


class TokenResult(GraphModel):
    access_token: str
    token_type: str | None = None
    expires_in: int | None = None


def _media_origins(base_url: str) -> set[tuple[str, str, int | None]]:
    parts = urllib.parse.urlsplit(base_url)
    return {(parts.scheme, parts.hostname or "", parts.port)}


class GraphClient:
    """Graph API calls with one access token (a channel's business token)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        access_token: str = "",
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version.strip("/")
        self._token = access_token
        self._media_origins = _media_origins(self.base_url)
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            headers={"User-Agent": "Puente/1.0"},
            limits=limits,
        )
        # Message sends (the outbox's hot path) go through a lighter keep-alive pool,
        # unless a test transport or a proxy needs httpx's own machinery.
        self._sends: KeepAlivePool | None = None
        if transport is None and not _through_proxy(self.base_url):
            with contextlib.suppress(ValueError):  # not a plain http(s) URL: httpx copes
                self._sends = KeepAlivePool(
                    self.base_url,
                    max_connections=limits.max_connections or 100,
                    timeout=timeout,
                    connect_timeout=min(timeout, 10.0),
                    keepalive_expiry=limits.keepalive_expiry or 5.0,
                )

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._sends is not None:
            await self._sends.aclose()
        await self._http.aclose()

    def url(self, path: str) -> str:
        return f"{self.base_url}/{self.api_version}/{path.lstrip('/')}"

    # -- plumbing -----------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def _request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: Any = None,
        auth: bool = True,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                url,
                json=json,
                params=params,
                data=data,
                files=files,
                headers=self._auth() if auth else None,
            )
        except httpx.ConnectTimeout as exc:
            raise GraphTimeout(
                f"connecting to the Graph API timed out: {exc}", request_sent=False
            ) from exc
        except httpx.TimeoutException as exc:
            raise GraphTimeout(
                f"the Graph API did not answer in time: {exc}", request_sent=True
            ) from exc
        except httpx.ConnectError as exc:
            raise GraphTransportError(
                f"cannot connect to the Graph API: {exc}", request_sent=False
            ) from exc
        except httpx.TransportError as exc:
            raise GraphTransportError(
                f"the connection to the Graph API failed: {exc}", request_sent=True
            ) from exc

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: Any = None,
        auth: bool = True,
    ) -> dict[str, Any]:
        response = await self._request(
            method, self.url(path), json=json, params=params, data=data, files=files, auth=auth
        )
        return _json_or_raise(response)

    # -- messages -----------------------------------------------------------------------

    async def _post_messages(
        self, phone_number_id: str, payload: dict[str, Any] | bytes
    ) -> dict[str, Any]:
        path = f"{phone_number_id}/messages"
        if self._sends is None:
            if isinstance(payload, bytes):
                payload = jsonlib.loads(payload)
            return await self._call("POST", path, json=payload)
        if isinstance(payload, bytes):
            content = payload
        else:
            content = jsonlib.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            answer = await self._sends.post_json(
                f"/{self.api_version}/{path}", content, self._auth()
            )
        except ConnectFailed as exc:
            cls = GraphTimeout if exc.timeout else GraphTransportError
            raise cls(f"cannot connect to the Graph API: {exc}", request_sent=False) from exc
        except RequestFailed as exc:
            if exc.timeout:
                raise GraphTimeout(
                    f"the Graph API did not answer in time: {exc}", request_sent=True
                ) from exc
            raise GraphTransportError(
                f"the connection to the Graph API failed: {exc}", request_sent=True
            ) from exc
        return _answer_json_or_raise(answer)

    async def send_message(
        self, phone_number_id: str, payload: dict[str, Any] | bytes
    ) -> SendResult:
        """POST /{phone_number_id}/messages with a body built by `puente.whatsapp.send`
        (or that body already encoded as JSON)."""
        body = await self._post_messages(phone_number_id, payload)
        messages = body.get("messages") or []
        if not messages or not isinstance(messages[0], dict) or not messages[0].get("id"):
            raise GraphError("the Graph API accepted the message but returned no message id")
        contacts = body.get("contacts") or [{}]
        first_contact = contacts[0] if isinstance(contacts[0], dict) else {}
        return SendResult(
            wamid=str(messages[0]["id"]),
            message_status=messages[0].get("message_status"),
            wa_id=first_contact.get("wa_id"),
            input=first_contact.get("input"),
        )

    async def mark_read(self, phone_number_id: str, wamid: str, *, typing: bool = False) -> bool:
        """Mark `wamid` (and the messages before it) read; optionally show "typing…"."""
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
        }
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        body = await self._post_messages(phone_number_id, payload)
        return bool(body.get("success"))

    async def send_typing(self, phone_number_id: str, wamid: str) -> bool:
        """The typing indicator (it also marks `wamid` read, as Meta requires)."""
        return await self.mark_read(phone_number_id, wamid, typing=True)

    # -- media --------------------------------------------------------------------------

    async def upload_media(
        self, phone_number_id: str, content: bytes, *, mime_type: str, filename: str = "file"
    ) -> str:
        """Upload a file for sending; returns the media id (valid 30 days)."""
        body = await self._call(
            "POST",
            f"{phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, content, mime_type)},
        )
        if not body.get("id"):
            raise GraphError("the Graph API stored the media but returned no id")
        return str(body["id"])

    async def get_media(self, media_id: str, *, phone_number_id: str | None = None) -> MediaInfo:
        """The download URL (valid 5 minutes) and facts of a media id."""
        params = {"phone_number_id": phone_number_id} if phone_number_id else None
        body = await self._call("GET", check_media_id(media_id), params=params)
        if not body.get("url"):
            raise GraphError("the Graph API returned no URL for this media")
        return MediaInfo.model_validate(body)

    async def download_media(self, url: str) -> bytes:
        """The bytes behind a URL from `get_media`. A 404 raises MediaUrlExpired."""
        self.check_media_link(url)
        response = await self._request("GET", url)
        if response.status_code == 404:
            raise MediaUrlExpired("the media URL expired or is unknown", http_status=404)
        if response.status_code >= 400:
            raise _error_of(response)
        if response.status_code >= 300:
            raise MediaRedirected(f"answered {response.status_code}", http_status=200)
        return response.content

    def check_media_link(self, url: str) -> None:
        """Refuse a download link that is not Meta's (or the configured Graph host's):
        the token goes with the request, so the link decides who receives it."""
        parts = urllib.parse.urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port)
        if origin not in self._media_origins and not (
            parts.scheme == "https" and parts.hostname in META_MEDIA_HOSTS and parts.port is None
        ):
            raise UntrustedMediaLink(f"the link's host is {parts.hostname or 'missing'}")

    async def stream_media(
        self, url: str, sink: Callable[[bytes], object], *, max_bytes: int
    ) -> int:
        """Feed the bytes behind a URL from `get_media` to `sink` chunk by chunk, so a large
        file never sits in memory; returns the size. A 404 raises MediaUrlExpired; a file
        over `max_bytes` raises MediaTooLarge before more than that is read. Only links to
        Meta's hosts are fetched (UntrustedMediaLink), and redirects are not followed."""
        self.check_media_link(url)
        try:
            async with self._http.stream("GET", url, headers=self._auth()) as response:
                if response.status_code == 404:
                    raise MediaUrlExpired("the media URL expired or is unknown", http_status=404)
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_of(response)
                if response.status_code >= 300:
                    raise MediaRedirected(f"answered {response.status_code}", http_status=200)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise MediaTooLarge(f"the file has {declared} bytes", http_status=200)
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge(f"the file has more than {max_bytes} bytes")
                    sink(chunk)
                return size
        except httpx.TimeoutException as exc:
            raise GraphTimeout(f"the media download timed out: {exc}", request_sent=True) from exc
        except httpx.TransportError as exc:
            raise GraphTransportError(
                f"the media download failed: {exc}", request_sent=True
            ) from exc

    async def delete_media(self, media_id: str) -> bool:
        body = await self._call("DELETE", check_media_id(media_id))
        return bool(body.get("success"))

    # -- templates ----------------------------------------------------------------------

    async def list_templates(
        self, waba_id: str, *, limit: int = 100, after: str | None = None
    ) -> TemplatePage:
        params: dict[str, Any] = {"limit": limit, "fields": TEMPLATE_FIELDS}
        if after:
            params["after"] = after
        body = await self._call("GET", f"{waba_id}/message_templates", params=params)
        paging = body.get("paging") or {}
        cursors = paging.get("cursors") or {}
        # Meta gives an "after" cursor on every page; only a "next" link says more exist.
        more = bool(paging.get("next"))
        return TemplatePage(
            templates=[TemplateInfo.model_validate(t) for t in body.get("data") or []],
            after=cursors.get("after") if more else None,
        )

    async def list_all_templates(self, waba_id: str) -> list[TemplateInfo]:
        templates: list[TemplateInfo] = []
        after: str | None = None
        while True:
            page = await self.list_templates(waba_id, after=after)
            templates.extend(page.templates)
            if not page.after or not page.templates:
                return templates
            after = page.after

    async def create_template(self, waba_id: str, template: dict[str, Any]) -> TemplateCreated:
        body = await self._call("POST", f"{waba_id}/message_templates", json=template)
        return TemplateCreated.model_validate(body)

    async def delete_template(self, waba_id: str, *, name: str, hsm_id: str | None = None) -> bool:
        params: dict[str, Any] = {"name": name}
        if hsm_id:
            params["hsm_id"] = hsm_id
        body = await self._call("DELETE", f"{waba_id}/message_templates", params=params)
        return bool(body.get("success"))

    # -- numbers, subscriptions, coexistence sync ---------------------------------------

    async def get_phone_number(
        self, phone_number_id: str, fields: tuple[str, ...] = ()
    ) -> PhoneNumberInfo:
        params = {"fields": ",".join(fields)} if fields else None
        body = await self._call("GET", phone_number_id, params=params)
        return PhoneNumberInfo.model_validate(body)

    async def list_phone_numbers(
        self,
        waba_id: str,
        fields: tuple[str, ...] = (
            "id",
            "display_phone_number",
            "is_on_biz_app",
            "platform_type",
        ),
    ) -> list[PhoneNumberInfo]:
        body = await self._call(
            "GET", f"{waba_id}/phone_numbers", params={"fields": ",".join(fields)}
        )
        return [PhoneNumberInfo.model_validate(n) for n in body.get("data") or []]

    async def subscribe_app(
        self,
        waba_id: str,
        *,
        override_callback_uri: str | None = None,
        verify_token: str | None = None,
    ) -> bool:
        payload: dict[str, Any] = {}
        if override_callback_uri:
            payload["override_callback_uri"] = override_callback_uri
            payload["verify_token"] = verify_token or ""
        body = await self._call("POST", f"{waba_id}/subscribed_apps", json=payload or None)
        return bool(body.get("success"))

    async def list_subscribed_apps(self, waba_id: str) -> list[dict[str, Any]]:
        body = await self._call("GET", f"{waba_id}/subscribed_apps")
        return list(body.get("data") or [])

    async def register_number(self, phone_number_id: str, pin: str) -> bool:
        """`POST /{phone_number_id}/register` for a new Cloud API number (never for
        coexistence numbers: they are registered already)."""
        body = await self._call(
            "POST",
            f"{phone_number_id}/register",
            json={"messaging_product": "whatsapp", "pin": pin},
        )
        return bool(body.get("success"))

    async def smb_app_data(self, phone_number_id: str, sync_type: str) -> str:
        """Start the coexistence sync (`smb_app_state_sync` or `history`); returns the request id."""
        if sync_type not in ("smb_app_state_sync", "history"):
            raise ValueError(f"unknown sync_type {sync_type!r}")
        body = await self._call(
            "POST",
            f"{phone_number_id}/smb_app_data",
            json={"messaging_product": "whatsapp", "sync_type": sync_type},
        )
        return str(body.get("request_id") or "")

    async def exchange_code(
        self, *, app_id: str, app_secret: str, code: str, redirect_uri: str | None = None
    ) -> TokenResult:
        """Trade an Embedded Signup code (valid 30 s) for a business token."""
        params: dict[str, Any] = {"client_id": app_id, "client_secret": app_secret, "code": code}
        if redirect_uri:
            params["redirect_uri"] = redirect_uri
        body = await self._call("GET", "oauth/access_token", params=params, auth=False)
        return TokenResult.model_validate(body)


def _error_of(response: httpx.Response) -> GraphError:
    return _answer_error(_answer_of(response))


def _answer_of(response: httpx.Response) -> Answer:
    """An httpx response as the keep-alive pool's answers are (lower-cased header names)."""
    return Answer(response.status_code, dict(response.headers.items()), response.content)


def _answer_error(answer: Answer) -> GraphError:
    """Meta's error in an unsuccessful answer, with its Retry-After when given."""
    body: Any
    try:
        body = jsonlib.loads(answer.body)
    except ValueError:
        body = answer.body.decode("utf-8", "replace")
    exc = parse_graph_error(answer.status, body)
    retry_after = answer.headers.get("retry-after")
    if retry_after and retry_after.replace(".", "", 1).isdigit():
        exc.retry_after = float(retry_after)
    return exc


def _through_proxy(base_url: str) -> bool:
    """Whether httpx would send requests to `base_url` through a proxy (`*_PROXY`)."""
    proxies = urllib.request.getproxies()
    scheme = base_url.split(":", 1)[0]
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    host = httpx.URL(base_url).host
    return not urllib.request.proxy_bypass(host)


def _answer_json_or_raise(answer: Answer) -> dict[str, Any]:
    """The JSON object of a successful answer; Meta's error as an exception otherwise."""
    if answer.status >= 400:
        raise _answer_error(answer)
    try:
        body: Any = jsonlib.loads(answer.body)
    except ValueError as exc:
        raise GraphError(
            f"the Graph API answered HTTP {answer.status} without JSON",
            http_status=answer.status,
        ) from exc
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        raise parse_graph_error(answer.status, body)
    if not isinstance(body, dict):
        raise GraphError("the Graph API answered with unexpected JSON")
    return body


def _json_or_raise(response: httpx.Response) -> dict[str, Any]:
    return _answer_json_or_raise(_answer_of(response))


class SyncGraphClient:
    """The same client for threaded workers: each call runs on a private event loop.

    Use one per thread, and close it: `with SyncGraphClient(...) as graph: graph.get_media(id)`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        access_token: str = "",
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self.client = GraphClient(
            base_url, api_version, access_token, timeout=timeout, transport=transport
        )

    def __enter__(self) -> SyncGraphClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, call: Callable[[GraphClient], Awaitable[T]]) -> T:
        """Run any client call: `graph.run(lambda c: c.list_templates(waba_id))`."""

        async def _run() -> T:
            return await call(self.client)

        return self._loop.run_until_complete(_run())

    def get_media(self, media_id: str, *, phone_number_id: str | None = None) -> MediaInfo:
        return self.run(lambda c: c.get_media(media_id, phone_number_id=phone_number_id))

    def download_media(self, url: str) -> bytes:
        return self.run(lambda c: c.download_media(url))

    def send_message(self, phone_number_id: str, payload: dict[str, Any]) -> SendResult:
        return self.run(lambda c: c.send_message(phone_number_id, payload))

    def mark_read(self, phone_number_id: str, wamid: str, *, typing: bool = False) -> bool:
        return self.run(lambda c: c.mark_read(phone_number_id, wamid, typing=typing))

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self.client.aclose())
            self._loop.close()
