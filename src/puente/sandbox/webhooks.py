"""The webhook sender: signed POSTs to the callback URL, after a verification handshake.

Updates queue in an outbox; workers batch them into Meta's envelope, sign them with the app
secret and deliver them, retrying with backoff until the callback answers 200. Faults
(duplicates, reordering, delays, drops) are injected here, per scenario.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx

from puente.sandbox.config import SandboxConfig

log = logging.getLogger(__name__)
RECENT_LIMIT = 2000


@dataclass
class Update:
    waba_id: str
    field: str
    value: dict[str, Any]
    time: int


@dataclass
class Delivery:
    updates: list[Update]
    attempts: int = 0


@dataclass
class Counters:
    emitted: int = 0  # updates handed to the sender
    posts: int = 0  # POST attempts that reached the callback
    sent: int = 0  # updates in those POSTs
    acked: int = 0  # updates acknowledged with 200
    retried: int = 0  # delivery attempts repeated after a failure or a drop
    duplicated: int = 0
    dropped: int = 0
    failed_posts: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def sign(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(updates: list[Update]) -> dict[str, Any]:
    """Meta's envelope; updates of one WABA share an entry, each update is one change."""
    entries: dict[str, dict[str, Any]] = {}
    for upd in updates:
        entry = entries.setdefault(upd.waba_id, {"id": upd.waba_id, "changes": []})
        if upd.field in ("account_update", "message_template_status_update"):
            entry["time"] = upd.time
        entry["changes"].append({"field": upd.field, "value": upd.value})
    return {"object": "whatsapp_business_account", "entry": list(entries.values())}


@dataclass
class Handshake:
    ok: bool = False
    error: str | None = None
    callback_url: str | None = None
    attempted_at: float | None = None


class WebhookSender:
    """Owns the outbox and the delivery workers; runs inside the sandbox's event loop."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.pending: collections.deque[Update] = collections.deque()
        self.retry_queue: collections.deque[Delivery] = collections.deque()
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_LIMIT)
        self.counters = Counters()
        self.handshake = Handshake()
        self.in_flight = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._rng = random.Random(config.faults.seed)
        self._handshake_lock = asyncio.Lock()
        self._tasks_keepalive: set[asyncio.Task[None]] = set()

    # -- queueing ---------------------------------------------------------------------------
    def emit(self, waba_id: str, field_name: str, value: dict[str, Any]) -> None:
        upd = Update(waba_id, field_name, value, int(time.time()))
        self.pending.append(upd)
        self.counters.emitted += 1
        self.recent.append({"waba_id": waba_id, "field": field_name, "value": value})
        self._wake.set()

    def stats(self) -> dict[str, Any]:
        waiting = len(self.pending) + sum(len(d.updates) for d in self.retry_queue)
        return {
            **self.counters.as_dict(),
            "pending": waiting + self.in_flight,
            "handshake": {
                "ok": self.handshake.ok,
                "error": self.handshake.error,
                "callback_url": self.handshake.callback_url,
            },
        }

    def reconfigure(self) -> None:
        """Callback URL or verify token changed: Meta verifies again before delivering."""
        self.handshake = Handshake()
        self._rng = random.Random(self.config.faults.seed)
        self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self._client = httpx.AsyncClient(timeout=10.0, limits=limits)
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"sandbox-webhooks-{i}")
            for i in range(self.config.concurrency)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending (used by the control API and tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pending and not self.retry_queue and self.in_flight == 0:
                return True
            await asyncio.sleep(0.01)
        return False

    # -- delivery ---------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            delivery = self._next_delivery()
            if delivery is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self.in_flight += len(delivery.updates)
            try:
                await self._deliver(delivery)
            finally:
                self.in_flight -= len(delivery.updates)

    def _next_delivery(self) -> Delivery | None:
        if not self.config.callback_url:
            return None
        if self.retry_queue:
            return self.retry_queue.popleft()
        if not self.pending:
            return None
        window = self.config.faults.reorder
        if window > 1 and len(self.pending) > 1:
            chunk = [self.pending.popleft() for _ in range(min(window, len(self.pending)))]
            self._rng.shuffle(chunk)
            self.pending.extendleft(reversed(chunk))
        size = min(self.config.batch_size, len(self.pending))
        return Delivery([self.pending.popleft() for _ in range(size)])

    async def _deliver(self, delivery: Delivery) -> None:
        if not await self._ensure_handshake():
            # Not verified: keep the updates and try again later, as Meta would not deliver.
            await asyncio.sleep(0.5)
            self.pending.extendleft(reversed(delivery.updates))
            return
        faults = self.config.faults
        if faults.delay:
            await asyncio.sleep(faults.delay)
        delivery.attempts += 1
        if faults.drop and self._rng.random() < faults.drop:
            self.counters.dropped += 1
            await self._retry_later(delivery)
            return
        body = json.dumps(envelope(delivery.updates), separators=(",", ":")).encode()
        copies = 2 if faults.duplicate and self._rng.random() < faults.duplicate else 1
        ok = False
        for copy in range(copies):
            ok = await self._post(body, len(delivery.updates)) or ok
            if copy:
                self.counters.duplicated += 1
        if ok:
            self.counters.acked += len(delivery.updates)
        else:
            await self._retry_later(delivery)

    async def _post(self, body: bytes, count: int) -> bool:
        assert self._client is not None
        url = self.config.callback_url
        if not url:
            return False
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, self.config.app_secret),
            "User-Agent": "facebookexternalua",
        }
        self.counters.posts += 1
        self.counters.sent += count
        try:
            res = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.debug("webhook POST failed: %s", exc)
            self.counters.failed_posts += 1
            return False
        if res.status_code != 200:
            self.counters.failed_posts += 1
        return res.status_code == 200

    async def _retry_later(self, delivery: Delivery) -> None:
        self.counters.retried += 1
        delay = min(
            self.config.backoff_max, self.config.backoff_base * 2 ** (delivery.attempts - 1)
        )
        self.in_flight += len(delivery.updates)

        async def requeue() -> None:
            await asyncio.sleep(delay)
            self.in_flight -= len(delivery.updates)
            self.retry_queue.append(delivery)
            self._wake.set()

        task = asyncio.create_task(requeue())
        self._tasks_keepalive.add(task)
        task.add_done_callback(self._tasks_keepalive.discard)

    async def _ensure_handshake(self) -> bool:
        url = self.config.callback_url
        if self.handshake.ok and self.handshake.callback_url == url:
            return True
        async with self._handshake_lock:
            if self.handshake.ok and self.handshake.callback_url == url:
                return True
            return await self._verify(url or "")

    async def _verify(self, url: str) -> bool:
        assert self._client is not None
        challenge = secrets.token_hex(8)
        params = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": self.config.verify_token,
        }
        self.handshake = Handshake(callback_url=url, attempted_at=time.time())
        try:
            res = await self._client.get(url, params=params)
        except httpx.HTTPError as exc:
            self.handshake.error = f"callback unreachable: {exc!r}"
            return False
        if res.status_code != 200:
            self.handshake.error = f"verification answered HTTP {res.status_code}"
        elif res.text.strip() != challenge:
            self.handshake.error = "verification did not echo hub.challenge"
        else:
            self.handshake.ok = True
        return self.handshake.ok
