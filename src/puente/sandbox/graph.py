"""The Graph API emulation: Meta's paths, token checks, response and error shapes."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from puente.sandbox import media, people, signup
from puente.sandbox.engine import Sandbox
from puente.sandbox.errors import GraphError, invalid, unknown_object
from puente.sandbox.state import Number, Template, Waba

VERSION = re.compile(r"^v\d+\.\d+$")
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
CATEGORIES = {"MARKETING", "UTILITY", "AUTHENTICATION"}
Handler = Callable[[Request], Awaitable[Response]]


def sandbox_of(request: Request) -> Sandbox:
    sb: Sandbox = request.app.state.sandbox
    return sb


def token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("access_token")


def base_url(request: Request) -> str:
    sb = sandbox_of(request)
    return (sb.config.public_url or str(request.base_url)).rstrip("/")


def graph(handler: Handler) -> Handler:
    """Checks the version segment and turns GraphError into Meta's error body."""

    async def wrapped(request: Request) -> Response:
        version = request.path_params.get("version")
        is_json = "json" in request.headers.get("content-type", "")
        raw = await request.body() if is_json else b""
        try:
            if version is not None and not VERSION.match(version):
                raise GraphError(
                    2500, f"Unknown path components: /{version}", message="Unknown path components"
                )
            response = await handler(request)
        except GraphError as exc:
            response = exc.response()
        sandbox_of(request).log_request(
            request.method,
            request.url.path,
            str(request.url.query),
            raw,
            response.status_code,
            request.headers.get("authorization"),
            bytes(response.body) if response.status_code >= 400 else b"",
        )
        return response

    return wrapped


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return dict(request.query_params)
    ctype = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in ctype or "multipart/form-data" in ctype:
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        return json.loads(raw)
    except ValueError:
        raise invalid("The request body is not valid JSON") from None


def ok(data: Any) -> JSONResponse:
    return JSONResponse(data)


# -- phone numbers ------------------------------------------------------------------------------
def number_fields(number: Number, messaging_limit: str = "TIER_UNLIMITED") -> dict[str, Any]:
    level = "HIGH" if number.mps >= 1000 else "STANDARD"
    return {
        "id": number.id,
        "display_phone_number": number.display_phone_number,
        "verified_name": number.verified_name,
        "quality_rating": number.quality_rating,
        "code_verification_status": "VERIFIED",
        "name_status": number.name_status,
        "platform_type": "CLOUD_API" if number.connection == "connected" else "NOT_APPLICABLE",
        "is_on_biz_app": number.coexistence,
        # `mps` is a sandbox extension: Meta only reports the level.
        "throughput": {"level": level, "mps": number.mps},
        "status": "CONNECTED" if number.connection == "connected" else "DISCONNECTED",
        # The business portfolio's tier (control API: PATCH /portfolios/{id}).
        "whatsapp_business_manager_messaging_limit": messaging_limit,
    }


def select_fields(obj: dict[str, Any], request: Request) -> dict[str, Any]:
    fields = request.query_params.get("fields")
    if not fields:
        return obj
    wanted = {f.strip() for f in fields.split(",")} | {"id"}
    return {k: v for k, v in obj.items() if k in wanted}


