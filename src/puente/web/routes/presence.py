"""How a browser tells Puente its person is there: each open tab's event stream beats
(`tab_alive`), and static/presence.js reports activity at most once a minute."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from puente.accounts.models import User
from puente.accounts.presence import SEEN_EVERY, do_report_activity, do_see_tab
from puente.db.base import utcnow
from puente.runtime import Runtime
from puente.web.deps import DbDep, Member

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


@router.post("/me/active", status_code=204)
def report_active(session: DbDep, me: Member) -> Response:
    do_report_activity(session, me.user, utcnow())
    return Response(status_code=204)


async def tab_alive(
    request: Request, workspace_id: int, user_id: int, *, opening: bool = False
) -> None:
    """Called by the inbox stream as it opens and as it runs: records that the person has
    a tab open. A tab opening always does (it may bring someone back from offline); a
    running one at most once per `SEEN_EVERY` for all their tabs in this process."""
    beats: dict[int, float] | None = getattr(request.app.state, "tab_beats", None)
    if beats is None:
        beats = request.app.state.tab_beats = {}
    now = time.monotonic()
    if not opening and now - beats.get(user_id, float("-inf")) < SEEN_EVERY.total_seconds():
        return
    beats[user_id] = now
    runtime: Runtime = request.app.state.runtime
    try:
        await run_in_threadpool(_see_tab, runtime, workspace_id, user_id)
    except Exception:
        # The stream goes on; the next beat tries again.
        beats.pop(user_id, None)
        log.exception("could not record that user %s has a tab open", user_id)


def _see_tab(runtime: Runtime, workspace_id: int, user_id: int) -> None:
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        user = session.get(User, user_id)
        if user is not None:
            do_see_tab(session, user, utcnow())
