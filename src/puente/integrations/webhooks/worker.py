"""The outgoing webhooks' worker, on the job module's WEBHOOKS queue: it leases due
deliveries, sends them signed the Standard Webhooks way, and records each try.

How it keeps one receiver from hurting the others:
- Each endpoint's leased deliveries are sent by a small thread pool in at most `LANES`
  lanes side by side, each lane in the order the deliveries were written; the worker never
  leases for an endpoint whose lanes are still running, so a hanging endpoint holds a few
  threads until its requests time out, and nothing else.
- A delivery is never leased while an earlier one of the same endpoint and conversation
  is pending, except together with it, behind it in the same lane (a lane stops at the
  first failure worth retrying and gives the rest back): a receiver gets a conversation's
  deliveries in sequence order, even after it was down for hours.
- The lane that ends an endpoint's batch records it and leases the endpoint's next batch
  in one transaction: on SQLite, where every write waits for the one lock ingest holds
  most of the time, a busy endpoint needs one write per batch.
- Requests have short connect and read timeouts and an overall deadline for the answer,
  follow no redirect (one is a failure), and read at most a kilobyte of the answer
  (`posting.Poster`, over keep-alive connections).

Crash safety: a lease moves `next_attempt_at` ahead; the result is written after the
request. A process that dies mid-send leaves the delivery to come due again when the lease
runs out: the receiver may get it once more, with the same webhook-id, and the delivery
stays one row."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, Text, and_, bindparam, exists, insert, select, tuple_, update
from sqlalchemy import cast as cast_
from sqlalchemy.orm import Session, aliased

import puente.integrations.webhooks.reactions  # noqa: F401  (registers the reactions)
from puente import metrics
from puente.accounts.models import Membership, Role
from puente.conversations.notifications import do_notify
from puente.db.base import utcnow
from puente.db.scope import Unscoped
from puente.db.session import Database
from puente.integrations.webhooks.deliveries import RETRY_FOR
from puente.integrations.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from puente.integrations.webhooks.posting import Poster
from puente.integrations.webhooks.sending import Job, Outcome, Tried, new_client, send_lane
from puente.integrations.webhooks.service import config_of, configure
from puente.jobs import WEBHOOKS, Backoff, Worker, lease
from puente.jobs import install as install_worker
from puente.runtime import Runtime
from puente.secrets import SecretBox

log = logging.getLogger(__name__)

_CLAIM = Unscoped("the webhooks worker sends the due deliveries of every workspace")

POOL_SIZE = 16  # requests in flight at once in one process
LANES = 4  # requests in flight at once to one endpoint (never two of one conversation)
PER_ENDPOINT = 100  # deliveries leased for one endpoint at a time
# Long enough for a batch sent at the deadline's pace to finish: a batch stops and gives
# the rest back once half the lease is spent.
LEASE_SECONDS = 300.0
RETRY = Backoff(base=10.0, ceiling=4 * 3600.0)


# -- leasing --------------------------------------------------------------------------------


def _ready(busy: Sequence[int], only: Sequence[int] = (), endpoint_id: int | None = None) -> Any:
    earlier = aliased(WebhookDelivery)
    table = WebhookDelivery
    conditions = [
        table.state == DeliveryState.PENDING.value,
        exists().where(WebhookEndpoint.id == table.endpoint_id, WebhookEndpoint.enabled.is_(True)),
        ~exists().where(
            earlier.endpoint_id == table.endpoint_id,
            earlier.conversation_id == table.conversation_id,
            earlier.state == DeliveryState.PENDING.value,
            earlier.id < table.id,
        ),
    ]
    if busy:
        conditions.append(table.endpoint_id.not_in(list(busy)))
    if only:
        conditions.append(table.id.in_(list(only)))
    if endpoint_id is not None:
        conditions.append(table.endpoint_id == endpoint_id)
    return and_(*conditions)


def claim(
    db: Database,
    now: dt.datetime,
    *,
    busy: Sequence[int] = (),
    endpoints: int = POOL_SIZE,
    only: Sequence[int] = (),
) -> dict[int, list[Job]]:
    """Lease the due deliveries of up to about `endpoints` endpoints not in `busy` (only
    those of ids `only`, when given), the oldest first; returns them by endpoint, in the
    order to send them."""
    with db.read(unscoped=_CLAIM.reason) as session:
        # A look first, without SQLite's write lock: most polls find nothing due.
        # Nor for endpoints whose batch is still running: every commit wakes the worker.
        look = select(WebhookDelivery.id).where(
            WebhookDelivery.state == DeliveryState.PENDING.value,
            WebhookDelivery.next_attempt_at <= now,
        )
        if busy:
            look = look.where(WebhookDelivery.endpoint_id.not_in(list(busy)))
        if only:
            look = look.where(WebhookDelivery.id.in_(list(only)))
        due = session.scalar(look.limit(1))
    if due is None:
        return {}
    with db.unit_of_work(unscoped=_CLAIM.reason) as session:
        rows = _claim_in(session, now, _ready(busy, only), endpoints * PER_ENDPOINT)
        box = config_of(session).secrets
    return _jobs_of(rows, box)


def _claim_in(session: Session, now: dt.datetime, ready: Any, limit: int) -> list[Any]:
    """Lease what is `ready` and read what sending it needs; the rows are made into jobs
    after the commit (`_jobs_of`): on SQLite this transaction holds the write lock that
    ingest waits for, so it does no more than its statements."""
    table = cast(Table, WebhookDelivery.__table__)
    ids = lease(
        session,
        table,
        ready=ready,
        due=table.c.next_attempt_at,
        order_by=[table.c.id],
        limit=limit,
        seconds=LEASE_SECONDS,
        now=now,
    )
    if not ids:
        return []
    ids += _lease_followers(session, ids, now, limit)
    return _job_rows(session, ids)


def _lease_followers(session: Session, heads: list[int], now: dt.datetime, room: int) -> list[int]:
    """Also lease what follows each leased head in its conversation (due, in order): they
    wait for the head anyway, so no other worker can take them, and sent right after it in
    the same lane a conversation with several new events needs one round, not one each."""
    table = cast(Table, WebhookDelivery.__table__)
    pairs = session.execute(
        select(table.c.endpoint_id, table.c.conversation_id)
        .where(table.c.id.in_(heads), table.c.conversation_id.is_not(None))
        .distinct()
    ).all()
    if not pairs:
        return []
    key = tuple_(table.c.endpoint_id, table.c.conversation_id)
    return lease(
        session,
        table,
        ready=and_(
            table.c.state == DeliveryState.PENDING.value,
            key.in_([tuple(p) for p in pairs]),
        ),
        due=table.c.next_attempt_at,
        order_by=[table.c.id],
        limit=room,
        seconds=LEASE_SECONDS,
        now=now,
    )


def _job_rows(session: Session, ids: list[int]) -> list[Any]:
    d = cast(Table, WebhookDelivery.__table__)
    e = cast(Table, WebhookEndpoint.__table__)
    # The payload as the database keeps it, sent as it is: no decoding and encoding again.
    # Only what sending needs: `give_up_at` is read when a try fails (see _record_in).
    rows = session.connection().execute(
        select(
            d.c.id,
            d.c.workspace_id,
            d.c.endpoint_id,
            d.c.conversation_id,
            d.c.event_id,
            cast_(d.c.payload, Text).label("body"),
            d.c.attempts,
            e.c.url,
            e.c.secret,
        )
        .join(e, e.c.id == d.c.endpoint_id)
        .where(d.c.id.in_(ids))
        .order_by(d.c.id)
    )
    return list(rows.tuples())


def _jobs_of(rows: list[Any], box: SecretBox) -> dict[int, list[Job]]:
    """The leased rows as jobs, by endpoint, in the order to send them."""
    secrets: dict[int, str] = {}
    by_endpoint: dict[int, list[Job]] = {}
    for (
        id_,
        workspace_id,
        endpoint_id,
        conversation_id,
        event_id,
        body,
        attempts,
        url,
        secret,
    ) in rows:
        if endpoint_id not in secrets:
            secrets[endpoint_id] = box.decrypt(secret)
        job = Job(
            id_,
            workspace_id,
            endpoint_id,
            conversation_id,
            url,
            secrets[endpoint_id],
            event_id,
            body,
            attempts,
        )
        by_endpoint.setdefault(endpoint_id, []).append(job)
    return by_endpoint


def release(db: Database, jobs: Sequence[Job], now: dt.datetime) -> None:
    """Give leased deliveries back, due now (a batch that stopped early)."""
    if not jobs:
        return
    with db.unit_of_work(unscoped=_CLAIM.reason) as session:
        _release(session, jobs, now)


def _release(session: Session, jobs: Sequence[Job], now: dt.datetime) -> None:
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id.in_([j.delivery_id for j in jobs]),
            WebhookDelivery.state == DeliveryState.PENDING.value,
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )


# -- recording -------------------------------------------------------------------------------


def record(
    db: Database,
    results: Sequence[tuple[Job, Outcome, dt.datetime]],
    rest: Sequence[Job] = (),
    now: dt.datetime | None = None,
) -> None:
    """Write the tries of one endpoint's batch and move each delivery on: delivered,
    failed, or due again after the backoff; give the batch's unsent `rest` back, due
    `now`. Updates the endpoint's failure streak and switches it off once it has failed
    for three days. One transaction."""
    tries = _Tries.of(results)
    with db.unit_of_work(unscoped=_CLAIM.reason) as session:
        _record_in(session, tries, rest, now or utcnow())


def record_and_claim(
    db: Database,
    endpoint_id: int,
    results: Sequence[tuple[Job, Outcome, dt.datetime]],
    rest: Sequence[Job],
    now: dt.datetime,
    *,
    claim_next: bool = True,
) -> list[Job]:
    """`record`, then lease the endpoint's next due deliveries in the same transaction (one
    write instead of two: on SQLite every write waits for the one lock ingest also wants)."""
    tries = _Tries.of(results)
    with db.unit_of_work(unscoped=_CLAIM.reason) as session:
        _record_in(session, tries, rest, now)
        if not claim_next:
            return []
        rows = _claim_in(session, now, _ready((), (), endpoint_id), LANES * PER_ENDPOINT)
        box = config_of(session).secrets
    return _jobs_of(rows, box).get(endpoint_id, [])


@dataclass
class _Tries:
    """A batch's tries made ready to write before the transaction opens. On SQLite the
    transaction takes the write lock at its start (BEGIN IMMEDIATE) and holds it to the
    commit, while ingest waits for it: whatever can be worked out before is."""

    endpoint_id: int | None
    attempts: list[dict[str, Any]]  # the WebhookAttempt rows
    moved: list[dict[str, Any]]  # each delivery's columns after its try (see _moved_on)
    retried: list[int]  # positions of the tries that failed in a way worth retrying
    any_ok: bool
    first_at: dt.datetime | None
    last_at: dt.datetime | None

    @classmethod
    def of(cls, results: Sequence[tuple[Job, Outcome, dt.datetime]]) -> _Tries:
        metrics.count_deliveries((o.ok, o.status_code, o.error) for _, o, _ in results)
        attempts = [
            {
                "workspace_id": job.workspace_id,
                "delivery_id": job.delivery_id,
                "at": at,
                "status_code": outcome.status_code,
                "duration_ms": outcome.duration_ms,
                "response_excerpt": outcome.excerpt,
                "error": outcome.error,
            }
            for job, outcome, at in results
        ]
        moved = [_moved_on(job, o, at) for job, o, at in results]
        retried = [n for n, (_, o, _) in enumerate(results) if o.retry and not o.ok]
        times = [at for _, _, at in results]
        return cls(
            endpoint_id=results[0][0].endpoint_id if results else None,
            attempts=attempts,
            moved=moved,
            retried=retried,
            any_ok=any(o.ok for _, o, _ in results),
            first_at=min(times, default=None),
            last_at=max(times, default=None),
        )


def _record_in(session: Session, tries: _Tries, rest: Sequence[Job], now: dt.datetime) -> None:
    if rest:
        _release(session, rest, now)
    if tries.endpoint_id is None or tries.last_at is None or tries.first_at is None:
        return
    _record_all(session, tries)
    endpoint = session.get(WebhookEndpoint, tries.endpoint_id)
    if endpoint is None:
        return
    if tries.any_ok:
        endpoint.failing_since = None
    elif endpoint.failing_since is None:
        endpoint.failing_since = tries.first_at
    if (
        endpoint.enabled
        and endpoint.failing_since is not None
        and tries.last_at - endpoint.failing_since >= RETRY_FOR
    ):
        disable(session, endpoint, tries.last_at)
    session.flush()  # before a lease in the same transaction reads `enabled`


def _record_all(session: Session, tries: _Tries) -> None:
    # Two statements for the whole batch (an INSERT and an UPDATE, each executemany), and
    # a read of the give-up times when some try failed in a way worth retrying.
    session.execute(insert(cast(Table, WebhookAttempt.__table__)), tries.attempts)
    if tries.retried:
        ids = [tries.moved[n]["b_id"] for n in tries.retried]
        give_up = _give_up_times(session, ids)
        for n in tries.retried:
            moved = tries.moved[n]
            until = give_up.get(moved["b_id"])
            if until is not None and tries.attempts[n]["at"] >= until:
                moved.update(b_state=DeliveryState.FAILED.value, b_next=None)
    table = cast(Table, WebhookDelivery.__table__)
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            attempts=bindparam("b_attempts"),
            last_status_code=bindparam("b_status"),
            last_error=bindparam("b_error"),
            state=bindparam("b_state"),
            next_attempt_at=bindparam("b_next"),
            delivered_at=bindparam("b_delivered"),
        )
    )
    session.connection().execute(stmt, tries.moved)


def _give_up_times(session: Session, ids: list[int]) -> dict[int, dt.datetime | None]:
    """When each of these deliveries stops being retried; read only for the tries that
    failed in a way worth retrying (most tries succeed: no need to read it for them)."""
    if not ids:
        return {}
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.give_up_at).where(WebhookDelivery.id.in_(ids))
    )
    return {id_: at for id_, at in rows.tuples()}


def _moved_on(job: Job, outcome: Outcome, at: dt.datetime) -> dict[str, Any]:
    """The delivery's columns after this try: delivered, failed, or due after the backoff
    (failed instead once past its give-up time, which `_record_all` checks)."""
    attempts = job.attempts + 1
    values: dict[str, Any] = {
        "b_id": job.delivery_id,
        "b_attempts": attempts,
        "b_status": outcome.status_code,
        "b_error": outcome.error,
        "b_state": DeliveryState.PENDING.value,
        "b_next": None,
        "b_delivered": None,
    }
    if outcome.ok:
        values.update(b_state=DeliveryState.DELIVERED.value, b_delivered=at)
    elif outcome.retry:
        values["b_next"] = at + dt.timedelta(seconds=RETRY.delay(attempts))
    else:
        values["b_state"] = DeliveryState.FAILED.value
    return values


DISABLED_REASON = "failing for 3 days"


def disable(session: Session, endpoint: WebhookEndpoint, now: dt.datetime) -> None:
    """Switch an endpoint off after three days of failures and tell the workspace's admins
    in the app. Its pending deliveries wait: switched on again, it gets them."""
    endpoint.enabled = False
    endpoint.disabled_reason = DISABLED_REASON
    endpoint.updated_at = now
    admins = session.scalars(
        select(Membership.user_id).where(
            Membership.workspace_id == endpoint.workspace_id,
            Membership.role.in_([Role.OWNER.value, Role.ADMIN.value]),
            Membership.is_active.is_(True),
        )
    ).all()
    # The headline is the template's, in each admin's language; the text names the URL.
    text = endpoint.url
    for user_id in admins:
        do_notify(
            session,
            workspace_id=endpoint.workspace_id,
            user_id=user_id,
            kind="webhook",
            conversation_id=None,
            actor_id=None,
            text=text,
        )
    log.warning("webhook endpoint %s disabled after 3 days of failures", endpoint.id)


# -- one endpoint's batch, and the worker ---------------------------------------------------


def run_batch(
    db: Database,
    client: Poster,
    jobs: Sequence[Job],
    *,
    allow_private: bool,
    now: Callable[[], dt.datetime] = utcnow,
) -> int:
    """Send one endpoint's leased deliveries in order and record them. It stops at the
    first failure worth retrying (the endpoint is down or slow: the others wait for their
    own turn) or when half the lease is spent, and gives the rest back. Returns how many
    were delivered."""
    results, rest = send_lane(
        client, jobs, allow_private=allow_private, budget=LEASE_SECONDS / 2, now=now
    )
    record(db, results, rest, now())
    return sum(1 for _, o, _ in results if o.ok)


def deliver_due(
    db: Database,
    *,
    now: dt.datetime | None = None,
    client: Poster | None = None,
    only: Sequence[int] = (),
) -> int:
    """Lease and send everything due at `now` (or only the deliveries of ids `only`), one
    endpoint after another, in this thread (tests, the CLI, the demo: time is driven by
    `now`). Returns how many were delivered."""
    moment = now or utcnow()
    own = client is None
    http = client or new_client()
    delivered = 0
    try:
        allow_private = _allow_private(db)
        while batches := claim(db, moment, only=only):
            for jobs in batches.values():
                delivered += run_batch(
                    db, http, jobs, allow_private=allow_private, now=_fixed(moment)
                )
            if now is None:
                moment = utcnow()
    finally:
        if own:
            http.close()
    return delivered


def _fixed(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


def _allow_private(db: Database) -> bool:
    with db.read(unscoped=_CLAIM.reason) as session:
        return config_of(session).allow_private


def lanes_of(jobs: Sequence[Job], lanes: int) -> list[list[Job]]:
    """An endpoint's batch cut into up to `lanes` lists sent side by side: a conversation's
    deliveries all in one lane, in their order (the lease takes at most one per
    conversation anyway), deliveries about no conversation spread over all."""
    cut: list[list[Job]] = [[] for _ in range(lanes)]
    for n, job in enumerate(jobs):
        key = job.conversation_id if job.conversation_id is not None else n
        cut[key % lanes].append(job)
    return [lane for lane in cut if lane]


@dataclass
class _Batch:
    """An endpoint's leased deliveries on their way: its lanes still running, and what the
    finished ones tried and left."""

    lanes: int
    tried: Tried = field(default_factory=list)
    rest: list[Job] = field(default_factory=list)


class WebhookSender:
    """The worker's step: lease for endpoints with no batch running and hand each
    endpoint's batch to the pool in up to `LANES` lanes; return at once. The lane that
    finishes an endpoint's batch last records it and leases that endpoint's next one in
    the same transaction, so a busy endpoint keeps going without waiting for the step;
    an endpoint with nothing more due is free again and the worker is woken.

    A hanging endpoint holds at most `LANES` of the pool's threads until its requests
    time out; the others go on with the rest."""

    def __init__(self, db: Database, *, pool_size: int = POOL_SIZE) -> None:
        self.db = db
        self.pool_size = pool_size
        self._pool = ThreadPoolExecutor(pool_size, thread_name_prefix="puente-webhook")
        self._client = new_client(pool_size)
        self._running: dict[int, _Batch] = {}
        self._lock = threading.Lock()
        self._allow_private = False
        self._closing = False

    def step(self, now: dt.datetime | None = None) -> bool:
        with self._lock:
            busy = sorted(self._running)
            threads = sum(b.lanes for b in self._running.values())
        free = (self.pool_size - threads) // LANES
        if free <= 0:
            return False
        batches = claim(self.db, now or utcnow(), busy=busy, endpoints=free)
        if batches:
            self._allow_private = _allow_private(self.db)
        for endpoint_id, jobs in batches.items():
            self._dispatch(endpoint_id, jobs)
        return False  # the lanes wake the worker when an endpoint is free again

    def _dispatch(self, endpoint_id: int, jobs: list[Job]) -> None:
        lanes = lanes_of(jobs, LANES)
        with self._lock:
            self._running[endpoint_id] = _Batch(lanes=len(lanes))
        for lane in lanes:
            self._pool.submit(self._run_lane, endpoint_id, lane)

    def _run_lane(self, endpoint_id: int, lane: list[Job]) -> None:
        try:
            tried, rest = send_lane(
                self._client, lane, allow_private=self._allow_private, budget=LEASE_SECONDS / 2
            )
        except Exception:  # send never raises; this is a bug, logged, the lease runs out
            log.exception("webhook lane for endpoint %s failed", endpoint_id)
            tried, rest = [], []
        with self._lock:
            batch = self._running[endpoint_id]
            batch.tried += tried
            batch.rest += rest
            batch.lanes -= 1
            if batch.lanes > 0:
                return
        following: list[Job] = []
        try:
            following = record_and_claim(
                self.db,
                endpoint_id,
                batch.tried,
                batch.rest,
                utcnow(),
                claim_next=not self._closing,
            )
        except Exception:
            log.exception("recording webhook deliveries of endpoint %s failed", endpoint_id)
        if following:
            self._dispatch(endpoint_id, following)
            return
        with self._lock:
            self._running.pop(endpoint_id, None)
        WEBHOOKS.wake()

    def idle(self) -> bool:
        with self._lock:
            return not self._running

    def close(self) -> None:
        self._closing = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()


class _SenderWorker(Worker):
    def __init__(self, sender: WebhookSender, idle_seconds: float) -> None:
        super().__init__("puente-webhooks", WEBHOOKS, sender.step, idle_seconds=idle_seconds)
        self.sender = sender

    def join(self, timeout: float = 10) -> None:
        super().join(timeout)
        self.sender.close()


def install(runtime: Runtime) -> WebhookSender:
    """Configure the webhooks' operations on the runtime's database and add the sender
    to its workers."""
    configure(
        runtime.db,
        secrets=runtime.secrets,
        allow_private=runtime.settings.webhooks_allow_private,
    )
    sender = WebhookSender(runtime.db)
    worker = _SenderWorker(sender, idle_seconds=max(1.0, runtime.settings.worker_poll_seconds))
    install_worker(runtime, worker)
    return sender
