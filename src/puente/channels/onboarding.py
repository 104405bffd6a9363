"""Connecting a number through Embedded Signup: the code exchange within its 30 seconds,
the phone number id, the WABA subscription, the coexistence checks (no `/register`), and
the `smb_app_data` sync requests (contacts, then history), each once inside 24 hours.

The same steps run against Meta or the sandbox; in sandbox mode the signup itself is
started and watched through the sandbox's control API, so the page can show the code the
owner confirms on the simulated phone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets as pysecrets
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.channels.models import (
    Channel,
    ChannelMode,
    ChannelSync,
    ConnectionState,
    Onboarding,
    OnboardingMethod,
    OnboardingState,
    SyncRequest,
    SyncRequestState,
)
from puente.channels.service import NewChannel, access_channel, do_create_channel
from puente.channels.sync import do_mark_sync_requested
from puente.config import Settings
from puente.db.base import utcnow
from puente.errors import Conflict, InvalidInput, NotFound, PuenteError
from puente.runtime import Runtime
from puente.whatsapp.client import PhoneNumberInfo, SyncGraphClient
from puente.whatsapp.errors import GraphError, GraphTransportError

CONTACTS = "smb_app_state_sync"
HISTORY = "history"
# Contacts first: history threads then land on contacts that already carry their names.
SYNC_TYPES = (CONTACTS, HISTORY)
SYNC_WINDOW = dt.timedelta(hours=24)
META_GRAPH = "https://graph.facebook.com"
CODE_EXPIRED = 36007
CODE_USED = 36009
NUMBER_FIELDS = ("display_phone_number", "verified_name", "is_on_biz_app", "platform_type")
START_AGAIN = "Start the signup again from the Channels page; Puente uses the new code at once."


class OnboardingFailed(PuenteError):
    """Connecting the number failed; `next_step` tells the person what to do."""

    status_code = 400
    code = "onboarding_failed"

    def __init__(self, message: str, next_step: str, *, meta: dict[str, Any] | None = None):
        super().__init__(message, details={"next_step": next_step, "meta": meta})
        self.next_step = next_step
        self.meta = meta
        self.onboarding_id: int | None = None  # the attempt it is recorded on

    def as_record(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "next_step": self.next_step,
            "meta": self.meta,
        }


class SyncRefused(Conflict):
    code = "sync_refused"


class MetaSyncError(PuenteError):
    status_code = 502
    code = "meta_refused"


@dataclass(frozen=True)
class SignupResult:
    """What the signup page hands the server: the code and the session-info message."""

    method: OnboardingMethod
    code: str
    waba_id: str
    phone_number_id: str | None = None


def is_sandbox(settings: Settings) -> bool:
    return not settings.graph_base_url.rstrip("/").startswith(META_GRAPH)


def graph(settings: Settings, token: str = "") -> SyncGraphClient:
    return SyncGraphClient(settings.graph_base_url, settings.graph_api_version, token)


def access_onboarding(session: Session, workspace_id: int, onboarding_id: int) -> Onboarding:
    row = session.scalar(
        select(Onboarding).where(
            Onboarding.id == onboarding_id, Onboarding.workspace_id == workspace_id
        )
    )
    if row is None:
        raise NotFound(f"no onboarding {onboarding_id} in this workspace")
    return row


def list_onboardings(session: Session, workspace_id: int, limit: int = 20) -> list[Onboarding]:
    return list(
        session.scalars(
            select(Onboarding)
            .where(Onboarding.workspace_id == workspace_id)
            .order_by(Onboarding.id.desc())
            .limit(limit)
        )
    )


def check_channel_room(session: Session, settings: Settings, workspace_id: int) -> None:
    count = len(
        session.scalars(select(Channel.id).where(Channel.workspace_id == workspace_id)).all()
    )
    if count >= settings.max_channels_per_workspace:
        raise Conflict(
            f"this workspace has reached its limit of {settings.max_channels_per_workspace} "
            "numbers (PUENTE_MAX_CHANNELS_PER_WORKSPACE)",
            code="channel_limit",
        )


def _clean_phone(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not 8 <= len(digits) <= 15:
        raise InvalidInput(
            "phone: the number in international format, with country code",
            details=[{"field": "phone", "message": "8 to 15 digits with country code"}],
        )
    return digits


# --- the sandbox's signup, driven through its control API ---------------------------------


def _control(settings: Settings) -> httpx.Client:
    return httpx.Client(base_url=settings.graph_base_url.rstrip("/") + "/_sandbox/api", timeout=15)


def do_start_sandbox_signup(
    session: Session,
    settings: Settings,
    *,
    workspace_id: int,
    method: OnboardingMethod,
    phone: str,
    import_history: bool = True,
    business_name: str | None = None,
    actor: Any = None,
) -> Onboarding:
    """Start a signup on the sandbox; the owner then confirms the code on the phone page."""
    if not is_sandbox(settings):
        raise Conflict("Puente talks to Meta: use the Embedded Signup button", code="not_sandbox")
    check_channel_room(session, settings, workspace_id)
    digits = _clean_phone(phone)
    mode = "coexistence" if method is OnboardingMethod.COEXISTENCE else "new"
    try:
        with _control(settings) as control:
            res = control.post(
                "/signups", json={"mode": mode, "phone": digits, "business_name": business_name}
            )
    except httpx.HTTPError as exc:
        raise Conflict(f"the sandbox does not answer at {settings.graph_base_url}: {exc}") from exc
    if res.status_code >= 400:
        detail = (
            res.json().get("detail")
            if res.headers.get("content-type", "").startswith("application/json")
            else res.text
        )
        raise InvalidInput(f"the signup could not start: {detail}")
    signup = res.json()
    row = Onboarding(
        workspace_id=workspace_id,
        method=method.value,
        state=OnboardingState.WAITING.value,
        import_history=import_history and method is OnboardingMethod.COEXISTENCE,
        phone=digits,
        signup_ref=signup["id"],
        confirm_code=signup["confirm_code"],
        waba_id=signup.get("waba_id"),
        phone_number_id=signup.get("phone_number_id"),
    )
    session.add(row)
    session.flush()
    _audit_start(session, actor, row)
    return row


def _audit_start(session: Session, actor: Any, row: Onboarding) -> None:
    if actor is not None:
        audit.record(
            session,
            workspace_id=row.workspace_id,
            actor=actor,
            action=Action.CHANNEL_ONBOARDING_STARTED,
            target=f"onboarding {row.id}",
            details={"method": row.method},
        )


def advance_sandbox_signup(
    runtime: Runtime, workspace_id: int, onboarding_id: int, actor: Any = None
) -> None:
    """Look at the sandbox signup; once the owner confirmed, exchange its code at once.
    `actor` is who is watching the attempt: the number is connected in their name."""
    with runtime.db.read(scope=workspace_id) as session:
        row = access_onboarding(session, workspace_id, onboarding_id)
        if row.state != OnboardingState.WAITING.value or row.signup_ref is None:
            return
        method, ref = OnboardingMethod(row.method), row.signup_ref
    with _control(runtime.settings) as control:
        res = control.get(f"/signups/{ref}")
    if res.status_code == 404:
        failure = OnboardingFailed("the sandbox no longer knows this signup", START_AGAIN)
        _record_failure(runtime, workspace_id, onboarding_id, failure)
        return
    signup = res.json()
    info = signup.get("session_info")
    if not signup.get("confirmed") or not info:
        return
    data = info.get("data") or {}
    result = SignupResult(
        method=method,
        code=signup["code"],
        waba_id=str(data.get("waba_id") or ""),
        phone_number_id=data.get("phone_number_id"),
    )
    if not _claim(runtime, workspace_id, onboarding_id, OnboardingState.WAITING):
        return  # another request is exchanging this code already
    # A failure is recorded on the onboarding row, which the page shows.
    with contextlib.suppress(OnboardingFailed):
        connect_from_signup(
            runtime,
            workspace_id=workspace_id,
            onboarding_id=onboarding_id,
            signup=result,
            actor=actor,
        )


def watch_onboarding(
    runtime: Runtime, workspace_id: int, onboarding_id: int, actor: Any = None
) -> Onboarding:
    """The attempt as it stands, moved on first where it can (sandbox mode: a signup the
    owner confirmed is connected in `actor`'s name)."""
    if is_sandbox(runtime.settings):
        advance_sandbox_signup(runtime, workspace_id, onboarding_id, actor)
    return _current(runtime, workspace_id, onboarding_id)


def _current(runtime: Runtime, workspace_id: int, onboarding_id: int) -> Onboarding:
    # Read after the steps committed, detached: the caller's own session began before
    # them, and on SQLite it would still see the attempt as it was then.
    with runtime.db.read(scope=workspace_id) as session:
        row = access_onboarding(session, workspace_id, onboarding_id)
        session.expunge(row)
        return row


def _claim(
    runtime: Runtime, workspace_id: int, onboarding_id: int, expected: OnboardingState
) -> bool:
    """Move the attempt to EXCHANGING unless another request did: a code works once."""
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        result = session.execute(
            update(Onboarding)
            .where(Onboarding.id == onboarding_id, Onboarding.state == expected.value)
            .values(state=OnboardingState.EXCHANGING.value)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))


