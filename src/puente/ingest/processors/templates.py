"""Processor for the `message_template_status_update` webhook field (protocol §9)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from puente.db.base import utcnow
from puente.events import TemplateStatusChanged, publish
from puente.ingest.processors import ChangeRef, UnknownChannel
from puente.outbound.models import MessageTemplate
from puente.outbound.templates.service import apply_template_status_event, workspaces_of_waba
from puente.runtime import Runtime
from puente.whatsapp.webhooks import TemplateStatusValue


def apply_template_status(session: Session, runtime: Runtime, change: ChangeRef) -> None:
    """Move the template to the status Meta reports, in every workspace using the WABA.

    Account-level fields carry no metadata: `entry[].id` is the WABA, or for some partner
    events the partner's business with the WABA in `value.waba_info.waba_id` (§1, M).
    """
    # Its shape is checked like every other field's: a malformed one fails the change by name.
    TemplateStatusValue.model_validate(change.value)
    waba_info = change.value.get("waba_info")
    candidates = [change.waba_id]
    if isinstance(waba_info, dict) and waba_info.get("waba_id"):
        candidates.append(str(waba_info["waba_id"]))
    at = (
        dt.datetime.fromtimestamp(change.entry_time, dt.UTC)
        if change.entry_time is not None
        else utcnow()
    )
    for waba_id in candidates:
        if not waba_id:
            continue
        workspace_ids = workspaces_of_waba(session, waba_id)
        if workspace_ids:
            for workspace_id in workspace_ids:
                template = apply_template_status_event(
                    session, workspace_id=workspace_id, waba_id=waba_id, value=change.value, at=at
                )
                if template is not None:
                    _publish(session, template)
            return
    raise UnknownChannel(None, candidates[-1])


def _publish(session: Session, template: MessageTemplate) -> None:
    publish(
        session,
        TemplateStatusChanged(
            workspace_id=template.workspace_id,
            template_id=template.id,
            waba_id=template.waba_id,
            name=template.name,
            language=template.language,
            status=template.status,
            reason=template.status_reason,
            category=template.category,
        ),
    )
