"""Message templates: created and submitted with Meta's rules checked first, synced from
the WABA, moved through Meta's review lifecycle, previewed with sample values, deleted.

Templates belong to a WhatsApp Business Account (WABA), not to one number: every channel of
that WABA sends them. Graph calls use the access token of one of the WABA's channels.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.channels.models import Channel
from puente.db.base import utcnow
from puente.errors import Conflict, InvalidInput, NotFound, PuenteError
from puente.outbound.models import MessageTemplate, TemplateStatus
from puente.outbound.templates.rules import (
    TemplateProblem,
    normalize_template,
    validate_template,
)
from puente.runtime import BackgroundWorker, Runtime
from puente.whatsapp.client import SyncGraphClient, TemplateInfo
from puente.whatsapp.errors import GraphError

log = logging.getLogger(__name__)

# How often the periodic reconcile re-reads each WABA's templates from Meta, in seconds.
# The status webhook keeps rows current in between; this catches missed webhooks and
# templates made in WhatsApp Manager.
RECONCILE_SECONDS = 3600.0

# Statuses a template can be sent in; Meta refuses the others (132001, 132015, 132016).
SENDABLE = {TemplateStatus.APPROVED}
# Events of `message_template_status_update` (§9) and the status each one leaves.
EVENT_STATUS = {
    "APPROVED": TemplateStatus.APPROVED,
    "PENDING": TemplateStatus.PENDING,
    "REJECTED": TemplateStatus.REJECTED,
    "PAUSED": TemplateStatus.PAUSED,
    "DISABLED": TemplateStatus.DISABLED,
    "FLAGGED": TemplateStatus.FLAGGED,
    "IN_APPEAL": TemplateStatus.IN_APPEAL,
    "REINSTATED": TemplateStatus.APPROVED,
    "LOCKED": TemplateStatus.LOCKED,
    "LIMIT_EXCEEDED": TemplateStatus.LIMIT_EXCEEDED,
    "ARCHIVED": TemplateStatus.ARCHIVED,
    "DELETED": TemplateStatus.DELETED,
    "PENDING_DELETION": TemplateStatus.PENDING_DELETION,
}


class TemplateInvalid(InvalidInput):
    """The template breaks Meta's rules; `details` lists every problem (as the API gives
    them) and `problems` keeps them whole, for the web to show in the reader's language."""

    code = "template_invalid"
    problems: tuple[TemplateProblem, ...] = ()


class MetaRefused(PuenteError):
    """Meta answered a template call with an error."""

    status_code = 502
    code = "meta_refused"


class TemplateNotSendable(PuenteError):
    status_code = 409
    code = "template_not_sendable"


# --- reading ---------------------------------------------------------------------------------


def access_template(session: Session, workspace_id: int, template_id: int) -> MessageTemplate:
    template = session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.id == template_id, MessageTemplate.workspace_id == workspace_id
        )
    )
    if template is None:
        raise NotFound("no template %(id)s in this workspace", params={"id": template_id})
    return template


def list_templates(
    session: Session,
    workspace_id: int,
    *,
    status: str | None = None,
    name: str | None = None,
    language: str | None = None,
    category: str | None = None,
    waba_id: str | None = None,
) -> list[MessageTemplate]:
    query = select(MessageTemplate).where(MessageTemplate.workspace_id == workspace_id)
    if status:
        query = query.where(MessageTemplate.status == status.upper())
    if name:
        query = query.where(MessageTemplate.name == name)
    if language:
        query = query.where(MessageTemplate.language == language)
    if category:
        query = query.where(MessageTemplate.category == category.upper())
    if waba_id:
        query = query.where(MessageTemplate.waba_id == waba_id)
    query = query.order_by(MessageTemplate.name, MessageTemplate.language, MessageTemplate.id)
    return list(session.scalars(query))


def workspace_wabas(session: Session, workspace_id: int) -> list[str]:
    return sorted(
        set(session.scalars(select(Channel.waba_id).where(Channel.workspace_id == workspace_id)))
    )


@dataclass(frozen=True)
class WabaChoice:
    """A WhatsApp Business Account of the workspace, named by the numbers it holds."""

    waba_id: str
    numbers: list[str]  # "Tienda La Esquina (+573001112233)", in connection order