# --- the steps after signup, the same for Meta and the sandbox -----------------------------


def do_begin_signup_finish(
    session: Session,
    settings: Settings,
    *,
    workspace_id: int,
    signup: SignupResult,
    import_history: bool,
    actor: Any = None,
) -> Onboarding:
    """Record an attempt for a signup finished in the browser (real Meta mode)."""
    check_channel_room(session, settings, workspace_id)
    row = Onboarding(
        workspace_id=workspace_id,
        method=signup.method.value,
        state=OnboardingState.EXCHANGING.value,
        import_history=import_history and signup.method is OnboardingMethod.COEXISTENCE,
        waba_id=signup.waba_id,
        phone_number_id=signup.phone_number_id,
    )
    session.add(row)
    session.flush()
    _audit_start(session, actor, row)
    return row


def finish_signup(
    runtime: Runtime,
    *,
    workspace_id: int,
    signup: SignupResult,
    import_history: bool,
    actor: Any = None,
) -> Onboarding:
    """A signup finished in the browser: record the attempt, then connect its number, each
    step committed on its own as Meta answers in between. Returns the connected attempt;
    raises OnboardingFailed, recorded on the attempt (whose id it carries)."""
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        onboarding_id = do_begin_signup_finish(
            session,
            runtime.settings,
            workspace_id=workspace_id,
            signup=signup,
            import_history=import_history,
            actor=actor,
        ).id
    connect_from_signup(
        runtime, workspace_id=workspace_id, onboarding_id=onboarding_id, signup=signup, actor=actor
    )
    return _current(runtime, workspace_id, onboarding_id)


