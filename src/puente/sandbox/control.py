"""The control API (`/_sandbox/api`): set up the world, make people act, inject faults, and
read back everything the client sent. JSON in and out; bad requests get clear 4xx errors."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from puente.sandbox import health, history, people, signup
from puente.sandbox.engine import Sandbox
from puente.sandbox.graph import number_fields, template_fields
from puente.sandbox.schemas import (
    AccountEventIn,
    ClockIn,
    ConfigPatch,
    ContactIn,
    CustomerIn,
    CustomerPatch,
    DecisionIn,
    HistoryIn,
    InboundIn,
    MarketingPreferenceIn,
    MessagingLimitIn,
    NameUpdateIn,
    NumberIn,
    NumberPatch,
    OwnerMessageIn,
    PacingIn,
    QualityUpdateIn,
    SignupConfirmIn,
    SignupIn,
    TemplateIn,
    TemplateStatusIn,
    TokenIn,
)
from puente.sandbox.state import MESSAGING_LIMITS, ChatMessage, Number, Portfolio

api = APIRouter()


def create_control_api(sb: Sandbox) -> FastAPI:
    app = FastAPI(
        title="Puente Meta sandbox: control API",
        version="1",
        description="Drive the simulated people and Meta around a WhatsApp number. "
        "See docs/sandbox.md.",
    )
    app.state.sandbox = sb
    app.add_exception_handler(people.PeopleError, _refused)
    app.add_exception_handler(signup.SignupError, _refused)
    app.include_router(api)
    return app


async def _refused(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


def sb_of(request: Request) -> Sandbox:
    sb: Sandbox = request.app.state.sandbox
    return sb


def need_number(sb: Sandbox, number_id: str) -> Number:
    number = sb.world.numbers.get(number_id)
    if number is None:
        raise HTTPException(404, f"unknown phone number id {number_id}")
    return number


def message_view(msg: ChatMessage) -> dict[str, Any]:
    return {
        "id": msg.wamid,
        "phone_number_id": msg.number_id,
        "customer": msg.customer,
        "direction": msg.direction,
        "source": msg.source,
        "type": msg.type,
        "content": msg.content,
        "timestamp": msg.timestamp,
        "status": msg.status,
        "error": msg.error,
        "edited": msg.edited,
        "revoked": msg.revoked,
        "reaction": msg.reaction,
        "biz_opaque_callback_data": msg.biz_opaque_callback_data,
        "request": msg.request,
    }


def number_view(sb: Sandbox, number: Number) -> dict[str, Any]:
    return {
        **number_fields(number, sb.messaging_limit_of(number)),
        "waba_id": number.waba_id,
        "blocked_until": number.blocked_until or None,
        "coexistence": number.coexistence,
        "connection": number.connection,
        "history_sharing": number.history_sharing,
        "syncs": number.syncs,
        "contacts": len(number.address_book),
    }


# -- world --------------------------------------------------------------------------------------
@api.get("/state")
async def get_state(request: Request) -> dict[str, Any]:
    sb = sb_of(request)
    return {
        "access_token": sb.config.access_token,
        "app_id": sb.config.app_id,
        "wabas": [dataclasses.asdict(w) for w in sb.world.wabas.values()],
        "numbers": [number_view(sb, n) for n in sb.world.numbers.values()],
        "customers": len(sb.world.customers),
        "sent": len(sb.world.sent_log),
        "webhooks": sb.sender.stats(),
        "clock_offset": sb.clock.offset,
    }


@api.get("/config")
async def get_config(request: Request) -> dict[str, Any]:
    return sb_of(request).config.model_dump(mode="json")


@api.patch("/config")
async def patch_config(request: Request, patch: ConfigPatch) -> dict[str, Any]:
    sb = sb_of(request)
    changes = patch.model_dump(exclude_unset=True)
    for key, value in changes.items():
        # Nested models stay models (model_dump made them dicts).
        nested = key in ("faults", "send_faults", "media_upload_faults")
        setattr(sb.config, key, getattr(patch, key) if nested else value)
    if {"callback_url", "verify_token", "faults"} & changes.keys():
        sb.sender.reconfigure()
    return sb.config.model_dump(mode="json")


@api.post("/clock")
async def advance_clock(request: Request, body: ClockIn) -> dict[str, float]:
    sb = sb_of(request)
    sb.clock.offset += body.advance_seconds
    return {"offset": sb.clock.offset, "now": sb.clock.now()}


@api.post("/tokens", status_code=201)
async def create_token(request: Request, body: TokenIn) -> dict[str, Any]:
    sb = sb_of(request)
    for waba_id in body.waba_ids:
        if waba_id not in sb.world.wabas:
            raise HTTPException(404, f"unknown WABA {waba_id}")
    token = "EAAS" + sb.new_request_id()
    sb.world.tokens[token] = body.waba_ids
    expires_at = None
    if body.expires_in is not None:
        expires_at = sb.world.token_expiry[token] = sb.clock.now() + body.expires_in
    return {"access_token": token, "waba_ids": body.waba_ids, "expires_at": expires_at}


# -- numbers and customers ------------------------------------------------------------------------
@api.post("/numbers", status_code=201)
async def create_number(request: Request, body: NumberIn) -> dict[str, Any]:
    sb = sb_of(request)
    try:
        number = sb.do_create_number(
            body.display_phone_number,
            verified_name=body.verified_name,
            coexistence=body.coexistence,
            waba_id=body.waba_id,
            mps=body.mps,
            history_sharing=body.history_sharing,
        )
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return number_view(sb, number)


@api.get("/numbers")
async def list_numbers(request: Request) -> list[dict[str, Any]]:
    sb = sb_of(request)
    return [number_view(sb, n) for n in sb.world.numbers.values()]


@api.get("/numbers/{number_id}")
async def get_number(request: Request, number_id: str) -> dict[str, Any]:
    sb = sb_of(request)
    return number_view(sb, need_number(sb, number_id))


@api.patch("/numbers/{number_id}")
async def patch_number(request: Request, number_id: str, body: NumberPatch) -> dict[str, Any]:
    sb = sb_of(request)
    number = need_number(sb, number_id)
    for key, value in body.model_dump(exclude_unset=True).items():
        if key == "blocked_for":
            number.blocked_until = sb.clock.now() + value if value else 0.0
        elif value is not None:
            setattr(number, key, value)
    return number_view(sb, number)


def portfolio_view(sb: Sandbox, portfolio: Portfolio) -> dict[str, Any]:
    return {
        "id": portfolio.id,
        "messaging_limit": portfolio.messaging_limit,
        "limit": MESSAGING_LIMITS[portfolio.messaging_limit],
        "reached_24h": sb.reached_users(portfolio, sb.clock.now()),
        "waba_ids": [w.id for w in sb.world.wabas.values() if w.business_id == portfolio.id],
    }


def need_portfolio(sb: Sandbox, business_id: str) -> Portfolio:
    if not any(w.business_id == business_id for w in sb.world.wabas.values()):
        raise HTTPException(404, f"unknown business portfolio {business_id}")
    return sb.portfolio(business_id)


@api.get("/portfolios")
async def list_portfolios(request: Request) -> list[dict[str, Any]]:
    sb = sb_of(request)
    ids = dict.fromkeys(w.business_id for w in sb.world.wabas.values())
    return [portfolio_view(sb, sb.portfolio(i)) for i in ids]


@api.get("/portfolios/{business_id}")
async def get_portfolio(request: Request, business_id: str) -> dict[str, Any]:
    sb = sb_of(request)
    return portfolio_view(sb, need_portfolio(sb, business_id))


@api.patch("/portfolios/{business_id}")
async def patch_portfolio(
    request: Request, business_id: str, body: MessagingLimitIn
) -> dict[str, Any]:
    """Set the portfolio's messaging limit (unique users reached outside a window per 24 h)."""
    sb = sb_of(request)
    portfolio = need_portfolio(sb, business_id)
    portfolio.messaging_limit = body.messaging_limit
    return portfolio_view(sb, portfolio)


