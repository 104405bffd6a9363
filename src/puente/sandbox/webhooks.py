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
    target: Target
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


# Account-level fields: their entry carries `time` (and no metadata in the value).
TIMED_FIELDS = frozenset(
    {
        "account_update",
        "message_template_status_update",
        "phone_number_quality_update",
        "phone_number_name_update",
    }
)


def envelope(updates: list[Update]) -> dict[str, Any]:
    """Meta's envelope; updates of one WABA share an entry, each update is one change."""
    entries: dict[str, dict[str, Any]] = {}
    for upd in updates:
        entry = entries.setdefault(upd.waba_id, {"id": upd.waba_id, "changes": []})
        if upd.field in TIMED_FIELDS:
            entry["time"] = upd.time
        entry["changes"].append({"field": upd.field, "value": upd.value})
    return {"object": "whatsapp_business_account", "entry": list(entries.values())}


@dataclass(frozen=True)
class Target:
    """Where a WABA's webhooks go: the app's callback, or the WABA's override_callback_uri."""

    url: str
    verify_token: str


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
        self.handshakes: dict[Target, Handshake] = {}
        self.overrides: dict[str, Target] = {}  # waba id -> per-WABA callback
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
        main = self.app_target()
        shake = self.handshakes.get(main) if main else None
        return {
            **self.counters.as_dict(),
            "pending": waiting + self.in_flight,
            "handshake": {
                "ok": bool(shake and shake.ok),
                "error": shake.error if shake else None,
                "callback_url": main.url if main else None,
            },
            "overrides": {
                waba: {
                    "callback_url": t.url,
                    "ok": bool(self.handshakes.get(t, Handshake()).ok),
                    "error": self.handshakes.get(t, Handshake()).error,
                }
                for waba, t in self.overrides.items()
            },
        }

    def app_target(self) -> Target | None:
        url = self.config.callback_url
        return Target(url, self.config.verify_token) if url else None

    def target_for(self, waba_id: str) -> Target | None:
        return self.overrides.get(waba_id) or self.app_target()

    def set_override(self, waba_id: str, url: str | None, verify_token: str | None) -> None:
        if url:
            self.overrides[waba_id] = Target(url, verify_token or self.config.verify_token)
        else:
            self.overrides.pop(waba_id, None)
        self._wake.set()

    def reconfigure(self) -> None:
        """Callback URL or verify token changed: Meta verifies again before delivering."""
        self.handshakes.clear()
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
        if self.retry_queue:
            return self.retry_queue.popleft()
        if not self.pending or (not self.config.callback_url and not self.overrides):
            return None
        window = self.config.faults.reorder
        if window > 1 and len(self.pending) > 1:
            chunk = [self.pending.popleft() for _ in range(min(window, len(self.pending)))]
            self._rng.shuffle(chunk)
            self.pending.extendleft(reversed(chunk))
        # One POST goes to one callback: take the next updates bound for the first one's target.
        batch: list[Update] = []
        skipped: list[Update] = []
        target: Target | None = None
        while self.pending and len(batch) < self.config.batch_size and len(skipped) < 1000:
            upd = self.pending.popleft()
            where = self.target_for(upd.waba_id)
            if where is not None and target is None:
                target = where
            (batch if where is not None and where == target else skipped).append(upd)
        self.pending.extendleft(reversed(skipped))
        return Delivery(batch, target) if target is not None else None

    async def _deliver(self, delivery: Delivery) -> None:
        if not await self._ensure_handshake(delivery.target):
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
            if copy:
                # Counted before it is sent, so a receiver that has both copies finds
                # them in the stats too.
                self.counters.duplicated += 1
            ok = await self._post(delivery.target.url, body, len(delivery.updates)) or ok
        if ok:
            self.counters.acked += len(delivery.updates)
        else:
            await self._retry_later(delivery)

    async def _post(self, url: str, body: bytes, count: int) -> bool:
        assert self._client is not None
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

    async def _ensure_handshake(self, target: Target) -> bool:
        known = self.handshakes.get(target)
        if known is not None and known.ok:
            return True
        async with self._handshake_lock:
            known = self.handshakes.get(target)
            if known is not None and known.ok:
                return True
            return await self._verify(target)

    async def _verify(self, target: Target) -> bool:
        assert self._client is not None
        challenge = secrets.token_hex(8)
        params = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": target.verify_token,
        }
        shake = Handshake(callback_url=target.url, attempted_at=time.time())
        self.handshakes[target] = shake
        try:
            res = await self._client.get(target.url, params=params)
        except httpx.HTTPError as exc:
            shake.error = f"callback unreachable: {exc!r}"
            return False
        if res.status_code != 200:
            shake.error = f"verification answered HTTP {res.status_code}"
        elif res.text.strip() != challenge:
            shake.error = "verification did not echo hub.challenge"
        else:
            shake.ok = True
        return shake.ok