def connect_from_signup(
    runtime: Runtime,
    *,
    workspace_id: int,
    onboarding_id: int,
    signup: SignupResult,
    actor: Any = None,
) -> int:
    """Exchange the code, find and check the number, subscribe, save the channel, then ask
    for the coexistence syncs. Returns the channel id; raises OnboardingFailed (recorded).
    The connection is audited in `actor`'s name (or the system's)."""
    who = audit.actor_ref(actor)  # plain values: the caller's rows belong to its session
    with runtime.db.read(scope=workspace_id) as session:
        row = access_onboarding(session, workspace_id, onboarding_id)
        phone_hint, import_history = row.phone, row.import_history
    try:
        token, number = _meta_steps(runtime.settings, signup, phone_hint)
        channel_id = _save_channel(runtime, workspace_id, onboarding_id, signup, token, number, who)
    except OnboardingFailed as exc:
        _record_failure(runtime, workspace_id, onboarding_id, exc)
        raise
    if signup.method is OnboardingMethod.COEXISTENCE:
        # After the commit above, so the webhooks these requests trigger find the channel.
        for sync_type in SYNC_TYPES:
            if sync_type == HISTORY and not import_history:
                continue
            # A refusal is recorded with Meta's error; the channel page offers a retry.
            with contextlib.suppress(PuenteError):
                do_request_sync(runtime, workspace_id, channel_id, sync_type)
    _release_late_parked(runtime, workspace_id, channel_id)
    return channel_id