def page(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    try:
        limit = int(request.query_params.get("limit", "25"))
        after = int(base64.b64decode(request.query_params.get("after", "MA==")).decode() or 0)
    except ValueError:
        raise invalid("limit and after must be valid paging values") from None
    chunk = items[after : after + limit]
    cursors = {
        "before": base64.b64encode(str(after).encode()).decode(),
        "after": base64.b64encode(str(after + len(chunk)).encode()).decode(),
    }
    body: dict[str, Any] = {"data": chunk, "paging": {"cursors": cursors}}
    if after + limit < len(items):
        body["paging"]["next"] = (
            f"{request.url.remove_query_params('after')}&after={cursors['after']}"
        )
    return body


# -- templates ------------------------------------------------------------------------------------
def template_fields(t: Template) -> dict[str, Any]:
    return {
        "name": t.name,
        "parameter_format": t.parameter_format,
        "components": t.components,
        "language": t.language,
        "status": t.status,
        "category": t.category,
        "id": t.id,
    }


def template_node(t: Template, request: Request) -> dict[str, Any]:
    """Meta's default fields, or those `fields` asks for (`rejected_reason` only then)."""
    if "fields" not in request.query_params:
        return template_fields(t)
    return select_fields({**template_fields(t), "rejected_reason": t.rejected_reason}, request)


def check_template_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    name, category, language = body.get("name"), body.get("category"), body.get("language")
    if not isinstance(name, str) or not TEMPLATE_NAME.match(name):
        raise invalid("name must hold lowercase letters, digits and underscores (max 512)")
    if not isinstance(category, str) or category.upper() not in CATEGORIES:
        raise invalid(f"category must be one of {sorted(CATEGORIES)}")
    if not isinstance(language, str) or not language:
        raise invalid("language is required")
    components = body.get("components")
    if isinstance(components, str):
        components = json.loads(components)
    if not isinstance(components, list) or not any(
        isinstance(c, dict) and str(c.get("type", "")).upper() == "BODY" for c in components
    ):
        raise invalid("components must be an array with a BODY component")
    fmt = str(body.get("parameter_format", "positional")).upper()
    if fmt not in ("POSITIONAL", "NAMED"):
        raise invalid("parameter_format must be named or positional")
    return {
        "name": name,
        "category": category,
        "language": language,
        "components": components,
        "parameter_format": fmt,
    }


# -- handlers -----------------------------------------------------------------------------------
@graph
async def post_messages(request: Request) -> Response:
    sb = sandbox_of(request)
    number = sb.access_number(request.path_params["object_id"], token_of(request))
    answer = sb.do_send(number, await json_body(request))
    while sb.config.hold_send_answers and "messages" in answer:
        await asyncio.sleep(0.01)
    if sb.config.lose_send_answers > 0 and "messages" in answer:
        sb.config.lose_send_answers -= 1
        return LostAnswer()
    return ok(answer)


class LostAnswer(Response):
    """An answer cut off on the way: the headers promise a body that never fully comes and
    the connection closes, as when a network drops between Meta and the client."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"512"),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # The server closes the connection once the body falls short of its length.
        await send({"type": "http.response.body", "body": b'{"messaging_product":'})


@graph
async def post_media(request: Request) -> Response:
    sb = sandbox_of(request)
    number = sb.access_number(request.path_params["object_id"], token_of(request))
    del number
    if "multipart/form-data" not in request.headers.get("content-type", ""):
        raise invalid("Upload media as multipart/form-data with a file field")
    form = await request.form()
    if form.get("messaging_product") != "whatsapp":
        raise invalid("The parameter messaging_product is required and must be 'whatsapp'")
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise invalid("The parameter file is required")
    data = await upload.read()
    sb.take_upload_fault()
    typed = form.get("type")
    mime = (typed if isinstance(typed, str) and typed else None) or upload.content_type or ""
    stored = media.do_upload(sb, data, mime, upload.filename)
    return ok({"id": stored.id})


@graph
async def templates(request: Request) -> Response:
    sb = sandbox_of(request)
    waba = sb.access_waba(request.path_params["object_id"], token_of(request))
    if request.method == "POST":
        spec = check_template_body(await json_body(request))
        t = sb.do_create_template(waba, **spec)
        return ok({"id": t.id, "status": t.status, "category": t.category})
    mine = [t for t in sb.world.templates.values() if t.waba_id == waba.id]
    if request.method == "DELETE":
        return delete_templates(sb, mine, request)
    q = request.query_params
    for key in ("name", "status", "language", "category"):
        if key in q:
            mine = [t for t in mine if str(getattr(t, key)).lower() == q[key].lower()]
    return ok(page([template_node(t, request) for t in mine], request))


def delete_templates(sb: Sandbox, mine: list[Template], request: Request) -> Response:
    q = request.query_params
    ids = set(
        filter(
            None, [q.get("hsm_id"), *q.get("hsm_ids", "").strip("[]").replace('"', "").split(",")]
        )
    )
    doomed = [t for t in mine if t.name == q.get("name") or t.id in ids]
    if not doomed:
        raise invalid("No template matches the given name or hsm_id")
    for t in doomed:
        del sb.world.templates[t.id]
    return ok({"success": True})


@graph
async def phone_numbers(request: Request) -> Response:
    sb = sandbox_of(request)
    waba = sb.access_waba(request.path_params["object_id"], token_of(request))
    numbers = [n for n in sb.world.numbers.values() if n.waba_id == waba.id]
    return ok(
        page(
            [select_fields(number_fields(n, sb.messaging_limit_of(n)), request) for n in numbers],
            request,
        )
    )


@graph
async def subscribed_apps(request: Request) -> Response:
    sb = sandbox_of(request)
    waba = sb.access_waba(request.path_params["object_id"], token_of(request))
    if request.method == "POST":
        body = await json_body(request)
        override = body.get("override_callback_uri") if isinstance(body, dict) else None
        verify = body.get("verify_token") if isinstance(body, dict) else None
        if override is not None and not str(override).startswith(("http://", "https://")):
            raise invalid("override_callback_uri must be an http(s) URL")
        if override is not None and not verify:
            raise invalid("verify_token is required with override_callback_uri")
        waba.subscribed = True
        waba.override_callback_uri = override
        waba.override_verify_token = verify
        sb.sender.set_override(waba.id, override, verify)
        return ok({"success": True})
    if request.method == "DELETE":
        waba.subscribed = False
        waba.override_callback_uri = waba.override_verify_token = None
        sb.sender.set_override(waba.id, None, None)
        return ok({"success": True})
    data = []
    if waba.subscribed:
        item: dict[str, Any] = {
            "whatsapp_business_api_data": {
                "id": sb.config.app_id,
                "link": "https://www.facebook.com/games/?app_id=" + sb.config.app_id,
                "name": "Puente Sandbox App",
            }
        }
        if waba.override_callback_uri:
            item["override_callback_uri"] = waba.override_callback_uri
        data.append(item)
    return ok({"data": data})


@graph
async def smb_app_data(request: Request) -> Response:
    sb = sandbox_of(request)
    number = sb.access_number(request.path_params["object_id"], token_of(request))
    return ok(people.do_request_sync(sb, number, await json_body(request)))


@graph
async def register(request: Request) -> Response:
    sb = sandbox_of(request)
    number = sb.access_number(request.path_params["object_id"], token_of(request))
    if number.coexistence:
        raise invalid("Numbers onboarded from the WhatsApp Business app are already registered")
    body = await json_body(request)
    if (
        not isinstance(body, dict)
        or not str(body.get("pin", "")).isdigit()
        or len(str(body["pin"])) != 6
    ):
        raise invalid("pin must be a 6-digit code")
    return ok({"success": True})


@graph
async def graph_object(request: Request) -> Response:
    """`/{id}`: a phone number, a WABA, a media object or a template, as at Meta."""
    sb = sandbox_of(request)
    object_id = request.path_params["object_id"]
    token = token_of(request)
    if object_id in sb.world.numbers:
        number = sb.access_number(object_id, token)
        return ok(select_fields(number_fields(number, sb.messaging_limit_of(number)), request))
    if object_id in sb.world.wabas:
        waba = sb.access_waba(object_id, token)
        return ok(select_fields(waba_fields(waba), request))
    if object_id in sb.world.templates:
        return await template_object(sb, sb.world.templates[object_id], request)
    sb.check_token(token)
    stored = media.access_media(sb, object_id)
    if request.method == "DELETE":
        del sb.world.media[stored.id]
        return ok({"success": True})
    if request.method != "GET":
        raise unknown_object(object_id)
    return ok(media.media_info(sb, stored, base_url(request)))


def waba_fields(waba: Waba) -> dict[str, Any]:
    return {
        "id": waba.id,
        "name": waba.name,
        "currency": "USD",
        "timezone_id": "1",
        "message_template_namespace": f"ns_{waba.id}",
        "owner_business_info": {"id": waba.business_id, "name": waba.name},
    }


async def template_object(sb: Sandbox, template: Template, request: Request) -> Response:
    sb.check_token(token_of(request), template.waba_id)
    if request.method == "POST":
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("components"), list):
            raise invalid("components must be an array")
        template.components = body["components"]
        template.status = "PENDING"
        sb.later(sb.config.template_review_delay, lambda: sb._review(template.id))
        return ok({"success": True})
    if request.method == "DELETE":
        raise invalid("Delete templates through /{waba_id}/message_templates")
    return ok(template_node(template, request))


@graph
async def lookaside(request: Request) -> Response:
    sb = sandbox_of(request)
    sb.check_token(token_of(request))
    q = request.query_params
    stored = media.check_download(
        sb, request.path_params["media_id"], q.get("ext", ""), q.get("hash", "")
    )
    return Response(stored.data, media_type=stored.mime_type)


@graph
async def oauth_access_token(request: Request) -> Response:
    sb = sandbox_of(request)
    return ok(signup.do_exchange_code(sb, dict(request.query_params)))


@graph
async def unknown_path(request: Request) -> Response:
    raise GraphError(
        2500, f"Unknown path components: {request.url.path}", message="Unknown path components"
    )


ANY = ["GET", "POST", "DELETE"]
# The send path is matched first: it is the one benchmarks and broadcasts hammer.
HOT_ROUTES = [Route("/{version}/{object_id}/messages", post_messages, methods=["POST"])]
ROUTES = [
    Route("/oauth/access_token", oauth_access_token, methods=["GET", "POST"]),
    Route("/{version}/oauth/access_token", oauth_access_token, methods=["GET", "POST"]),
    Route("/_sandbox/lookaside/{media_id}", lookaside, methods=["GET"]),
    Route("/{version}/{object_id}/media", post_media, methods=["POST"]),
    Route("/{version}/{object_id}/message_templates", templates, methods=ANY),
    Route("/{version}/{object_id}/phone_numbers", phone_numbers, methods=["GET"]),
    Route("/{version}/{object_id}/subscribed_apps", subscribed_apps, methods=ANY),
    Route("/{version}/{object_id}/smb_app_data", smb_app_data, methods=["POST"]),
    Route("/{version}/{object_id}/register", register, methods=["POST"]),
    Route("/{version}/{object_id}", graph_object, methods=ANY),
    Route("/{path:path}", unknown_path, methods=ANY),
]
