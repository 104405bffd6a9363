"""`puente doctor`: the settings an operator must get right before going live, each
checked and named ok or warn (docs/security.md, "Before going live")."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from puente.config import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    say: str  # one line, never a secret's value

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'warn'}  {self.name}: {self.say}"


def production_checks(settings: Settings) -> list[Check]:
    return [
        _smtp(settings),
        _secret_key(settings),
        _session_secret(settings),
        _cookies(settings),
        _dev_mail(settings),
    ]


def _smtp(settings: Settings) -> Check:
    if not settings.smtp_url:
        return Check(
            "mail",
            False,
            "PUENTE_SMTP_URL is not set: invitations and password resets cannot be mailed",
        )
    url = urlsplit(settings.smtp_url)
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        return Check("mail", False, "PUENTE_SMTP_URL is not smtp://host or smtps://host")
    return Check("mail", True, f"sent through {url.scheme}://{url.hostname}")


def _secret_key(settings: Settings) -> Check:
    if settings.secret_key is None or not settings.secret_key.get_secret_value().strip():
        return Check(
            "secret key",
            False,
            "PUENTE_SECRET_KEY is not set: tokens and two-factor seeds are encrypted with a "
            "key generated into the data directory; set it, and keep a copy apart from backups",
        )
    return Check("secret key", True, "PUENTE_SECRET_KEY is set")


def _session_secret(settings: Settings) -> Check:
    if settings.session_secret is None or not settings.session_secret.get_secret_value().strip():
        return Check(
            "session secret",
            False,
            "PUENTE_SESSION_SECRET is not set: a secret generated into the data directory "
            "signs sessions; set the same one on every web process",
        )
    return Check("session secret", True, "PUENTE_SESSION_SECRET is set")


def _cookies(settings: Settings) -> Check:
    https = settings.base_url.lower().startswith("https://")
    if not https:
        return Check(
            "https",
            False,
            f"PUENTE_BASE_URL is {settings.base_url}: serve Puente over https behind a proxy",
        )
    if not settings.secure_cookies:
        return Check(
            "https",
            False,
            "PUENTE_SECURE_COOKIES is off: session cookies could travel without https",
        )
    return Check("https", True, "an https base URL and secure cookies (with HSTS)")


def _dev_mail(settings: Settings) -> Check:
    if settings.dev_mail:
        return Check(
            "dev mail",
            False,
            "PUENTE_DEV_MAIL is on: /dev/mail shows kept mail to admins; turn it off",
        )
    return Check("dev mail", True, "off (/dev/mail does not exist)")
