"""The media worker: downloads the files of pending Media rows in the background.

A claim is a short lease (next_attempt_at pushed ahead), so no transaction stays open
while a file crosses the network and a crashed download is simply retried later. Files
are content-addressed under data_dir/media/<sha256[:2]>/<sha256> and reused when already
there. A failure (a Graph 5xx, an expired URL twice, a checksum mismatch) never loses the
message: it is retried with exponential backoff and jitter until it works, the attempts
run out, or Meta's 7-day lifetime of the media id has passed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import logging
import os
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.conversations.events import message_updated
from puente.conversations.media import MediaState
from puente.conversations.models import Media, Message
from puente.db.base import utcnow
from puente.events import publish
from puente.jobs import MEDIA, Backoff, Worker, lease
from puente.jobs import install as install_worker
from puente.runtime import Runtime
from puente.whatsapp.client import GraphClient, is_access_token
from puente.whatsapp.errors import (
    BadMediaId,
    GraphError,
    MediaRedirected,
    MediaTooLarge,
    MediaUrlExpired,
    UntrustedMediaLink,
)

# Workers serve every workspace; the rows they claim name their own.
WHY = "media downloads of every workspace"

log = logging.getLogger(__name__)

MEDIA_DIR = "media"
_TMP_DIR = "tmp"  # three letters: never mistaken for a two-letter hash prefix


@dataclass(frozen=True)
class MediaPolicy:
    """How hard the worker tries. Defaults span about a day of retries."""

    max_attempts: int = 10
    base_delay: float = 30.0  # seconds before the first retry; doubles each time
    max_delay: float = 6 * 3600.0
    lease: float = 600.0  # a claimed row is left alone this long, then retried
    max_bytes: int = 100 * 2**20  # Meta's own cap for inbound media (131052)
    id_lifetime: dt.timedelta = dt.timedelta(days=7)  # media ids from webhooks (protocol §8)
    concurrency: int = 4
    timeout: float = 60.0

    @property
    def backoff(self) -> Backoff:
        # "Equal jitter": half to all of the exponential delay, so a burst of failures
        # (one Graph outage) does not come back all at once.
        return Backoff(self.base_delay, self.max_delay, jitter=(0.5, 1.0))


@dataclass(frozen=True)
class Job:
    """A claimed Media row with what the download needs, read in the claim transaction."""

    media_id: int
    workspace_id: int
    message_id: int | None
    meta_media_id: str | None
    direct_url: str | None
    phone_number_id: str
    token_encrypted: str | None
    announced_sha256: str | None
    created_at: dt.datetime


@dataclass
class Outcome:
    job: Job
    sha256: str | None = None  # hex of the stored file
    size: int | None = None
    mime_type: str | None = None
    error: str | None = None
    permanent: bool = False  # no retry can help
    retry_after: float | None = None


def media_path(data_dir: Path, sha256: str) -> Path:
    """Where the file with this (hex) sha256 lives."""
    return Path(data_dir) / MEDIA_DIR / sha256[:2] / sha256


# -- claims and results (the database side) -------------------------------------------


def any_due(session: Session, now: dt.datetime) -> bool:
    due = select(Media.id).where(Media.state == MediaState.PENDING, Media.next_attempt_at <= now)
    return session.scalar(due.limit(1)) is not None


_MEDIA = cast(Table, Media.__table__).c


def claim_due(session: Session, *, now: dt.datetime, limit: int, policy: MediaPolicy) -> list[Job]:
    """Lease up to `limit` pending rows whose time has come, oldest first."""
    claimed = lease(
        session,
        cast(Table, Media.__table__),
        ready=_MEDIA.state == MediaState.PENDING,
        due=_MEDIA.next_attempt_at,
        order_by=(_MEDIA.next_attempt_at, _MEDIA.id),
        limit=limit,
        seconds=policy.lease,
        now=now,
    )
    if not claimed:
        return []
    rows = session.execute(
        select(
            Media,
            Channel.phone_number_id,
            Channel.access_token_encrypted,
            Message.content,
        )
        .join(Channel, Channel.id == Media.channel_id)
        .outerjoin(Message, Message.id == Media.message_id)
        .where(Media.id.in_(claimed))
    ).all()
    jobs = []
    for media, phone_number_id, token, content in rows:
        url = _direct_url(content)
        jobs.append(
            Job(
                media_id=media.id,
                workspace_id=media.workspace_id,
                message_id=media.message_id,
                meta_media_id=media.meta_media_id,
                direct_url=url,
                phone_number_id=phone_number_id,
                token_encrypted=token,
                announced_sha256=media.sha256,
                created_at=media.created_at,
            )
        )
    return jobs


def _direct_url(content: object) -> str | None:
    # Since late 2025 a webhook's media object may carry a `url` (protocol §2); it is the
    # only way to a file that came without a media id.
    if not isinstance(content, dict):
        return None
    for value in content.values():
        if isinstance(value, dict) and isinstance(value.get("url"), str):
            return str(value["url"])
    url = content.get("url")
    return url if isinstance(url, str) else None


def do_record(
    session: Session,
    outcome: Outcome,
    *,
    now: dt.datetime,
    policy: MediaPolicy,
    rng: random.Random,
) -> None:
    """Store a download's result on its Media row (which may have gone meanwhile)."""
    media = session.get(Media, outcome.job.media_id, with_for_update=True)
    if media is None or media.state != MediaState.PENDING:
        return
    if outcome.error is None and outcome.sha256 is not None:
        media.state = MediaState.STORED
        media.sha256 = outcome.sha256
        media.file_size = outcome.size
        media.mime_type = media.mime_type or outcome.mime_type
        media.next_attempt_at = None
        media.last_error = None
        _publish_media_changed(session, media)
        return
    media.attempts += 1
    media.last_error = (outcome.error or "the download failed")[:500]
    expired = now - _aware(media.created_at) >= policy.id_lifetime
    if outcome.permanent or expired or media.attempts >= policy.max_attempts:
        media.state = MediaState.FAILED
        media.next_attempt_at = None
        if expired and not outcome.permanent:
            media.last_error = (
                f"{media.last_error}; Meta keeps received media for 7 days, so no more retries"
            )[:500]
        _publish_media_changed(session, media)
        return
    delay = policy.backoff.delay(media.attempts, rng)
    if outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    media.next_attempt_at = now + dt.timedelta(seconds=delay)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _publish_media_changed(session: Session, media: Media) -> None:
    if media.message_id is None:
        return
    message = session.get(Message, media.message_id)
    if message is None:
        return
    publish(session, message_updated(message, media))