@api.patch("/wabas/{waba_id}")
async def patch_waba(request: Request, waba_id: str, body: MessagingLimitIn) -> dict[str, Any]:
    """The same through a WABA: the limit belongs to its portfolio, shared by its other WABAs."""
    sb = sb_of(request)
    waba = sb.world.wabas.get(waba_id)
    if waba is None:
        raise HTTPException(404, f"unknown WABA {waba_id}")
    portfolio = sb.portfolio(waba.business_id)
    portfolio.messaging_limit = body.messaging_limit
    return portfolio_view(sb, portfolio)


@api.post("/customers", status_code=201)
async def create_customer(request: Request, body: CustomerIn) -> dict[str, Any]:
    sb = sb_of(request)
    customer = sb.customer(body.wa_id, body.name)
    customer.name, customer.delivery = body.name, body.delivery
    customer.marketing_opt_out = body.marketing_opt_out
    customer.marketing_capped = body.marketing_capped
    return dataclasses.asdict(customer)


@api.get("/customers")
async def list_customers(request: Request) -> list[dict[str, Any]]:
    return [dataclasses.asdict(c) for c in sb_of(request).world.customers.values()]


@api.patch("/customers/{wa_id}")
async def patch_customer(request: Request, wa_id: str, body: CustomerPatch) -> dict[str, Any]:
    sb = sb_of(request)
    customer = sb.world.customers.get(wa_id)
    if customer is None:
        raise HTTPException(404, f"unknown customer {wa_id}")
    for key, value in body.model_dump(exclude_unset=True).items():
        setattr(customer, key, value)
    return dataclasses.asdict(customer)