def waba_choices(session: Session, workspace_id: int) -> list[WabaChoice]:
    """The workspace's accounts, the one of its first connected number first: a person
    knows an account by its numbers, not by Meta's id."""
    numbers: dict[str, list[str]] = {}
    for waba, name, phone in session.execute(
        select(Channel.waba_id, Channel.name, Channel.display_phone_number)
        .where(Channel.workspace_id == workspace_id)
        .order_by(Channel.id)
    ).tuples():
        shown = f"+{phone.lstrip('+')}"
        numbers.setdefault(waba, []).append(f"{name} ({shown})" if name else shown)
    return [WabaChoice(waba, names) for waba, names in numbers.items()]


def resolve_waba(session: Session, workspace_id: int, waba_id: str | None) -> str:
    """The WABA a template call is for: the one given, or the workspace's only one."""
    wabas = workspace_wabas(session, workspace_id)
    if waba_id:
        if waba_id not in wabas:
            raise NotFound(
                "no channel of this workspace belongs to WABA %(waba_id)s",
                params={"waba_id": waba_id},
            )
        return waba_id
    if not wabas:
        raise InvalidInput("connect a WhatsApp number first: templates belong to its WABA")
    if len(wabas) > 1:
        raise InvalidInput(
            "this workspace has several WhatsApp Business Accounts; say which (waba_id)",
            details={"waba_ids": wabas},
        )
    return wabas[0]


# --- Graph -----------------------------------------------------------------------------------


GraphFactory = Callable[[Runtime, str], SyncGraphClient]


def _default_graph(runtime: Runtime, access_token: str) -> SyncGraphClient:
    s = runtime.settings
    return SyncGraphClient(s.graph_base_url, s.graph_api_version, access_token)


def graph_for_waba(
    session: Session, runtime: Runtime, workspace_id: int, waba_id: str
) -> SyncGraphClient:
    """A Graph client holding the token of one of the WABA's channels in this workspace."""
    channel = session.scalar(
        select(Channel)
        .where(
            Channel.workspace_id == workspace_id,
            Channel.waba_id == waba_id,
            Channel.access_token_encrypted.is_not(None),
        )
        .order_by(Channel.id)
        .limit(1)
    )
    if channel is None or channel.access_token_encrypted is None:
        raise InvalidInput(
            "no channel of WABA %(waba_id)s has an access token to call Meta with",
            params={"waba_id": waba_id},
        )
    return _default_graph(runtime, runtime.secrets.decrypt(channel.access_token_encrypted))


def _meta_refused(exc: GraphError, template: str) -> MetaRefused:
    """`template` is a msgid with %(reason)s, filled with Meta's reason (scripts/i18n.py
    extracts it)."""
    return MetaRefused(template, params={"reason": exc.reason}, details=exc.as_dict())


# --- creating --------------------------------------------------------------------------------


def check_template(data: Mapping[str, Any]) -> dict[str, Any]:
    """The template normalised for Meta, or TemplateInvalid naming every problem."""
    problems = validate_template(data)
    if problems:
        count = len(problems)
        error = TemplateInvalid(
            f"the template breaks {count} of Meta's rule{'s' if count > 1 else ''}: "
            + "; ".join(f"{p.field}: {p.message}" for p in problems),
            details=[p.as_dict() for p in problems],
        )
        error.problems = tuple(problems)
        raise error
    return _meta_body(normalize_template(data))


def _meta_body(data: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: data[k] for k in ("name", "category", "language", "components") if k in data}
    body["parameter_format"] = data.get("parameter_format") or "positional"
    return body


def do_create_template(
    session: Session,
    runtime: Runtime,
    *,
    workspace_id: int,
    data: Mapping[str, Any],
    waba_id: str | None = None,
    created_by_id: int | None = None,
    submit: bool = True,
    actor: Any = None,
) -> MessageTemplate:
    """Check the template against Meta's rules, submit it to Meta (unless `submit` is
    False, which keeps a local draft) and store it with the status Meta gave. Audited
    when a person or token (`actor`) creates it."""
    body = check_template(data)
    waba = resolve_waba(session, workspace_id, waba_id)
    existing = session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.workspace_id == workspace_id,
            MessageTemplate.waba_id == waba,
            MessageTemplate.name == body["name"],
            MessageTemplate.language == body["language"],
        )
    )
    if existing is not None and existing.status != TemplateStatus.DRAFT:
        raise Conflict(
            "a template '%(name)s' in %(language)s exists already (status %(status)s);"
            " use another name or delete it first",
            params={"name": body["name"], "language": body["language"], "status": existing.status},
            details={"existing_id": existing.id},
        )
    template = existing or MessageTemplate(
        workspace_id=workspace_id,
        waba_id=waba,
        name=body["name"],
        language=body["language"],
        created_by_id=created_by_id,
    )
    template.category = body["category"]
    template.parameter_format = body["parameter_format"]
    template.components = body["components"]
    template.status = TemplateStatus.DRAFT.value
    if submit:
        with graph_for_waba(session, runtime, workspace_id, waba) as graph:
            try:
                created = graph.run(lambda c: c.create_template(waba, body))
            except GraphError as exc:
                raise _meta_refused(exc, "Meta refused to create the template: %(reason)s") from exc
        template.meta_id = created.id
        template.status = (created.status or TemplateStatus.PENDING.value).upper()
        # Meta may file the template under another category than asked (§9).
        template.category = (created.category or template.category).upper()
        template.status_changed_at = utcnow()
    session.add(template)
    session.flush()
    _audit(session, actor, template, Action.TEMPLATE_CREATED)
    return template


