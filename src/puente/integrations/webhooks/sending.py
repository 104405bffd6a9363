"""Sending one delivery the Standard Webhooks way (webhook-id, webhook-timestamp and
webhook-signature headers, signed with the endpoint's secret by the `standardwebhooks`
package) with the keep-alive poster of `posting`: short timeouts, no redirect followed,
at most a kilobyte of the answer read; and a lane of deliveries, in order, until a failure
worth retrying."""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from puente.db.base import utcnow
from puente.integrations.webhooks.posting import Poster, PostFailed
from puente.integrations.webhooks.urls import addresses_of, first_private

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
DEADLINE = 10.0  # seconds for one whole request, however slowly the answer drips
EXCERPT_BYTES = 1024
RETRIED_STATUSES = frozenset({408, 429})
USER_AGENT = "Puente-Webhooks/1.0"


class Job(NamedTuple):
    """A leased delivery, with what sending it needs. (A named tuple: a batch makes
    hundreds, and a frozen dataclass costs several times as much to build.)"""

    delivery_id: int
    workspace_id: int
    endpoint_id: int
    conversation_id: int | None
    url: str
    secret: str
    event_id: str
    body: str
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What one try gave: `ok` (2xx), or an error and whether it is worth another try."""

    status_code: int | None
    duration_ms: int
    excerpt: str
    error: str | None
    ok: bool
    retry: bool


def new_client(connections: int = 16) -> Poster:
    """The client deliveries go out with: short timeouts, no redirects followed, keep-alive
    connections (up to `connections` idle ones per receiver)."""
    return Poster(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        deadline=DEADLINE,
        user_agent=USER_AGENT,
        excerpt_bytes=EXCERPT_BYTES,
        max_idle_per_origin=connections,
    )


def _excerpt(raw: bytes) -> str:
    return raw[:EXCERPT_BYTES].decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=256)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


class Checked(NamedTuple):
    """What the host of an endpoint's URL resolves to now, and why Puente will not send
    to it (one of those addresses is private) or None."""

    addresses: tuple[str, ...]
    refused: str | None


def check(url: str) -> Checked:
    """The addresses a post to `url` may connect to, or why none. Asked again before each
    batch: a public name may point inside since it was saved. The posts then connect to
    these very addresses: a name resolved again at the connection could answer otherwise
    (a receiver's DNS answering 0-second records, public to the check and 127.0.0.1 to
    the connection, would reach the services beside Puente)."""
    addresses = addresses_of(url)
    address = first_private(addresses)
    if address is None:
        return Checked(tuple(addresses), None)
    why = f"refused: {urlsplit(url).hostname} resolves to a private address ({address})"
    return Checked((), why)


def send(client: Poster, job: Job, *, checked: Checked | None = None) -> Outcome:
    """One signed POST of the job's body to the `checked` addresses (none when they say
    why not; to the URL's name when nothing was checked, private addresses being allowed);
    never raises."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    if checked is not None and checked.refused is not None:
        return Outcome(None, 0, "", checked.refused, ok=False, retry=False)
    sent_at = dt.datetime.now(dt.UTC)  # the receiver checks it against its own clock
    headers = (
        ("content-type", "application/json"),
        ("webhook-id", job.event_id),
        ("webhook-timestamp", str(int(sent_at.timestamp()))),
        ("webhook-signature", _signer(job.secret).sign(job.event_id, sent_at, job.body)),
    )
    try:
        addresses = None if checked is None else checked.addresses
        answer = client.post(job.url, job.body.encode(), headers, addresses=addresses)
    except PostFailed as exc:  # every failure is recorded, none stops the worker
        return Outcome(None, took(), "", str(exc)[:500], ok=False, retry=True)
    except Exception as exc:  # a bug, recorded and retried like a network error
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
        return Outcome(None, took(), "", error, ok=False, retry=True)
    status = answer.status
    excerpt = _excerpt(answer.excerpt)
    if 200 <= status < 300:
        return Outcome(status, took(), excerpt, None, ok=True, retry=False)
    if 300 <= status < 400:
        location = answer.location
        error = f"redirect to {location}" if location else f"redirect ({status})"
        return Outcome(status, took(), excerpt, error[:500], ok=False, retry=False)
    retry = status >= 500 or status in RETRIED_STATUSES
    return Outcome(status, took(), excerpt, f"HTTP {status}", ok=False, retry=retry)


Tried = list[tuple[Job, Outcome, dt.datetime]]


def send_lane(
    client: Poster,
    jobs: Sequence[Job],
    *,
    allow_private: bool,
    budget: float,
    now: Callable[[], dt.datetime] = utcnow,
) -> tuple[Tried, Sequence[Job]]:
    """Send `jobs` (one endpoint's) in order; stop at the first failure worth retrying or
    once `budget` seconds are spent. Returns the tries and the jobs left unsent."""
    started = time.monotonic()
    results: Tried = []
    # One resolution for the lane (an endpoint's batch has one URL), not one per delivery;
    # with private addresses allowed there is nothing to check and posts connect by name.
    checks: dict[str, Checked] = {}
    for index, job in enumerate(jobs):
        checked = None
        if not allow_private:
            if job.url not in checks:
                checks[job.url] = check(job.url)
            checked = checks[job.url]
        outcome = send(client, job, checked=checked)
        results.append((job, outcome, now()))
        if (outcome.retry and not outcome.ok) or time.monotonic() - started > budget:
            return results, jobs[index + 1 :]
    return results, ()