# -- people acting ----------------------------------------------------------------------------------
@api.post("/numbers/{number_id}/inbound", status_code=201)
async def customer_sends(request: Request, number_id: str, body: InboundIn) -> dict[str, Any]:
    sb = sb_of(request)
    need_number(sb, number_id)
    payload = {"body": body.text} if body.type == "text" and body.text is not None else body.payload
    msg = people.do_inbound(
        sb,
        number_id,
        body.from_,
        body.type,
        payload,
        name=body.name,
        media=body.media.model_dump(exclude_none=True) if body.media else None,
        context_id=body.context_id,
        forwarded=body.forwarded,
        referral=body.referral,
    )
    return message_view(msg)


@api.post("/numbers/{number_id}/owner/messages", status_code=201)
async def owner_sends(request: Request, number_id: str, body: OwnerMessageIn) -> dict[str, Any]:
    sb = sb_of(request)
    need_number(sb, number_id)
    payload = {"body": body.text} if body.type == "text" and body.text is not None else body.payload
    msg = people.do_owner_send(
        sb,
        number_id,
        body.to,
        body.type,
        payload,
        media=body.media.model_dump(exclude_none=True) if body.media else None,
        context_id=body.context_id,
    )
    return message_view(msg)


@api.get("/numbers/{number_id}/contacts")
async def list_contacts(request: Request, number_id: str) -> dict[str, dict[str, str]]:
    return need_number(sb_of(request), number_id).address_book


@api.put("/numbers/{number_id}/contacts/{phone}")
async def put_contact(
    request: Request, number_id: str, phone: str, body: ContactIn
) -> dict[str, str]:
    sb = sb_of(request)
    need_number(sb, number_id)
    people.do_set_contact(sb, number_id, phone, body.full_name, body.first_name)
    return need_number(sb, number_id).address_book[phone]


@api.delete("/numbers/{number_id}/contacts/{phone}", status_code=204)
async def delete_contact(request: Request, number_id: str, phone: str) -> None:
    sb = sb_of(request)
    need_number(sb, number_id)
    people.do_remove_contact(sb, number_id, phone)


@api.post("/numbers/{number_id}/history")
async def generate_history(request: Request, number_id: str, body: HistoryIn) -> dict[str, int]:
    sb = sb_of(request)
    return history.do_generate(sb, need_number(sb, number_id), body.chats, body.messages, body.seed)


@api.post("/numbers/{number_id}/history/decision")
async def history_decision(request: Request, number_id: str, body: DecisionIn) -> dict[str, Any]:
    sb = sb_of(request)
    need_number(sb, number_id)
    people.do_history_decision(sb, number_id, body.share)
    return number_view(sb, need_number(sb, number_id))


@api.post("/numbers/{number_id}/events")
async def account_event(request: Request, number_id: str, body: AccountEventIn) -> dict[str, Any]:
    sb = sb_of(request)
    need_number(sb, number_id)
    return people.do_account_event(sb, number_id, body.event, body.reason, body.initiated_by)


@api.post("/numbers/{number_id}/quality")
async def quality_update(request: Request, number_id: str, body: QualityUpdateIn) -> dict[str, Any]:
    """Meta changes the number's quality or messaging limit (phone_number_quality_update)."""
    sb = sb_of(request)
    need_number(sb, number_id)
    return health.do_quality_update(
        sb, number_id, body.event, body.limit, body.old_limit, body.shape
    )


@api.post("/numbers/{number_id}/display-name")
async def name_update(request: Request, number_id: str, body: NameUpdateIn) -> dict[str, Any]:
    """Meta reviews the number's display name (phone_number_name_update)."""
    sb = sb_of(request)
    need_number(sb, number_id)
    return health.do_name_update(
        sb, number_id, body.decision, body.requested_verified_name, body.rejection_reason
    )


@api.post("/numbers/{number_id}/customers/{wa_id}/marketing")
async def marketing_preference(
    request: Request, number_id: str, wa_id: str, body: MarketingPreferenceIn
) -> dict[str, Any]:
    """The customer stops or resumes the business's marketing messages in WhatsApp
    (user_preferences)."""
    sb = sb_of(request)
    need_number(sb, number_id)
    return health.do_marketing_preference(sb, number_id, wa_id, body.value)