def do_retry(session: Session, *, include_failed: bool, now: dt.datetime | None = None) -> int:
    """Make waiting downloads due now (and, with `include_failed`, give failed ones a fresh
    round of attempts). Returns how many rows were touched."""
    now = now or utcnow()
    states = [MediaState.PENDING, MediaState.FAILED] if include_failed else [MediaState.PENDING]
    result = session.execute(
        update(Media)
        .where(
            Media.state.in_(states),
            or_(Media.next_attempt_at.is_(None), Media.next_attempt_at > now),
        )
        .values(state=MediaState.PENDING, next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    if include_failed:
        session.execute(
            update(Media)
            .where(Media.state == MediaState.PENDING, Media.attempts > 0)
            .values(attempts=0)
            .execution_options(synchronize_session=False)
        )
    MEDIA.wake_after_commit(session)  # the workers of any process start at once
    return int(result.rowcount)  # type: ignore[attr-defined]


# -- the downloads (the network side) -------------------------------------------------


def expected_digests(*announced: str | None) -> list[bytes]:
    """Meta's checksums as raw bytes. Webhooks carry base64 (as in Meta's samples), the
    media endpoint may give hex; either form is accepted, anything else is ignored."""
    out = []
    for value in announced:
        if not value:
            continue
        text = value.strip()
        if len(text) == 64:
            try:
                out.append(bytes.fromhex(text))
                continue
            except ValueError:
                pass
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(text + "=" * (-len(text) % 4))
            except (binascii.Error, ValueError):
                continue
            if len(raw) == 32:
                out.append(raw)
                break
    return out


class _HashingSink:
    """Writes chunks to a file and hashes them on the way, in one pass."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self._out.write(chunk)


@dataclass
class _Download:
    size: int
    digest: bytes
    mime_type: str | None = None
    announced: list[str | None] = field(default_factory=list)


class MediaDownloader:
    """Claims due media, downloads a few at once, records each result in its own
    transaction. `step` is what the background worker runs; tests call it directly."""

    def __init__(
        self,
        runtime: Runtime,
        policy: MediaPolicy | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.runtime = runtime
        self.policy = policy or MediaPolicy()
        self._rng = rng or random.Random()  # jitter, not secrecy
        self.data_dir = Path(runtime.settings.data_dir)

    def step(self, now: dt.datetime | None = None) -> bool:
        now = now or utcnow()
        # Look before claiming: an idle poll then costs one indexed read, never the write
        # lock (SQLite) that the webhook writer and the ingest worker need.
        with self.runtime.db.read(unscoped=WHY) as session:
            if not any_due(session, now):
                return False
        with self.runtime.db.unit_of_work(unscoped=WHY) as session:
            jobs = claim_due(session, now=now, limit=self.policy.concurrency, policy=self.policy)
        if not jobs:
            return False
        outcomes = asyncio.run(self._download_all(jobs, now))
        for outcome in outcomes:
            if outcome.error:
                log.info("media %s not downloaded: %s", outcome.job.media_id, outcome.error)
            with self.runtime.db.unit_of_work(unscoped=WHY) as session:
                do_record(session, outcome, now=now, policy=self.policy, rng=self._rng)
        return True

    async def _download_all(self, jobs: Sequence[Job], now: dt.datetime) -> list[Outcome]:
        by_token: dict[str | None, list[Job]] = defaultdict(list)
        for job in jobs:
            by_token[job.token_encrypted].append(job)
        settings = self.runtime.settings
        clients = []
        tasks = []
        for token, group in by_token.items():
            secret = self._decrypt(token)
            client = GraphClient(
                settings.graph_base_url,
                settings.graph_api_version,
                secret or "",
                timeout=self.policy.timeout,
            )
            clients.append(client)
            for job in group:
                tasks.append(self._fetch(client, job, now, has_token=bool(secret)))
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for client in clients:
                await client.aclose()

    def _decrypt(self, token: str | None) -> str | None:
        if not token:
            return None
        try:
            secret = self.runtime.secrets.decrypt(token)
        except ValueError:
            log.warning("a channel's access token cannot be decrypted with the current keys")
            return None
        # A token stored before tokens were checked could break the whole batch (every
        # workspace's media) inside httpx; such a number's media waits for a new token.
        return secret if is_access_token(secret) else None

    async def _fetch(
        self, client: GraphClient, job: Job, now: dt.datetime, *, has_token: bool
    ) -> Outcome:
        if now - _aware(job.created_at) >= self.policy.id_lifetime:
            return Outcome(
                job,
                error="Meta keeps received media for 7 days and this file is older",
                permanent=True,
            )
        if not has_token:
            return Outcome(job, error="the number has no usable access token; reconnect it")
        if not job.meta_media_id and not job.direct_url:
            return Outcome(job, error="Meta gave neither a media id nor a link", permanent=True)
        tmp_dir = self.data_dir / MEDIA_DIR / _TMP_DIR
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            got = await self._download(client, job, tmp)
            wanted = expected_digests(*got.announced)
            if any(got.digest != digest for digest in wanted):
                return Outcome(
                    job,
                    error="the downloaded file does not match the checksum Meta announced",
                )
            sha = got.digest.hex()
            self._store(tmp, sha, got.size)
            return Outcome(job, sha256=sha, size=got.size, mime_type=got.mime_type)
        except MediaTooLarge:
            limit = self.policy.max_bytes // 2**20
            return Outcome(job, error=f"the file is larger than {limit} MB", permanent=True)
        except MediaUrlExpired:
            return Outcome(job, error="Meta's download link kept answering 404 (expired)")
        except (UntrustedMediaLink, BadMediaId, MediaRedirected) as exc:
            # Bad input from a webhook: trying again would only repeat the refusal.
            return Outcome(job, error=exc.reason, permanent=True)
        except GraphError as exc:
            return Outcome(job, error=exc.reason, retry_after=exc.retry_after)
        except OSError as exc:
            return Outcome(job, error=f"the file could not be written: {exc.strerror or exc}")
        finally:
            tmp.unlink(missing_ok=True)

    async def _download(self, client: GraphClient, job: Job, tmp: Path) -> _Download:
        # A URL lives 5 minutes; a 404 means it expired: ask Meta for a fresh one, once.
        tries = 2 if job.meta_media_id else 1
        for attempt in range(1, tries + 1):
            url = job.direct_url
            announced: list[str | None] = [job.announced_sha256]
            mime: str | None = None
            if job.meta_media_id:
                info = await client.get_media(
                    job.meta_media_id, phone_number_id=job.phone_number_id
                )
                url, mime = info.url, info.mime_type
                announced.append(info.sha256)
            if url is None:
                break
            with tmp.open("wb") as out:
                sink = _HashingSink(out)
                try:
                    size = await client.stream_media(
                        url, sink.write, max_bytes=self.policy.max_bytes
                    )
                except MediaUrlExpired:
                    if attempt < tries:
                        continue
                    raise
            return _Download(size, sink.digest.digest(), mime, announced)
        raise MediaUrlExpired("no download link for this media", http_status=404)

    def _store(self, tmp: Path, sha: str, size: int) -> None:
        final = media_path(self.data_dir, sha)
        if final.is_file() and final.stat().st_size == size:
            return  # the same bytes are stored already (another message, or a retry)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)  # atomic: a reader never sees half a file


def install(runtime: Runtime, policy: MediaPolicy | None = None) -> Worker:
    """Register the media worker with the process's background workers."""
    downloader = MediaDownloader(runtime, policy)
    idle = runtime.settings.worker_poll_seconds
    worker = Worker("puente-media", MEDIA, downloader.step, idle_seconds=idle)
    install_worker(runtime, worker)
    return worker