def _audit(session: Session, actor: Any, template: MessageTemplate, action: str) -> None:
    if actor is None:
        return
    audit.record(
        session,
        workspace_id=template.workspace_id,
        actor=actor,
        action=action,
        target=f"template {template.id}",
        details={"name": template.name, "language": template.language, "status": template.status},
    )


def do_submit_template(
    session: Session, runtime: Runtime, template: MessageTemplate, actor: Any = None
) -> MessageTemplate:
    """Submit a local draft to Meta."""
    if template.status != TemplateStatus.DRAFT:
        raise Conflict(
            "template %(id)s was submitted already (status %(status)s)",
            params={"id": template.id, "status": template.status},
        )
    submitted = do_create_template(
        session,
        runtime,
        workspace_id=template.workspace_id,
        waba_id=template.waba_id,
        data=template_body(template),
    )
    _audit(session, actor, submitted, Action.TEMPLATE_SUBMITTED)
    return submitted


def template_body(template: MessageTemplate) -> dict[str, Any]:
    return {
        "name": template.name,
        "language": template.language,
        "category": template.category,
        "parameter_format": template.parameter_format,
        "components": template.components,
    }


# --- deleting --------------------------------------------------------------------------------


def do_delete_template(
    session: Session, runtime: Runtime, template: MessageTemplate, actor: Any = None
) -> None:
    """Delete one language variant at Meta (by name and hsm_id) and here."""
    if template.meta_id is not None:
        with graph_for_waba(session, runtime, template.workspace_id, template.waba_id) as graph:
            try:
                graph.run(
                    lambda c: c.delete_template(
                        template.waba_id, name=template.name, hsm_id=template.meta_id
                    )
                )
            except GraphError as exc:
                raise _meta_refused(exc, "Meta refused to delete the template: %(reason)s") from exc
    _audit(session, actor, template, Action.TEMPLATE_DELETED)
    session.delete(template)
    session.flush()


# --- syncing ---------------------------------------------------------------------------------


@dataclass
class SyncResult:
    waba_id: str
    created: int = 0
    updated: int = 0
    removed: int = 0
    names: list[str] = field(default_factory=list)


def do_sync_templates(
    session: Session, runtime: Runtime, *, workspace_id: int, waba_id: str
) -> SyncResult:
    """Make this workspace's templates of `waba_id` match what Meta lists."""
    with graph_for_waba(session, runtime, workspace_id, waba_id) as graph:
        try:
            remote = graph.run(lambda c: c.list_all_templates(waba_id))
        except GraphError as exc:
            raise _meta_refused(exc, "Meta refused to list the templates: %(reason)s") from exc
    return apply_remote_templates(
        session, workspace_id=workspace_id, waba_id=waba_id, remote=remote
    )


