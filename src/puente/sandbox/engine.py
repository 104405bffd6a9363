"""The sandbox's behaviour: Meta's side of every operation, shared by the Graph API, the control
API and the phone page. All methods run on the event loop; the store lock guards the state."""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import itertools
import secrets
from collections.abc import Callable
from typing import Any

from puente.sandbox import payloads
from puente.sandbox.config import SandboxConfig, SendFault
from puente.sandbox.errors import (
    GraphError,
    bad_token,
    error_item,
    expired_token,
    invalid,
    unknown_object,
)
from puente.sandbox.rules import (
    RateLimiter,
    SendRequest,
    check_send_body,
    check_template_parameters,
)
from puente.sandbox.state import (
    COEXISTENCE_MPS,
    DEFAULT_MPS,
    MESSAGING_LIMITS,
    ChatMessage,
    Clock,
    Conversation,
    Customer,
    Number,
    Portfolio,
    Store,
    Template,
    Waba,
    chat_key,
)
from puente.sandbox.webhooks import WebhookSender

DAY = 86400.0
WINDOW = DAY
ENTRY_POINT_WINDOW = 3 * DAY
GC_FREEZE_EVERY = 2000
REQUEST_LOG = 5000
HELD = "held_for_quality_assessment"
# when, method, path, query, JSON body, status, Authorization header, answer if refused
RequestLog = tuple[float, str, str, str, bytes, int, str | None, bytes]


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.state_file)
        self.world = self.store.world
        self.clock = Clock()
        self.sender = WebhookSender(config)
        self.limiter = RateLimiter()
        self._timers: set[asyncio.TimerHandle] = set()
        self.requests: collections.deque[RequestLog] = collections.deque(maxlen=REQUEST_LOG)
        # Bumped whenever a chat changes, so the phone page can push updates instead of polling.
        self.revision = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def log_request(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        status: int,
        authorization: str | None,
        answer: bytes,
    ) -> None:
        """Every Graph API call, so tests and scripts can read back what the client did (and
        what Meta answered when it refused)."""
        self.requests.append(
            (self.clock.now(), method, path, query, body, status, authorization, answer)
        )

    # -- lookups ----------------------------------------------------------------------------
    def check_token(self, token: str | None, waba_id: str | None = None) -> None:
        scope = self.world.tokens.get(token or "")
        if token == self.config.access_token:
            return
        if scope is None:
            raise bad_token()
        expires_at = self.world.token_expiry.get(token or "")
        if expires_at is not None and self.clock.now() >= expires_at:
            raise expired_token(expires_at, self.clock.now())
        if waba_id is not None and scope and waba_id not in scope:
            raise GraphError(
                200,
                "The business token has no access to this WhatsApp Business Account",
                status=403,
                message="(#200) Permissions error",
            )

    def access_number(self, number_id: str, token: str | None) -> Number:
        number = self.world.numbers.get(number_id)
        self.check_token(token, number.waba_id if number else None)
        if number is None:
            raise unknown_object(number_id)
        return number

    def access_waba(self, waba_id: str, token: str | None) -> Waba:
        waba = self.world.wabas.get(waba_id)
        self.check_token(token, waba_id if waba else None)
        if waba is None:
            raise unknown_object(waba_id)
        return waba

    def customer(self, wa_id: str, name: str | None = None) -> Customer:
        found = self.world.customers.get(wa_id)
        if found is None:
            found = Customer(wa_id=wa_id, name=name or f"Cliente {wa_id[-4:]}")
            self.world.customers[wa_id] = found
        return found

    def conversation(self, number_id: str, wa_id: str) -> Conversation:
        return self.world.conversations.setdefault(chat_key(number_id, wa_id), Conversation())

    def add_message(self, msg: ChatMessage) -> None:
        self.world.messages[msg.wamid] = msg
        self.world.chats.setdefault(chat_key(msg.number_id, msg.customer), []).append(msg.wamid)
        self.touch()

    def portfolio(self, business_id: str) -> Portfolio:
        found = self.world.portfolios.get(business_id)
        if found is None:
            found = self.world.portfolios[business_id] = Portfolio(id=business_id)
        return found

    def messaging_limit_of(self, number: Number) -> str:
        waba = self.world.wabas.get(number.waba_id)
        portfolio = self.world.portfolios.get(waba.business_id) if waba else None
        return portfolio.messaging_limit if portfolio else "TIER_UNLIMITED"

    def reached_users(self, portfolio: Portfolio, now: float) -> int:
        """Unique users reached outside a service window in the last 24 h (oldest dropped)."""
        reached = portfolio.reached
        while reached:
            first = next(iter(reached))
            if reached[first] > now - DAY:
                break
            del reached[first]
        return len(reached)

    # -- change notification ----------------------------------------------------------------
    def touch(self) -> None:
        self.revision += 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_change(self, revision: int, timeout: float) -> None:
        """Return once `revision` is outdated, or after `timeout` seconds."""
        if self.revision != revision:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self._waiters.discard(waiter)

    def chat(self, number_id: str, wa_id: str) -> list[ChatMessage]:
        ids = self.world.chats.get(chat_key(number_id, wa_id), [])
        return [self.world.messages[i] for i in ids]

    # -- creation ---------------------------------------------------------------------------
    def do_create_waba(self, name: str, waba_id: str | None = None) -> Waba:
        with self.store.lock:
            waba = Waba(
                id=waba_id or self.store.new_id(), name=name, business_id=self.store.new_id()
            )
            self.world.wabas[waba.id] = waba
            return waba

    def do_create_number(
        self,
        display_phone_number: str,
        *,
        verified_name: str = "Negocio de prueba",
        coexistence: bool = True,
        waba_id: str | None = None,
        mps: int | None = None,
        number_id: str | None = None,
        connection: str = "connected",
        history_sharing: str = "accepted",
    ) -> Number:
        with self.store.lock:
            if any(
                n.display_phone_number == display_phone_number for n in self.world.numbers.values()
            ):
                raise ValueError(f"number {display_phone_number} already exists")
            if waba_id is None:
                waba_id = self.do_create_waba(f"WABA {verified_name}").id
            elif waba_id not in self.world.wabas:
                self.do_create_waba(f"WABA {verified_name}", waba_id)
            number = Number(
                id=number_id or self.store.new_id(),
                waba_id=waba_id,
                display_phone_number=display_phone_number,
                verified_name=verified_name,
                coexistence=coexistence,
                mps=mps or (COEXISTENCE_MPS if coexistence else DEFAULT_MPS),
                connection=connection,
                onboarded_at=self.clock.now() if connection == "connected" else 0.0,
                history_sharing=history_sharing,
            )
            self.world.numbers[number.id] = number
            return number

    def do_create_template(
        self,
        waba: Waba,
        *,
        name: str,
        language: str,
        category: str,
        components: list[dict[str, Any]],
        parameter_format: str = "POSITIONAL",
        status: str = "PENDING",
    ) -> Template:
        with self.store.lock:
            for t in self.world.templates.values():
                if t.waba_id == waba.id and t.name == name and t.language == language:
                    raise invalid(f"Content in this language already exists for template {name}")
            template = Template(
                id=self.store.new_id(),
                waba_id=waba.id,
                name=name,
                language=language,
                category=category.upper(),
                components=components,
                status=status,
                parameter_format=parameter_format.upper(),
            )
            self.world.templates[template.id] = template
        if status == "PENDING":
            self.later(self.config.template_review_delay, lambda: self._review(template.id))
        return template

    def _review(self, template_id: str) -> None:
        template = self.world.templates.get(template_id)
        if template is None or template.status != "PENDING":
            return
        # Names asking for it are rejected, so scripts can exercise both outcomes.
        rejected = "reject" in template.name
        self.do_set_template_status(
            template, "REJECTED" if rejected else "APPROVED", "INVALID_FORMAT" if rejected else None
        )

    def do_set_template_status(self, template: Template, event: str, reason: str | None) -> None:
        with self.store.lock:
            template.status = event
            if event == "REJECTED":
                template.rejected_reason = reason or "INVALID_FORMAT"
        value = payloads.template_status_value(template, event, reason)
        self.sender.emit(template.waba_id, "message_template_status_update", value)
        if event in ("PAUSED", "DISABLED") and template.held:
            # A sandbox choice: a paced template that fails its assessment drops what it held.
            code = 132015 if event == "PAUSED" else 132016
            self._release_held(template, GraphError(code, f"Template {template.name} is {event}"))

    def do_set_pacing(self, template: Template, paced: bool, hold_after: int) -> None:
        """Meta paces a template while it assesses its quality; ending pacing releases the held."""
        with self.store.lock:
            template.paced = paced
            template.pacing_hold_after = hold_after
            template.pacing_sent = 0
        if not paced:
            self._release_held(template, None)

    def _release_held(self, template: Template, failure: GraphError | None) -> None:
        held, template.held = template.held, []
        for wamid in held:
            msg = self.world.messages[wamid]
            number = self.world.numbers[msg.number_id]
            customer = self.customer(msg.customer)
            self._schedule_statuses(number, customer, msg, msg.pricing or {}, failure)

    # -- scheduling -------------------------------------------------------------------------
    def later(self, delay: float, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        if delay <= 0:
            loop.call_soon(callback)
            return

        def run() -> None:
            # Forget the handle once it has run so the set does not grow with every send.
            self._timers.discard(handle)
            callback()

        handle = loop.call_later(delay, run)
        self._timers.add(handle)

    def cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    # -- sending ----------------------------------------------------------------------------
    def do_send(self, number: Number, body: Any) -> dict[str, Any]:
        if number.connection != "connected":
            raise GraphError(
                133010,
                f"The phone number is {number.connection} from the Cloud API; "
                "sending resumes once it is reconnected",
            )
        if isinstance(body, dict) and body.get("status") == "read":
            return self.do_mark_read(number, body)
        req = check_send_body(body)
        if self.config.send_faults:
            self._take_send_fault(req.to)
        if number.blocked_until > self.clock.now():
            raise GraphError(
                368,
                "The phone number is temporarily blocked for policy violations",
                message="(#368) Temporarily blocked for policies violations",
            )
        self.limiter.check_throughput(number.id, number.mps, self.config.throughput_window)
        template = self._check_template(number, req) if req.type == "template" else None
        self._check_media_refs(req)
        self.limiter.check_pair(number.id, req.to, self.config.pair_limit, self.config.pair_window)
        with self.store.lock:
            customer = self.customer(req.to)
            now = self.clock.now()
            conv = self.conversation(number.id, customer.wa_id)
            # Templates outside any window reach a user for the portfolio's messaging limit.
            portfolio = None
            if template is not None and now > max(conv.window_until, conv.entry_point_until):
                portfolio = self.portfolio(self.world.wabas[number.waba_id].business_id)
            failure = self._limit_failure(portfolio, customer, now)
            sync = failure is not None and self.config.messaging_limit_sync
            failure = failure or self._policy_failure(req, template, customer, conv, now)
            if failure is not None and (sync or self.config.policy_errors_sync):
                raise failure
            msg = ChatMessage(
                wamid=self.store.new_wamid(),
                number_id=number.id,
                customer=customer.wa_id,
                direction="out",
                source="api",
                type=req.type,
                content={req.type: req.payload},
                timestamp=now,
                status="accepted",
                context_id=req.context_id,
                biz_opaque_callback_data=req.biz_opaque_callback_data,
                request=req.body,
            )
            if req.context_id:
                msg.content["context"] = {"message_id": req.context_id}
            if req.type == "reaction":
                self._apply_reaction(req.payload)
            self.add_message(msg)
            self.world.sent_log.append(msg.wamid)
            if self.config.freeze_gc and len(self.world.sent_log) % GC_FREEZE_EVERY == 0:
                # The state only grows, and full collections would rescan all of it.
                gc.freeze()
            pricing = self._pricing(template, conv, now)
            if portfolio is not None and failure is None:
                portfolio.reached.pop(customer.wa_id, None)
                portfolio.reached[customer.wa_id] = now
            pacing = self._pace(template, msg, pricing) if template and failure is None else None
        if pacing != HELD:
            self._schedule_statuses(number, customer, msg, pricing, failure)
        sent: dict[str, str] = {"id": msg.wamid}
        if pacing is not None and self.config.paced_message_status:
            sent["message_status"] = pacing
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": customer.wa_id}],
            "messages": [sent],
        }

    def _take_send_fault(self, to: str) -> None:
        faults = self.config.send_faults
        for i, fault in enumerate(faults):
            if fault.to is None or fault.to == to:
                del faults[i]
                raise fault_error(fault)

    def take_upload_fault(self) -> None:
        if self.config.media_upload_faults:
            raise fault_error(self.config.media_upload_faults.pop(0))

    def _pace(self, template: Template, msg: ChatMessage, pricing: dict[str, Any]) -> str | None:
        """`message_status` of a paced template: the first sends go out, the rest are held."""
        if not template.paced:
            return None
        if template.pacing_sent < template.pacing_hold_after:
            template.pacing_sent += 1
            return "accepted"
        msg.pricing = pricing
        msg.status = HELD
        template.held.append(msg.wamid)
        return HELD

    def _limit_failure(
        self, portfolio: Portfolio | None, customer: Customer, now: float
    ) -> GraphError | None:
        if portfolio is None:
            return None
        limit = MESSAGING_LIMITS.get(portfolio.messaging_limit)
        if limit is None:
            return None
        reached = self.reached_users(portfolio, now)
        if customer.wa_id in portfolio.reached or reached < limit:
            return None
        return GraphError(
            self.config.messaging_limit_code,
            f"Message failed to send because the business portfolio reached its messaging "
            f"limit ({portfolio.messaging_limit}: {limit} unique users outside a customer "
            f"service window in 24 hours)",
        )

    def do_mark_read(self, number: Number, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("messaging_product") != "whatsapp":
            raise invalid("The parameter messaging_product is required and must be 'whatsapp'")
        target = self.world.messages.get(str(body.get("message_id")))
        if target is None or target.number_id != number.id or target.direction != "in":
            raise invalid("message_id does not refer to a message received by this number")
        indicator = body.get("typing_indicator")
        if indicator is not None and indicator != {"type": "text"}:
            raise invalid("typing_indicator must be {'type':'text'}")
        with self.store.lock:
            for msg in self.chat(number.id, target.customer):
                if msg.direction == "in" and msg.timestamp <= target.timestamp:
                    msg.status = "read"
        return {"success": True}

    def _check_template(self, number: Number, req: SendRequest) -> Template:
        name, lang = req.payload["name"], req.payload["language"]["code"]
        template = self.find_template(number.waba_id, name, lang)
        if template is None or template.status not in ("APPROVED", "PAUSED", "DISABLED"):
            raise GraphError(
                132001, f"template name ({name}) does not exist in {lang} or is not approved"
            )
        if template.status == "PAUSED":
            raise GraphError(132015, f"Template {name} is paused due to low quality")
        if template.status == "DISABLED":
            raise GraphError(132016, f"Template {name} has been disabled")
        check_template_parameters(template, req.payload)
        return template

    def find_template(self, waba_id: str, name: str, language: str) -> Template | None:
        for t in self.world.templates.values():
            if t.waba_id == waba_id and t.name == name and t.language == language:
                return t
        return None

    def _check_media_refs(self, req: SendRequest) -> None:
        if isinstance(req.payload, dict) and req.type in (
            "image",
            "video",
            "audio",
            "document",
            "sticker",
        ):
            media_id = req.payload.get("id")
            if media_id is not None and str(media_id) not in self.world.media:
                raise invalid(f"Media id {media_id} was not found; upload it first")

    def _policy_failure(
        self,
        req: SendRequest,
        template: Template | None,
        customer: Customer,
        conv: Conversation,
        now: float,
    ) -> GraphError | None:
        if template is None and now > max(conv.window_until, conv.entry_point_until):
            return GraphError(
                131047,
                "Message failed to send because more than 24 hours have passed since the "
                "customer last replied to this number.",
            )
        marketing = template is not None and template.category == "MARKETING"
        if marketing and customer.marketing_opt_out:
            return GraphError(131050, "The user has stopped receiving marketing messages")
        if marketing and customer.marketing_capped:
            return GraphError(
                131049,
                "This message was not delivered to maintain healthy ecosystem engagement "
                "(per-user marketing limit)",
            )
        if customer.delivery == "fail":
            return GraphError(131026, "Message undeliverable: the recipient cannot receive it")
        return None

    def _pricing(self, template: Template | None, conv: Conversation, now: float) -> dict[str, Any]:
        category = template.category.lower() if template else "service"
        if now <= conv.entry_point_until:
            kind = "free_entry_point"
        elif template is None or (category == "utility" and now <= conv.window_until):
            kind = "free_customer_service"
        else:
            kind = "regular"
        return {
            "billable": kind == "regular",
            "pricing_model": "PMP",
            "type": kind,
            "category": category,
        }

    def _schedule_statuses(
        self,
        number: Number,
        customer: Customer,
        msg: ChatMessage,
        pricing: dict[str, Any],
        failure: GraphError | None,
    ) -> None:
        if failure is not None:
            msg.error = failure.webhook_error()
            self.later(0, lambda: self._emit_status(number, customer, msg, "failed", pricing))
            return
        steps = {"read": 3, "delivered": 2, "sent": 1}.get(customer.delivery, 3)
        plan = list(zip(("sent", "delivered", "read"), self.config.status_delays, strict=True))
        if steps == 3 and _is_voice(msg):
            plan.append(("played", plan[2][1] + self.config.played_delay))
            steps = 4
        # Statuses due at the same moment share one timer; due now, they are queued at once.
        for delay, group in itertools.groupby(plan[:steps], key=lambda step: step[1]):
            names = [name for name, _ in group]
            emit = functools.partial(self._emit_statuses, number, customer, msg, names, pricing)
            if delay <= 0:
                emit()
            else:
                self.later(delay, emit)

    def _emit_statuses(
        self,
        number: Number,
        customer: Customer,
        msg: ChatMessage,
        names: list[str],
        pricing: dict[str, Any],
    ) -> None:
        for name in names:
            self._emit_status(number, customer, msg, name, pricing)

    def _emit_status(
        self,
        number: Number,
        customer: Customer,
        msg: ChatMessage,
        status: str,
        pricing: dict[str, Any],
    ) -> None:
        msg.status = status
        self.touch()
        waba = self.world.wabas[number.waba_id]
        value = payloads.status_value(
            number, waba, customer, msg, status, self.clock.now(), pricing
        )
        self.sender.emit(waba.id, "messages", value)

    def _apply_reaction(self, payload: dict[str, Any]) -> None:
        target = self.world.messages.get(str(payload.get("message_id")))
        if target is not None:
            target.reaction = payload.get("emoji") or None

    def emit_value(self, number: Number, field: str, value: dict[str, Any]) -> None:
        self.sender.emit(number.waba_id, field, value)

    def new_error(self, code: int, details: str) -> dict[str, Any]:
        return error_item(code, details)

    def new_request_id(self) -> str:
        return secrets.token_hex(12)


def _is_voice(msg: ChatMessage) -> bool:
    """Voice notes (audio sent with `voice: true`) get a `played` status after `read`."""
    audio = msg.content.get("audio") if msg.type == "audio" else None
    return isinstance(audio, dict) and audio.get("voice") is True


def fault_error(fault: SendFault) -> GraphError:
    return GraphError(
        fault.code, fault.details, status=fault.status, subcode=fault.subcode, message=fault.message
    )