@api.get("/numbers/{number_id}/chats/{wa_id}")
async def read_chat(request: Request, number_id: str, wa_id: str) -> list[dict[str, Any]]:
    sb = sb_of(request)
    need_number(sb, number_id)
    return [message_view(m) for m in sb.chat(number_id, wa_id)]


# -- templates ----------------------------------------------------------------------------------
@api.post("/templates", status_code=201)
async def create_template(request: Request, body: TemplateIn) -> dict[str, Any]:
    sb = sb_of(request)
    waba = sb.world.wabas.get(body.waba_id)
    if waba is None:
        raise HTTPException(404, f"unknown WABA {body.waba_id}")
    spec = body.model_dump(exclude={"waba_id"})
    try:
        template = sb.do_create_template(waba, **spec)
    except Exception as exc:
        raise HTTPException(409, str(exc)) from None
    return template_fields(template)


@api.post("/templates/{template_id}/status")
async def set_template_status(
    request: Request, template_id: str, body: TemplateStatusIn
) -> dict[str, Any]:
    sb = sb_of(request)
    template = sb.world.templates.get(template_id)
    if template is None:
        raise HTTPException(404, f"unknown template {template_id}")
    sb.do_set_template_status(template, body.event, body.reason)
    return template_fields(template)


@api.post("/templates/{template_id}/pacing")
async def set_template_pacing(request: Request, template_id: str, body: PacingIn) -> dict[str, Any]:
    """Pace a template (sends get `message_status`, the ones past `hold_after` are held);
    `paced: false` releases the held messages."""
    sb = sb_of(request)
    template = sb.world.templates.get(template_id)
    if template is None:
        raise HTTPException(404, f"unknown template {template_id}")
    held = len(template.held)
    sb.do_set_pacing(template, body.paced, body.hold_after)
    return {
        **template_fields(template),
        "paced": template.paced,
        "hold_after": template.pacing_hold_after,
        "held": len(template.held),
        "released": held - len(template.held),
    }


# -- read back ----------------------------------------------------------------------------------
@api.get("/sent")
async def read_sent(
    request: Request, number_id: str | None = None, to: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    sb = sb_of(request)
    out = []
    for wamid in reversed(sb.world.sent_log):
        msg = sb.world.messages[wamid]
        if (number_id and msg.number_id != number_id) or (to and msg.customer != to):
            continue
        out.append(message_view(msg))
        if len(out) >= limit:
            break
    return out[::-1]


@api.get("/requests")
async def read_requests(
    request: Request, path_contains: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Every Graph API call (the last 5,000): method, path, query, JSON body, Authorization
    header, answer status, and Meta's error body when the call was refused."""
    out = []
    for when, method, path, query, raw, status, auth, answer in reversed(sb_of(request).requests):
        if path_contains and path_contains not in path:
            continue
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        out.append(
            {
                "time": when,
                "method": method,
                "path": path,
                "query": query,
                "body": body,
                "authorization": auth,
                "status": status,
                "answer": json.loads(answer) if answer else None,
            }
        )
        if len(out) >= limit:
            break
    return out[::-1]


@api.get("/webhooks")
async def read_webhooks(request: Request, field: str | None = None) -> list[dict[str, Any]]:
    recent = list(sb_of(request).sender.recent)
    return [u for u in recent if field is None or u["field"] == field]


@api.get("/webhooks/stats")
async def webhook_stats(request: Request) -> dict[str, Any]:
    return sb_of(request).sender.stats()


@api.post("/webhooks/drain")
async def drain(request: Request, timeout: float = 10.0) -> dict[str, Any]:
    sb = sb_of(request)
    drained = await sb.sender.drain(min(timeout, 60.0))
    return {"drained": drained, **sb.sender.stats()}


# -- embedded signup ----------------------------------------------------------------------------
@api.post("/signups", status_code=201)
async def start_signup(request: Request, body: SignupIn) -> dict[str, Any]:
    sb = sb_of(request)
    return signup.signup_view(signup.do_start_signup(sb, body.mode, body.phone, body.business_name))


@api.get("/signups/{signup_id}")
async def get_signup(request: Request, signup_id: str) -> dict[str, Any]:
    item = sb_of(request).world.signups.get(signup_id)
    if item is None:
        raise HTTPException(404, "unknown signup")
    return signup.signup_view(item)


@api.post("/signups/{signup_id}/confirm")
async def confirm_signup(request: Request, signup_id: str, body: SignupConfirmIn) -> dict[str, Any]:
    sb = sb_of(request)
    if signup_id not in sb.world.signups:
        raise HTTPException(404, "unknown signup")
    item = signup.do_confirm_signup(sb, signup_id, body.confirm_code, body.share_history)
    return signup.signup_view(item)
