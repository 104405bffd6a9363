"""Embedded Signup emulation: coexistence onboarding confirmed on the simulated phone, new
numbers, and the 30-second code exchanged at `/oauth/access_token` for a business token."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from puente.sandbox.errors import GraphError, invalid
from puente.sandbox.state import Signup

if TYPE_CHECKING:
    from puente.sandbox.engine import Sandbox


class SignupError(ValueError):
    """The simulated signup cannot go on (control API and pages answer 4xx)."""


def do_start_signup(sb: Sandbox, mode: str, phone: str, business_name: str | None = None) -> Signup:
    if mode not in ("coexistence", "new"):
        raise SignupError("mode must be coexistence or new")
    if not phone.isdigit() or not 8 <= len(phone) <= 15:
        raise SignupError("phone must be a number in international format, digits only")
    existing = next((n for n in sb.world.numbers.values() if n.display_phone_number == phone), None)
    with sb.store.lock:
        if mode == "new":
            if existing is not None:
                raise SignupError(f"{phone} is already registered; use coexistence onboarding")
            number = sb.do_create_number(
                phone, verified_name=business_name or "Negocio nuevo", coexistence=False
            )
        else:
            number = existing or sb.do_create_number(
                phone,
                verified_name=business_name or "Negocio en la app",
                coexistence=True,
                connection="app_only",
                history_sharing="undecided",
            )
            if not number.coexistence:
                raise SignupError(f"{phone} is a Cloud API number, not a Business app number")
        item = Signup(
            id=secrets.token_hex(8),
            mode=mode,
            phone=phone,
            confirm_code=f"{secrets.randbelow(10**6):06d}",
            created=sb.clock.now(),
            waba_id=number.waba_id,
            number_id=number.id,
        )
        sb.world.signups[item.id] = item
        if mode == "new":
            _finish(sb, item)
    return item


def pending_for_number(sb: Sandbox, number_id: str) -> list[Signup]:
    return [s for s in sb.world.signups.values() if s.number_id == number_id and not s.confirmed]


def do_confirm_signup(
    sb: Sandbox, signup_id: str, confirm_code: str, share_history: bool
) -> Signup:
    """The owner types the code shown by signup into the Business app and chooses about history."""
    item = sb.world.signups.get(signup_id)
    if item is None:
        raise SignupError("unknown signup")
    if item.confirmed:
        raise SignupError("this signup is already confirmed")
    if confirm_code.strip() != item.confirm_code:
        raise SignupError("the code does not match the one shown on the signup page")
    number = sb.world.numbers[str(item.number_id)]
    with sb.store.lock:
        number.connection = "connected"
        number.onboarded_at = sb.clock.now()
        number.syncs = {}  # one sync of each type per onboarding
        number.history_pending = False
        number.history_sharing = "accepted" if share_history else "declined"
        item.share_history = share_history
        _finish(sb, item)
    return item


def _finish(sb: Sandbox, item: Signup) -> None:
    item.confirmed = True
    item.code = "AQ" + secrets.token_urlsafe(24)
    item.code_expires = sb.clock.now() + sb.config.signup_code_ttl


def session_info(item: Signup) -> dict[str, Any] | None:
    if not item.confirmed:
        return None
    if item.mode == "coexistence":
        return {
            "data": {"waba_id": item.waba_id},
            "type": "WA_EMBEDDED_SIGNUP",
            "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
            "version": 3,
        }
    return {
        "data": {"phone_number_id": item.number_id, "waba_id": item.waba_id},
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "FINISH",
        "version": 3,
    }


def signup_view(item: Signup) -> dict[str, Any]:
    return {
        "id": item.id,
        "mode": item.mode,
        "phone": item.phone,
        "confirmed": item.confirmed,
        "confirm_code": item.confirm_code,
        "code": item.code,
        "session_info": session_info(item),
        "waba_id": item.waba_id,
        "phone_number_id": item.number_id,
    }


def do_exchange_code(sb: Sandbox, params: dict[str, str]) -> dict[str, Any]:
    """`GET /oauth/access_token?client_id&client_secret&code`."""
    if params.get("client_id") != sb.config.app_id:
        raise invalid("Error validating application. Invalid application ID.")
    if params.get("client_secret") != sb.config.app_secret:
        raise GraphError(
            1, "Error validating client secret.", message="Error validating client secret."
        )
    code = params.get("code")
    item = next((s for s in sb.world.signups.values() if code and s.code == code), None)
    if item is None or item.code_used:
        raise GraphError(
            100,
            "This authorization code has been used or is invalid.",
            subcode=36009,
            message="This authorization code has been used.",
        )
    if sb.clock.now() > item.code_expires:
        raise GraphError(
            100,
            "The authorization code expired (codes are valid for 30 seconds).",
            subcode=36007,
            message="This authorization code has expired.",
        )
    item.code_used = True
    token = "EAAG" + secrets.token_urlsafe(32)
    sb.world.tokens[token] = [str(item.waba_id)]
    return {"access_token": token, "token_type": "bearer"}
