"""The notification bell's own requests: the unread count and marking one read."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from puente.conversations import notifications
from puente.web.deps import DbDep
from puente.web.inbox.common import Viewer, done

router = APIRouter(include_in_schema=False)


@router.get("/inbox/notifications/count")
def notification_count(request: Request, session: DbDep, me: Viewer) -> Response:
    count = notifications.unread_count(session, me.workspace.id, me.user.id)
    return JSONResponse({"unread": count}, headers={"Cache-Control": "no-store"})


@router.post("/inbox/notifications/{notification_id}/read")
def read_notification(
    request: Request, session: DbDep, me: Viewer, notification_id: int
) -> Response:
    notifications.do_read_notification(session, me.actor, notification_id)
    return done(request, "/inbox")
