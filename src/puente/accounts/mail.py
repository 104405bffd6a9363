"""Outgoing mail (invitations, password resets). Every message is stored; with
PUENTE_SMTP_URL set it is also sent after the transaction commits. In development
(PUENTE_DEV_MAIL, which the demo turns on) the /dev/mail page shows it to admins, but
never a single-use link another workspace or an owner relies on."""

from __future__ import annotations

import datetime as dt
import logging
import re
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Membership, OutgoingMail, Role, User
from puente.config import Settings
from puente.db.base import utcnow
from puente.db.scope import unscoped
from puente.db.session import Database, on_commit

log = logging.getLogger(__name__)


def do_queue_mail(
    session: Session,
    db: Database | None,
    settings: Settings,
    *,
    workspace_id: int | None,
    to: str,
    subject: str,
    body: str,
) -> OutgoingMail:
    mail = OutgoingMail(workspace_id=workspace_id, to=to, subject=subject, body=body)
    session.add(mail)
    session.flush()
    # The body holds single-use links: log only who it is for and what it is about.
    log.info("mail queued to %s: %s", to, subject)
    if settings.smtp_url and db is not None:
        mail_id = mail.id
        on_commit(session, lambda: _send_stored(db, settings, mail_id))
    return mail


def _send_stored(db: Database, settings: Settings, mail_id: int) -> None:
    with db.unit_of_work(unscoped="sending a stored mail by its id") as session:
        mail = session.get(OutgoingMail, mail_id)
        if mail is None:
            return
        try:
            send_smtp(settings, to=mail.to, subject=mail.subject, body=mail.body)
            mail.sent_at = utcnow()
        except (OSError, smtplib.SMTPException) as exc:
            mail.error = str(exc)[:500]
            log.warning("mail %s to %s failed: %s", mail_id, mail.to, exc)


def send_smtp(settings: Settings, *, to: str, subject: str, body: str) -> None:
    """Send through PUENTE_SMTP_URL: smtp://user:pass@host:port or smtps://... (implicit TLS);
    smtp:// upgrades with STARTTLS when the server offers it."""
    assert settings.smtp_url
    url = urlsplit(settings.smtp_url)
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    host = url.hostname or "localhost"
    if url.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, url.port or 465, timeout=20)
    else:
        client = smtplib.SMTP(host, url.port or 25, timeout=20)
    with client:
        if url.scheme != "smtps" and client.has_extn("starttls"):
            client.starttls()
        if url.username:
            client.login(unquote(url.username), unquote(url.password or ""))
        client.send_message(msg)


def list_mail(session: Session, workspace_id: int, limit: int = 50) -> list[OutgoingMail]:
    query = (
        select(OutgoingMail)
        .where(OutgoingMail.workspace_id == workspace_id)
        .order_by(OutgoingMail.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


# A single-use link in a mail body: an invitation or a password reset.
_SINGLE_USE_LINK = re.compile(r"\S*/(?:invite|reset)/\S+")


@dataclass(frozen=True)
class ShownMail:
    """A kept mail as the /dev/mail page may show it."""

    to: str
    subject: str
    body: str
    created_at: dt.datetime
    sent_at: dt.datetime | None
    link_withheld: bool


def list_mail_for_viewer(
    session: Session, workspace_id: int, viewer_email: str, limit: int = 50
) -> list[ShownMail]:
    """The workspace's kept mail, with every single-use link taken out unless the viewer is
    its recipient or the recipient is nobody an admin here could not manage anyway: an
    owner anywhere, or a member of any other workspace, keeps their link to themselves.
    Otherwise a reset link for the owner, or for someone who is an admin elsewhere,
    would let an admin here sign in as them."""
    mails = list_mail(session, workspace_id, limit)
    guarded = _guarded_recipients(session, {m.to for m in mails}, workspace_id)
    shown = []
    for m in mails:
        withhold = (
            m.to in guarded and m.to != viewer_email and bool(_SINGLE_USE_LINK.search(m.body))
        )
        body = _SINGLE_USE_LINK.sub("…", m.body) if withhold else m.body
        shown.append(ShownMail(m.to, m.subject, body, m.created_at, m.sent_at, withhold))
    return shown


def _guarded_recipients(session: Session, emails: set[str], workspace_id: int) -> set[str]:
    if not emails:
        return set()
    with unscoped(session, "whether another workspace relies on these people"):
        rows = session.execute(
            select(User.email, Membership.workspace_id, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(User.email.in_(emails))
        ).all()
    return {
        email
        for email, member_of, role in rows
        if member_of != workspace_id or role == Role.OWNER.value
    }