def _release_late_parked(runtime: Runtime, workspace_id: int, channel_id: int) -> None:
    """Release once more what was parked for the number. A worker transaction that looked
    the number up just before the channel's commit can still park a change just after it
    (PostgreSQL runs them side by side); by now those transactions are over."""
    from puente.ingest.process import release_parked

    with runtime.db.unit_of_work(scope=workspace_id) as session:
        channel = access_channel(session, workspace_id, channel_id)
        release_parked(session, channel.phone_number_id, channel.waba_id)


def _meta_steps(
    settings: Settings, signup: SignupResult, phone_hint: str | None
) -> tuple[str, PhoneNumberInfo]:
    if not signup.code or not signup.waba_id:
        raise OnboardingFailed(
            "the signup did not finish: Meta sent no code or no WhatsApp Business Account",
            START_AGAIN,
        )
    with graph(settings) as anonymous:
        try:
            token = anonymous.run(
                lambda c: c.exchange_code(
                    app_id=settings.meta_app_id,
                    app_secret=settings.meta_app_secret.get_secret_value(),
                    code=signup.code,
                )
            ).access_token
        except GraphError as exc:
            raise _exchange_failure(exc) from exc
    with graph(settings, token) as client:
        try:
            number = _pick_number(client, signup, phone_hint)
            client.run(lambda c: c.subscribe_app(signup.waba_id))
            checked = client.run(lambda c: c.get_phone_number(number.id, NUMBER_FIELDS))
            number = number.model_copy(
                update={k: v for k, v in checked.model_dump().items() if v is not None}
            )
            if signup.method is OnboardingMethod.COEXISTENCE:
                if checked.is_on_biz_app is False:
                    raise _not_on_app(number)
            else:
                # Coexistence numbers are registered already (and /register would fail);
                # a new number needs it, with a two-step PIN we generate.
                pin = f"{pysecrets.randbelow(10**6):06d}"
                client.run(lambda c: c.register_number(number.id, pin))
        except GraphError as exc:
            raise OnboardingFailed(
                f"Meta refused a step of the connection: {exc.reason}",
                "Check the number in Meta's WhatsApp Manager, then start again.",
                meta=exc.as_dict(),
            ) from exc
    return token, number


def _exchange_failure(exc: GraphError) -> OnboardingFailed:
    meta = exc.as_dict()
    if exc.subcode == CODE_EXPIRED or "expired" in (exc.message or "").lower():
        return OnboardingFailed(
            "Meta's signup code expired before Puente could use it (a code lives 30 seconds).",
            START_AGAIN,
            meta=meta,
        )
    if exc.subcode == CODE_USED:
        return OnboardingFailed(
            "Meta's signup code was already used or is not valid.", START_AGAIN, meta=meta
        )
    if isinstance(exc, GraphTransportError):
        return OnboardingFailed(
            f"Puente could not reach Meta to exchange the code: {exc.message}",
            "Check this server's internet connection, then start again.",
            meta=meta,
        )
    if exc.code == 1 or "client" in (exc.message or "").lower():
        return OnboardingFailed(
            "Meta refused Puente's app credentials.",
            "An administrator sets PUENTE_META_APP_ID and PUENTE_META_APP_SECRET; then start "
            "again.",
            meta=meta,
        )
    return OnboardingFailed(f"Meta refused the code: {exc.reason}", START_AGAIN, meta=meta)


def _pick_number(
    client: SyncGraphClient, signup: SignupResult, phone_hint: str | None
) -> PhoneNumberInfo:
    numbers = client.run(lambda c: c.list_phone_numbers(signup.waba_id))
    if signup.phone_number_id:
        found = [n for n in numbers if n.id == signup.phone_number_id]
    elif phone_hint:
        found = [n for n in numbers if _digits(n.display_phone_number) == phone_hint]
    elif signup.method is OnboardingMethod.COEXISTENCE:
        found = [n for n in numbers if n.is_on_biz_app]
    else:
        found = numbers
    if len(found) != 1:
        raise OnboardingFailed(
            f"Meta's account {signup.waba_id} does not show the number that was signed up "
            f"({len(found)} matching numbers).",
            START_AGAIN,
        )
    if signup.method is OnboardingMethod.COEXISTENCE and found[0].is_on_biz_app is False:
        raise _not_on_app(found[0])
    return found[0]


