"""Passwords (argon2id), TOTP two-factor codes, recovery codes and login throttling."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time

import pyotp
from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from puente.accounts.models import LoginAttempt, RecoveryCode, User
from puente.db.base import utcnow
from puente.errors import InvalidInput
from puente.secrets import SecretBox

# argon2id with RFC 9106's low-memory profile (argon2-cffi's default): about 0.25 s of CPU
# per hash on our machines, which is the point in production.
PRODUCTION_PROFILE = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(PRODUCTION_PROFILE)
# Verified against when the address is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("puente-no-such-user")


def use_hash_profile(profile: Parameters) -> None:
    """Hash with another argon2 profile from now on in this process. Only the test suite
    calls it (with argon2's cheapest profile): at production cost, hashing the passwords
    of test users was almost half of the web tests' time. Hashes keep their parameters,
    so a hash made with one profile still verifies under the other."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher.from_parameters(profile)
    _DUMMY_HASH = _hasher.hash("puente-no-such-user")


MIN_PASSWORD_LENGTH = 10
# Lockout: this many failures for one address within the window locks it for the window.
MAX_FAILURES_PER_EMAIL = 5
# Throttle: this many failures from one IP address within the window blocks that address.
MAX_FAILURES_PER_IP = 30
LOCKOUT_WINDOW = dt.timedelta(minutes=15)
RECOVERY_CODE_COUNT = 10


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        params = {"n": MIN_PASSWORD_LENGTH}
        raise InvalidInput(
            "the password needs at least %(n)s characters" % params,  # noqa: UP031 (catalogue text)
            details={"template": "the password needs at least %(n)s characters", "params": params},
        )
    if len(password) > 1024:
        raise InvalidInput("the password is too long")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """True when the password matches; upgrades the stored hash if parameters changed."""
    stored = user.password_hash if user is not None and user.password_hash else None
    try:
        ok = _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    if stored is None or user is None:
        return False
    if ok and _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return ok


# --- TOTP -------------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str, issuer: str = "Puente") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def totp_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step (30 s counter) whose code this is, or None when it matches none.
    One step of drift either way covers phones whose clocks are a little off."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if at is None else at
    current = totp.timecode(now)
    for step in (current + 1, current, current - 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def do_spend_totp_step(session: Session, user: User, step: int) -> bool:
    """Record `step` as the user's last accepted code; False when a code of this step or a
    later one was accepted already (a replay). The conditional update makes two requests
    racing with the same code agree: only one of them changes the row."""
    result = session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return bool(getattr(result, "rowcount", 0))


def user_totp_secret(box: SecretBox, user: User) -> str | None:
    return box.decrypt(user.totp_secret_encrypted) if user.totp_secret_encrypted else None


def do_issue_recovery_codes(session: Session, user: User) -> list[str]:
    """Replace the user's recovery codes; the plain codes are shown once."""
    session.query(RecoveryCode).filter(RecoveryCode.user_id == user.id).delete()
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODE_COUNT)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=sha256_hex(c)) for c in codes)
    session.flush()
    return codes


def do_use_recovery_code(session: Session, user: User, code: str) -> bool:
    digest = sha256_hex(code.strip().lower())
    row = session.scalar(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == digest,
            RecoveryCode.used_at.is_(None),
        )
    )
    if row is None:
        return False
    # The update guards against two requests spending the same code at once.
    result = session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def remaining_recovery_codes(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


# --- Throttling --------------------------------------------------------------------------


def lockout_remaining(session: Session, email: str, ip: str | None) -> dt.timedelta | None:
    """How long this address (or IP) stays locked out, or None when it may try."""
    now = utcnow()
    since = now - LOCKOUT_WINDOW
    fails = session.scalars(
        select(LoginAttempt.at)
        .where(
            LoginAttempt.email == email.lower(),
            LoginAttempt.at >= since,
            LoginAttempt.succeeded.is_(False),
        )
        .order_by(LoginAttempt.at.desc())
        .limit(MAX_FAILURES_PER_EMAIL)
    ).all()
    if len(fails) >= MAX_FAILURES_PER_EMAIL:
        return max(fails[-1] + LOCKOUT_WINDOW - now, dt.timedelta(seconds=1))
    if ip:
        ip_fails = session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(
                LoginAttempt.ip == ip,
                LoginAttempt.at >= since,
                LoginAttempt.succeeded.is_(False),
            )
        )
        if (ip_fails or 0) >= MAX_FAILURES_PER_IP:
            return LOCKOUT_WINDOW
    return None


def do_record_attempt(session: Session, email: str, ip: str | None, *, succeeded: bool) -> None:
    session.add(LoginAttempt(email=email.lower()[:320], ip=ip, succeeded=succeeded))
    if succeeded:
        # A successful login clears the address's failures so it is not locked later
        # by failures the rightful owner already recovered from.
        session.query(LoginAttempt).filter(
            LoginAttempt.email == email.lower(), LoginAttempt.succeeded.is_(False)
        ).delete()
    session.flush()
