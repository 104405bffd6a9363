"""The sandbox's in-memory world: WABAs, numbers, customers, chats, templates, media, tokens.

Plain dataclasses so the whole state can be dumped to and loaded from one JSON file.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COEXISTENCE_MPS = 20
DEFAULT_MPS = 80


@dataclass
class Waba:
    id: str
    name: str
    business_id: str
    subscribed: bool = False
    override_callback_uri: str | None = None
    override_verify_token: str | None = None


@dataclass
class Number:
    id: str
    waba_id: str
    display_phone_number: str
    verified_name: str
    coexistence: bool = True
    mps: int = COEXISTENCE_MPS
    # app_only: on the Business app, not onboarded; connected; offboarded; disconnected.
    connection: str = "connected"
    onboarded_at: float = 0.0
    history_sharing: str = "accepted"  # accepted | declined | undecided
    syncs: dict[str, str] = field(default_factory=dict)  # sync_type -> request_id
    history_pending: bool = False  # requested, waiting for the owner's decision
    address_book: dict[str, dict[str, str]] = field(default_factory=dict)
    quality_rating: str = "GREEN"
    name_status: str = "APPROVED"  # the display name's review: APPROVED, REJECTED, DEFERRED
    blocked_until: float = 0.0  # sends refused with 368 until then (sandbox clock)


@dataclass
class Customer:
    wa_id: str
    name: str
    # read | delivered | sent (offline) | fail (131026)
    delivery: str = "read"
    marketing_opt_out: bool = False
    marketing_capped: bool = False  # marketing templates fail with 131049


@dataclass
class Conversation:
    """What Meta knows about one number <-> customer pair: the windows."""

    window_until: float = 0.0
    entry_point_until: float = 0.0


@dataclass
class ChatMessage:
    """One message as the people around the number see it (customer and owner views)."""

    wamid: str
    number_id: str
    customer: str
    direction: str  # in | out
    source: str  # customer | api | app | history
    type: str
    content: dict[str, Any]
    timestamp: float
    status: str = ""
    context_id: str | None = None
    edited: bool = False
    revoked: bool = False
    reaction: str | None = None
    error: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None
    request: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None  # kept for messages held by template pacing


@dataclass
class Template:
    id: str
    waba_id: str
    name: str
    language: str
    category: str
    components: list[dict[str, Any]]
    status: str = "PENDING"
    parameter_format: str = "POSITIONAL"
    rejected_reason: str = "NONE"
    paced: bool = False
    pacing_hold_after: int = 0  # sends let through while paced before holding the rest
    pacing_sent: int = 0
    held: list[str] = field(default_factory=list)  # wamids held for quality assessment


@dataclass
class Media:
    id: str
    mime_type: str
    data_b64: str
    sha256: str
    file_size: int
    created: float
    filename: str | None = None

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.data_b64)


MESSAGING_LIMITS: dict[str, int | None] = {
    "TIER_250": 250,
    "TIER_2K": 2000,
    "TIER_10K": 10_000,
    "TIER_100K": 100_000,
    "TIER_UNLIMITED": None,
}


@dataclass
class Portfolio:
    """A business portfolio: since Oct 2025 the messaging limit is set here, shared by its WABAs."""

    id: str
    messaging_limit: str = "TIER_UNLIMITED"
    # wa_id -> when last reached outside a customer-service window; oldest first.
    reached: dict[str, float] = field(default_factory=dict)


@dataclass
class Signup:
    id: str
    mode: str  # coexistence | new
    phone: str
    confirm_code: str
    created: float
    confirmed: bool = False
    share_history: bool = True
    waba_id: str | None = None
    number_id: str | None = None
    code: str | None = None
    code_expires: float = 0.0
    code_used: bool = False


@dataclass
class World:
    wabas: dict[str, Waba] = field(default_factory=dict)
    numbers: dict[str, Number] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)  # "pnid:wa_id"
    messages: dict[str, ChatMessage] = field(default_factory=dict)
    chats: dict[str, list[str]] = field(default_factory=dict)  # "pnid:wa_id" -> wamids
    sent_log: list[str] = field(default_factory=list)  # API sends, in order
    templates: dict[str, Template] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    tokens: dict[str, list[str]] = field(default_factory=dict)  # token -> waba ids ([] = all)
    token_expiry: dict[str, float] = field(default_factory=dict)  # token -> sandbox time
    signups: dict[str, Signup] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # pnid -> threads
    portfolios: dict[str, Portfolio] = field(default_factory=dict)  # business_id -> portfolio
    next_id: int = 1_065_403_522_000


def chat_key(number_id: str, wa_id: str) -> str:
    return f"{number_id}:{wa_id}"


class Clock:
    """Wall time plus an offset the control API can advance, so windows and expiries are testable."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


class Store:
    """The world behind one lock, with id generation and JSON persistence."""

    def __init__(self, state_file: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.world = World()
        self.state_file = state_file
        self._wamid_counter = itertools.count(1)
        self._wamid_prefix = secrets.token_hex(4)
        if state_file is not None and state_file.exists():
            self.world = load_world(json.loads(state_file.read_text("utf-8")))

    def new_id(self) -> str:
        with self.lock:
            self.world.next_id += 1
            return str(self.world.next_id)

    def new_wamid(self) -> str:
        raw = f"{self._wamid_prefix}{next(self._wamid_counter):012d}".encode()
        return "wamid.HBgL" + base64.b64encode(raw).decode().rstrip("=")

    def snapshot(self) -> str:
        """The world as JSON; take it on the event loop, where the world is changed."""
        with self.lock:
            return json.dumps(dataclasses.asdict(self.world))

    def write(self, text: str) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(text, "utf-8")
        tmp.replace(self.state_file)

    def save(self) -> None:
        if self.state_file is not None:
            self.write(self.snapshot())


def load_world(data: dict[str, Any]) -> World:
    def each(key: str, cls: Any) -> dict[str, Any]:
        return {k: cls(**v) for k, v in data.get(key, {}).items()}

    return World(
        wabas=each("wabas", Waba),
        numbers=each("numbers", Number),
        customers=each("customers", Customer),
        conversations=each("conversations", Conversation),
        messages=each("messages", ChatMessage),
        chats=data.get("chats", {}),
        sent_log=data.get("sent_log", []),
        templates=each("templates", Template),
        media=each("media", Media),
        tokens=data.get("tokens", {}),
        token_expiry=data.get("token_expiry", {}),
        signups=each("signups", Signup),
        history=data.get("history", {}),
        portfolios=each("portfolios", Portfolio),
        next_id=data.get("next_id", World().next_id),
    )


def make_media(
    media_id: str, data: bytes, mime_type: str, now: float, filename: str | None
) -> Media:
    return Media(
        id=media_id,
        mime_type=mime_type,
        data_b64=base64.b64encode(data).decode(),
        sha256=hashlib.sha256(data).hexdigest(),
        file_size=len(data),
        created=now,
        filename=filename,
    )


_COUNTRIES = {"57": "CO", "52": "MX", "34": "ES", "54": "AR", "56": "CL", "51": "PE", "55": "BR"}


@functools.lru_cache(maxsize=100_000)
def bsuid(business_id: str, wa_id: str) -> str:
    """A business-scoped user id (BSUID) shaped like Meta's: `CC.` + 20 digits, stable per business."""
    country = next((c for p, c in _COUNTRIES.items() if wa_id.startswith(p)), "US")
    digest = hashlib.sha256(f"{business_id}:{wa_id}".encode()).hexdigest()
    return f"{country}.{int(digest[:16], 16) % 10**20:020d}"