def _not_on_app(number: PhoneNumberInfo) -> OnboardingFailed:
    return OnboardingFailed(
        f"Meta says +{_digits(number.display_phone_number)} is not on the WhatsApp Business app.",
        "Update the Business app to 2.24.17 or newer and start again, or connect the number "
        "as a new Cloud API number.",
    )


def _digits(value: str | None) -> str:
    return "".join(ch for ch in value or "" if ch.isdigit())


def _save_channel(
    runtime: Runtime,
    workspace_id: int,
    onboarding_id: int,
    signup: SignupResult,
    token: str,
    number: PhoneNumberInfo,
    actor: audit.ActorRef,
) -> int:
    coexistence = signup.method is OnboardingMethod.COEXISTENCE
    try:
        with runtime.db.unit_of_work(scope=workspace_id) as session:
            row = access_onboarding(session, workspace_id, onboarding_id)
            channel = do_create_channel(
                session,
                runtime.settings,
                runtime.secrets,
                workspace_id=workspace_id,
                new=NewChannel(
                    phone_number_id=number.id,
                    waba_id=signup.waba_id,
                    display_phone_number=number.display_phone_number or row.phone or "",
                    access_token=token,
                    name=number.verified_name,
                    mode=ChannelMode.COEXISTENCE if coexistence else ChannelMode.CLOUD_API,
                ),
                actor=actor,
            )
            channel.settings = {**(channel.settings or {}), "import_history": row.import_history}
            # Meta stamps account events in whole seconds: one from the onboarding's own
            # second must not look older than the state recorded here.
            if channel.state_changed_at is not None:
                channel.state_changed_at = channel.state_changed_at.replace(microsecond=0)
            if coexistence and row.import_history:
                channel.connection_state = ConnectionState.SYNCING.value
            row.state = OnboardingState.CONNECTED.value
            row.channel_id = channel.id
            row.phone_number_id = number.id
            row.waba_id = signup.waba_id
            row.finished_at = utcnow()
            return channel.id
    except PuenteError as exc:
        raise OnboardingFailed(
            f"Puente could not save the number: {exc.message}",
            "Free a place or remove the duplicate on the Channels page, then start again.",
        ) from exc


def _record_failure(
    runtime: Runtime, workspace_id: int, onboarding_id: int, failure: OnboardingFailed
) -> None:
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        row = access_onboarding(session, workspace_id, onboarding_id)
        row.state = OnboardingState.FAILED.value
        row.error = failure.as_record()
        row.finished_at = utcnow()
    failure.onboarding_id = onboarding_id


# --- sync requests --------------------------------------------------------------------------

SYNC_LABELS = {CONTACTS: "contacts sync", HISTORY: "history import"}


def sync_requests(session: Session, channel: Channel) -> list[SyncRequest]:
    return list(
        session.scalars(
            select(SyncRequest)
            .where(
                SyncRequest.workspace_id == channel.workspace_id,
                SyncRequest.channel_id == channel.id,
            )
            .order_by(SyncRequest.id)
        )
    )


def sync_window_closes(channel: Channel) -> dt.datetime | None:
    return channel.onboarded_at + SYNC_WINDOW if channel.onboarded_at else None