def apply_remote_templates(
    session: Session, *, workspace_id: int, waba_id: str, remote: list[TemplateInfo]
) -> SyncResult:
    result = SyncResult(waba_id=waba_id)
    local = {
        (t.name, t.language): t
        for t in session.scalars(
            select(MessageTemplate).where(
                MessageTemplate.workspace_id == workspace_id, MessageTemplate.waba_id == waba_id
            )
        )
    }
    now = utcnow()
    seen: set[tuple[str, str]] = set()
    for info in remote:
        language = info.language or ""
        key = (info.name, language)
        seen.add(key)
        row = local.get(key)
        if row is None:
            row = MessageTemplate(
                workspace_id=workspace_id, waba_id=waba_id, name=info.name, language=language
            )
            session.add(row)
            result.created += 1
        else:
            result.updated += 1
        status = (info.status or TemplateStatus.PENDING.value).upper()
        if row.status != status:
            row.status_changed_at = now
        row.status = status
        row.meta_id = info.id
        row.category = (info.category or row.category or "UTILITY").upper()
        row.parameter_format = (info.parameter_format or "positional").lower()
        row.components = info.components
        extra = info.model_extra or {}
        reason = extra.get("rejected_reason")
        if status == TemplateStatus.REJECTED and reason and reason != "NONE":
            row.status_reason = str(reason)
        elif status == TemplateStatus.APPROVED:
            row.status_reason = None
        quality = extra.get("quality_score")
        if isinstance(quality, Mapping) and quality.get("score"):
            row.quality = str(quality["score"])
        row.last_synced_at = now
        result.names.append(f"{info.name}/{language}")
    # What Meta no longer lists was deleted there (in WhatsApp Manager, say); drafts were
    # never at Meta and stay.
    gone = [t.id for k, t in local.items() if k not in seen and t.meta_id is not None]
    if gone:
        session.execute(delete(MessageTemplate).where(MessageTemplate.id.in_(gone)))
        result.removed = len(gone)
    session.flush()
    return result


def do_sync_workspace(
    session: Session, runtime: Runtime, workspace_id: int, actor: Any = None
) -> list[SyncResult]:
    results = [
        do_sync_templates(session, runtime, workspace_id=workspace_id, waba_id=waba)
        for waba in workspace_wabas(session, workspace_id)
    ]
    if actor is not None:
        audit.record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            action=Action.TEMPLATES_SYNCED,
            target="templates",
            details={
                "created": sum(r.created for r in results),
                "updated": sum(r.updated for r in results),
                "removed": sum(r.removed for r in results),
            },
        )
    return results


# --- status webhook --------------------------------------------------------------------------


def status_reason(value: Mapping[str, Any]) -> str | None:
    """Meta's explanation of a status change, from whichever field carries it."""
    event = str(value.get("event") or "").upper()
    parts: list[str] = []
    rejection = value.get("rejection_info")
    other = value.get("other_info")
    disable = value.get("disable_info")
    reason = value.get("reason")
    if event == "REJECTED" and isinstance(rejection, Mapping):
        parts += [str(rejection.get(k)) for k in ("reason", "recommendation") if rejection.get(k)]
    if isinstance(other, Mapping):
        parts += [str(other.get(k)) for k in ("title", "description") if other.get(k)]
    if reason and reason != "NONE" and str(reason) not in parts:
        parts.insert(0, str(reason))
    if event == "DISABLED" and isinstance(disable, Mapping) and disable.get("disable_date"):
        parts.append(f"disabled on {disable['disable_date']}")
    return ": ".join(parts) if parts else None


def apply_template_status_event(
    session: Session,
    *,
    workspace_id: int,
    waba_id: str,
    value: Mapping[str, Any],
    at: dt.datetime,
) -> MessageTemplate | None:
    """Apply one `message_template_status_update` to the workspace's copy of the template.

    Idempotent, and an event older than the last change applied is ignored, since Meta
    does not promise ordering. A template unknown here (made in WhatsApp Manager) is added
    with what the event says; the next sync fills in its components.
    """
    event = str(value.get("event") or "").upper()
    status = EVENT_STATUS.get(event)
    if status is None:
        log.warning("unknown template status event %r", event)
        return None
    meta_id = str(value.get("message_template_id") or "") or None
    name = str(value.get("message_template_name") or "")
    language = str(value.get("message_template_language") or "")
    row = None
    if meta_id:
        row = session.scalar(
            select(MessageTemplate).where(
                MessageTemplate.workspace_id == workspace_id,
                MessageTemplate.waba_id == waba_id,
                MessageTemplate.meta_id == meta_id,
            )
        )
    if row is None and name:
        row = session.scalar(
            select(MessageTemplate).where(
                MessageTemplate.workspace_id == workspace_id,
                MessageTemplate.waba_id == waba_id,
                MessageTemplate.name == name,
                MessageTemplate.language == language,
            )
        )
    if row is None:
        if not name or status == TemplateStatus.DELETED:
            return None
        row = MessageTemplate(
            workspace_id=workspace_id,
            waba_id=waba_id,
            name=name,
            language=language,
            meta_id=meta_id,
            category=str(value.get("message_template_category") or "UTILITY").upper(),
            components=[],
            parameter_format="positional",
        )
        session.add(row)
    elif row.status_changed_at is not None and at < row.status_changed_at.replace(microsecond=0):
        # Meta's times are whole seconds while ours are not: an approval arriving within
        # the second the template was submitted in is newer, not older.
        return row
    row.meta_id = meta_id or row.meta_id
    row.status = status.value
    row.status_changed_at = at
    reason = status_reason(value)
    if status in (TemplateStatus.APPROVED, TemplateStatus.PENDING):
        row.status_reason = reason if event == "REINSTATED" else None
    else:
        row.status_reason = reason
    category = value.get("message_template_category")
    if category:
        row.category = str(category).upper()
    session.flush()
    return row


