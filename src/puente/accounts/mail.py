"""Outgoing mail (invitations, password resets). Every message is stored; with
PUENTE_SMTP_URL set it is also sent after the transaction commits, otherwise the
/dev/mail page shows it (the demo and tests)."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import OutgoingMail
from puente.config import Settings
from puente.db.base import utcnow
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
    with db.unit_of_work() as session:
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