def check_request_sync(
    session: Session, channel: Channel, sync_type: str, now: dt.datetime
) -> None:
    """Refuse locally what Meta would refuse: a second request, or one after 24 hours."""
    if sync_type not in SYNC_TYPES:
        raise InvalidInput(f"sync_type must be one of {', '.join(SYNC_TYPES)}")
    if channel.mode != ChannelMode.COEXISTENCE.value:
        raise SyncRefused(
            "only numbers connected from the WhatsApp Business app have contacts and history "
            "to sync",
            code="not_coexistence",
        )
    label = SYNC_LABELS[sync_type]
    if sync_type == HISTORY and (channel.settings or {}).get("import_history") is False:
        raise SyncRefused(
            "the history import was skipped at onboarding; importing it now needs "
            "disconnecting the number in the Business app and onboarding it again",
            code="history_skipped",
        )
    for request in sync_requests(session, channel):
        accepted = request.state == SyncRequestState.ACCEPTED.value
        if request.sync_type == sync_type and accepted:
            raise SyncRefused(
                f"the {label} was already requested on {request.requested_at:%Y-%m-%d %H:%M} "
                f"UTC (request id {request.request_id}); Meta allows one per onboarding. To "
                "run it again, disconnect the number in the Business app and onboard it again.",
                code="sync_already_requested",
            )
    closes = sync_window_closes(channel)
    if closes is not None and now > closes:
        raise SyncRefused(
            f"the 24-hour window for the {label} closed on {closes:%Y-%m-%d %H:%M} UTC. To "
            "sync, disconnect the number in the Business app and onboard it again.",
            code="sync_window_closed",
        )


def do_request_sync(
    runtime: Runtime, workspace_id: int, channel_id: int, sync_type: str, actor: Any = None
) -> SyncRequest:
    """Call `smb_app_data` once and record the outcome: the request id, or Meta's error
    (then raise MetaSyncError; the request can be retried while the window is open).
    A person's or token's request (`actor`) is audited; the onboarding's own are not."""
    who = audit.actor_ref(actor) if actor is not None else None
    with runtime.db.read(scope=workspace_id) as session:
        channel = access_channel(session, workspace_id, channel_id)
        check_request_sync(session, channel, sync_type, utcnow())
        token = runtime.secrets.decrypt(channel.access_token_encrypted or "")
        phone_number_id = channel.phone_number_id
    error: dict[str, Any] | None = None
    request_id: str | None = None
    with graph(runtime.settings, token) as client:
        try:
            request_id = client.run(lambda c: c.smb_app_data(phone_number_id, sync_type))
        except GraphError as exc:
            error = exc.as_dict()
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        channel = access_channel(session, workspace_id, channel_id)
        row = SyncRequest(
            workspace_id=workspace_id,
            channel_id=channel_id,
            sync_type=sync_type,
            state=SyncRequestState.FAILED.value if error else SyncRequestState.ACCEPTED.value,
            request_id=request_id,
            error=error,
            requested_at=utcnow(),
        )
        session.add(row)
        if error is None:
            # The answer's webhooks may already be processed (a decline, first chunks):
            # lock the sync row so marking it requested cannot overwrite what they wrote.
            session.execute(
                select(ChannelSync.id).where(ChannelSync.channel_id == channel_id).with_for_update()
            )
            kind = "history" if sync_type == HISTORY else "contacts"
            do_mark_sync_requested(session, channel, kind=kind, request_id=request_id)
        session.flush()
        if who is not None:
            audit.record(
                session,
                workspace_id=workspace_id,
                actor=who,
                action=Action.CHANNEL_SYNC_REQUESTED,
                target=f"channel {channel_id}",
                details={"sync_type": sync_type, "accepted": error is None},
            )
    if error is not None:
        raise MetaSyncError(
            f"Meta refused the {SYNC_LABELS[sync_type]}: {error.get('reason')}",
            details={"sync_request_id": row.id, "meta": error},
        )
    return row


def retryable_syncs(session: Session, channel: Channel, now: dt.datetime) -> list[str]:
    """Sync types that failed (or were never asked) and may be requested now."""
    if channel.mode != ChannelMode.COEXISTENCE.value:
        return []
    requests = sync_requests(session, channel)
    failed = {r.sync_type for r in requests if r.state == SyncRequestState.FAILED.value}
    out = []
    for sync_type in SYNC_TYPES:
        if sync_type not in failed:
            continue
        try:
            check_request_sync(session, channel, sync_type, now)
        except SyncRefused:
            continue
        out.append(sync_type)
    return out