def workspaces_of_waba(session: Session, waba_id: str) -> list[int]:
    return sorted(
        set(session.scalars(select(Channel.workspace_id).where(Channel.waba_id == waba_id)))
    )


# --- sending ---------------------------------------------------------------------------------


def find_template(
    session: Session, *, workspace_id: int, name: str, language: str, waba_id: str | None = None
) -> MessageTemplate | None:
    query = select(MessageTemplate).where(
        MessageTemplate.workspace_id == workspace_id,
        MessageTemplate.name == name,
        MessageTemplate.language == language,
    )
    if waba_id:
        query = query.where(MessageTemplate.waba_id == waba_id)
    return session.scalars(query.limit(1)).first()


def check_template_send(
    session: Session,
    *,
    workspace_id: int,
    name: str,
    language: str,
    contact_id: int,
    waba_id: str | None = None,
) -> MessageTemplate | None:
    """The outbox's check before queueing a template message.

    Refuses a template Meta would refuse (known and not approved) and a MARKETING template
    to a contact who opted out. A template Puente has not synced yet is left to Meta.
    """
    from puente.contacts.consent import check_marketing_consent

    template = find_template(
        session, workspace_id=workspace_id, name=name, language=language, waba_id=waba_id
    )
    if template is None:
        return None
    if template.status not in SENDABLE:
        reason = f" ({template.status_reason})" if template.status_reason else ""
        raise TemplateNotSendable(
            "template '%(name)s' (%(language)s) is %(status)s%(reason)s;"
            " only approved templates can be sent",
            params={
                "name": name,
                "language": language,
                "status": template.status.lower(),
                "reason": reason,
            },
            details={"template_id": template.id, "status": template.status},
        )
    if template.category == "MARKETING":
        check_marketing_consent(session, contact_id)
    return template


def check_template_message(
    session: Session, channel: Channel, contact_id: int, template: Mapping[str, Any]
) -> None:
    """The outbox's hook: `check_template_send` for a template message's wire object
    (`{"name", "language": {"code"}, ...}`) about to go out on `channel`."""
    language = template.get("language")
    code = language.get("code") if isinstance(language, Mapping) else language
    check_template_send(
        session,
        workspace_id=channel.workspace_id,
        waba_id=channel.waba_id,
        name=str(template.get("name") or ""),
        language=str(code or ""),
        contact_id=contact_id,
    )


# --- periodic reconcile ----------------------------------------------------------------------


def reconcile_step(runtime: Runtime, last_run: dict[tuple[int, str], float], now: float) -> bool:
    """Sync every (workspace, WABA) whose last sync is older than RECONCILE_SECONDS."""
    with runtime.db.read(unscoped="finding the templates of every workspace to sync") as session:
        pairs = sorted(
            {
                (ws, waba)
                for ws, waba in session.execute(
                    select(Channel.workspace_id, Channel.waba_id).where(
                        Channel.access_token_encrypted.is_not(None)
                    )
                ).tuples()
            }
        )
    did = False
    for ws, waba in pairs:
        if now - last_run.get((ws, waba), float("-inf")) < RECONCILE_SECONDS:
            continue
        last_run[(ws, waba)] = now
        try:
            with runtime.db.unit_of_work(scope=ws) as session:
                do_sync_templates(session, runtime, workspace_id=ws, waba_id=waba)
            did = True
        except Exception:
            # Meta down or a token expired: the next round tries again.
            log.exception("template reconcile failed for workspace %s WABA %s", ws, waba)
    return did


def register(runtime: Runtime) -> None:
    """Add the periodic template reconcile to the process's background workers."""
    import time

    last_run: dict[tuple[int, str], float] = {}

    def step() -> bool:
        reconcile_step(runtime, last_run, time.monotonic())
        return False  # never spin: the next check comes after the idle wait

    runtime.workers.append(BackgroundWorker("templates-reconcile", step, idle_seconds=60.0))
