"""Typed models of Meta's webhook POST bodies (whatsapp-protocol.md §1–4).

Unknown fields are kept (extra="allow") so nothing Meta adds is lost; message types
Puente does not know still validate (their object stays in the extra fields).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# A WhatsApp user's id on the wire is a phone number in international form, digits only
# (empty for users known only by their business-scoped id). Anything else, "<script>"
# included, is not a person and must not become a contact.
WaId = Annotated[str, Field(pattern=r"^[0-9]{0,20}$")]
# Unix seconds between 2001 and 2100: a negative or far-future time is not Meta's and would
# either be stored as nonsense or overflow the date conversion.
UnixTime = Annotated[int, Field(ge=1_000_000_000, le=4_102_444_800)]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Change(WireModel):
    field: str
    value: dict[str, Any]


class Entry(WireModel):
    id: str
    time: int | None = None
    changes: list[Change] = []


class Envelope(WireModel):
    object: str
    entry: list[Entry] = []


# ---------------------------------------------------------------------------------------
# Shared pieces


class Metadata(WireModel):
    display_phone_number: str | None = None
    phone_number_id: str | None = None


class ErrorData(WireModel):
    details: str | None = None


class WaError(WireModel):
    code: int
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None
    href: str | None = None


class Profile(WireModel):
    name: str | None = None


class WebhookContact(WireModel):
    """`value.contacts[]`: who wrote. `wa_id` may be empty for users known only by BSUID."""

    profile: Profile | None = None
    wa_id: WaId | None = None
    user_id: str | None = None  # business-scoped user id (BSUID)
    parent_user_id: str | None = None
    username: str | None = None


class Context(WireModel):
    from_: str | None = Field(default=None, alias="from")
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None
    referred_product: dict[str, Any] | None = None


class Referral(WireModel):
    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    ctwa_clid: str | None = None


# ---------------------------------------------------------------------------------------
# Message type objects (§2)


class Text(WireModel):
    body: str = ""
    preview_url: bool | None = None


class MediaObject(WireModel):
    """image, video, audio, document and sticker share this shape."""

    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool | None = None
    animated: bool | None = None
    url: str | None = None
    link: str | None = None  # send-API shape, seen in echoes


class Location(WireModel):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class SharedContactName(WireModel):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class SharedContact(WireModel):
    name: SharedContactName | None = None
    phones: list[dict[str, Any]] = []


class ReplyChoice(WireModel):
    id: str | None = None
    title: str | None = None
    description: str | None = None


class FlowReply(WireModel):
    name: str | None = None
    body: str | None = None
    response_json: str | None = None


class Interactive(WireModel):
    type: str
    button_reply: ReplyChoice | None = None
    list_reply: ReplyChoice | None = None
    nfm_reply: FlowReply | None = None


class ButtonTap(WireModel):
    payload: str | None = None
    text: str | None = None


class Reaction(WireModel):
    message_id: str
    emoji: str | None = None

    @property
    def removed(self) -> bool:
        return not self.emoji


class ProductItem(WireModel):
    product_retailer_id: str | None = None
    quantity: int | None = None
    item_price: float | None = None
    currency: str | None = None


class Order(WireModel):
    catalog_id: str | None = None
    text: str | None = None
    product_items: list[ProductItem] = []


class System(WireModel):
    type: str | None = None
    body: str | None = None
    wa_id: str | None = None
    customer: str | None = None
    identity: dict[str, Any] | None = None


class Unsupported(WireModel):
    type: str | None = None


class Edit(WireModel):
    original_message_id: str
    # The full new message (type plus its object), as in `messages[]`.
    message: dict[str, Any] = {}


class Revoke(WireModel):
    original_message_id: str


class HistoryContext(WireModel):
    status: str | None = None


MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
TYPED_OBJECTS: dict[str, type[WireModel]] = {
    "text": Text,
    "image": MediaObject,
    "video": MediaObject,
    "audio": MediaObject,
    "document": MediaObject,
    "sticker": MediaObject,
    "location": Location,
    "interactive": Interactive,
    "button": ButtonTap,
    "reaction": Reaction,
    "order": Order,
    "system": System,
    "unsupported": Unsupported,
    "edit": Edit,
    "revoke": Revoke,
}


class Message(WireModel):
    """One item of `messages[]`, `message_echoes[]` or a history thread.

    The type-specific object is named after `type`; unknown types keep theirs in the
    model's extra fields, so `type_object()` works for every type.
    """

    from_: WaId = Field(default="", alias="from")
    to: WaId | None = None  # echoes and history messages sent by the business
    id: str
    timestamp: UnixTime
    type: str = "unknown"
    from_user_id: str | None = None
    to_user_id: str | None = None
    context: Context | None = None
    referral: Referral | None = None
    errors: list[WaError] = []
    history_context: HistoryContext | None = None

    text: Text | None = None
    image: MediaObject | None = None
    video: MediaObject | None = None
    audio: MediaObject | None = None
    document: MediaObject | None = None
    sticker: MediaObject | None = None
    location: Location | None = None
    contacts: list[SharedContact] | None = None
    interactive: Interactive | None = None
    button: ButtonTap | None = None
    reaction: Reaction | None = None
    order: Order | None = None
    system: System | None = None
    unsupported: Unsupported | None = None
    edit: Edit | None = None
    revoke: Revoke | None = None

    def type_object(self) -> Any:
        """The type's object as on the wire (a dict, or a list for `contacts`), or None."""
        value = getattr(self, self.type, None) if self.type in _TYPE_FIELDS else None
        if value is None and self.model_extra:
            return self.model_extra.get(self.type)
        if isinstance(value, list):
            return [item.model_dump(by_alias=True, exclude_none=True) for item in value]
        if isinstance(value, BaseModel):
            return value.model_dump(by_alias=True, exclude_none=True)
        return value

    @property
    def media(self) -> MediaObject | None:
        if self.type not in MEDIA_TYPES:
            return None
        media: MediaObject | None = getattr(self, self.type)
        return media


_TYPE_FIELDS = frozenset({*TYPED_OBJECTS, "contacts"})


# ---------------------------------------------------------------------------------------
# field: messages (§2, §3)


class Pricing(WireModel):
    billable: bool | None = None
    pricing_model: str | None = None
    type: str | None = None
    category: str | None = None


class Status(WireModel):
    id: str
    status: str
    timestamp: UnixTime
    recipient_id: WaId | None = None
    recipient_user_id: str | None = None
    conversation: dict[str, Any] | None = None
    pricing: Pricing | None = None
    errors: list[WaError] = []
    biz_opaque_callback_data: str | None = None


class MessagesValue(WireModel):
    messaging_product: str | None = None
    metadata: Metadata | None = None
    contacts: list[WebhookContact] = []
    messages: list[Message] = []
    statuses: list[Status] = []
    errors: list[WaError] = []


# ---------------------------------------------------------------------------------------
# field: smb_message_echoes (§4.1)


class EchoesValue(WireModel):
    messaging_product: str | None = None
    metadata: Metadata | None = None
    contacts: list[WebhookContact] = []  # the customers written to, with their BSUIDs
    message_echoes: list[Message] = []


# ---------------------------------------------------------------------------------------
# field: history (§4.2)


class HistoryMetadata(WireModel):
    phase: int
    chunk_order: int | None = None
    progress: int | None = None


class HistoryThread(WireModel):
    id: str  # the customer's number
    context: dict[str, Any] | None = None
    messages: list[Message] = []


class HistoryChunk(WireModel):
    metadata: HistoryMetadata | None = None
    threads: list[HistoryThread] = []
    errors: list[WaError] = []


class HistoryValue(WireModel):
    messaging_product: str | None = None
    metadata: Metadata | None = None
    history: list[HistoryChunk] = []
    # The media completion webhook: same field, messages carry the media of a placeholder.
    messages: list[Message] = []


HISTORY_DECLINED = 2593109


# ---------------------------------------------------------------------------------------
# field: smb_app_state_sync (§4.3)


class SyncedContact(WireModel):
    full_name: str | None = None
    first_name: str | None = None
    phone_number: str


class StateSyncMetadata(WireModel):
    timestamp: int | None = None


class StateSyncItem(WireModel):
    type: str
    contact: SyncedContact | None = None
    action: str | None = None  # "add" (new or edited) | "remove"
    metadata: StateSyncMetadata | None = None


class StateSyncValue(WireModel):
    messaging_product: str | None = None
    metadata: Metadata | None = None
    state_sync: list[StateSyncItem] = []


# ---------------------------------------------------------------------------------------
# field: account_update (§4.4)


class DisconnectionInfo(WireModel):
    reason: str | None = None
    initiated_by: str | None = None  # USER | SYSTEM


class WabaInfo(WireModel):
    waba_id: str | None = None
    owner_business_id: str | None = None


class AccountUpdateValue(WireModel):
    event: str
    phone_number: str | None = None
    disconnection_info: DisconnectionInfo | None = None
    waba_info: WabaInfo | None = None


# Plain words for PARTNER_REMOVED's disconnection_info.reason.
DISCONNECTION_REASONS = {
    "ACCOUNT_DISCONNECTED": "The account was disconnected by Meta (enforcement) or deleted by the owner.",
    "BUSINESS_DOWNGRADE": "The number was registered in the consumer WhatsApp app.",
    "CHANGE_NUMBER": "The owner changed the phone number in the WhatsApp Business app.",
    "COMPANION_INACTIVITY": "A linked device was inactive for about 30 days.",
    "PRIMARY_INACTIVITY": "The owner's phone did not open the WhatsApp Business app for about 14 days.",
    "USER_RE_REGISTERED": "The number was registered again on a phone.",
}


# ---------------------------------------------------------------------------------------
# field: message_template_status_update (§9)


class TemplateStatusValue(WireModel):
    event: str
    message_template_id: int | str | None = None
    message_template_name: str | None = None
    message_template_language: str | None = None
    message_template_category: str | None = None
    reason: str | None = None
    disable_info: dict[str, Any] | None = None
    other_info: dict[str, Any] | None = None
    rejection_info: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------
# field: user_preferences (§13): a customer stops or resumes marketing messages in WhatsApp


class UserPreference(WireModel):
    wa_id: WaId | None = None
    user_id: str | None = None  # business-scoped user id, for users without a wa_id
    detail: str | None = None
    category: str  # "marketing_messages"
    value: str  # "stop" | "resume" ("signup" seen in pywa: joined through a signup link)
    timestamp: UnixTime


class UserPreferencesValue(WireModel):
    messaging_product: str | None = None
    metadata: Metadata | None = None
    contacts: list[WebhookContact] = []
    user_preferences: list[UserPreference] = []


MARKETING_PREFERENCES = "marketing_messages"


# ---------------------------------------------------------------------------------------
# fields: phone_number_quality_update, phone_number_name_update (§13): the number's health.
# Account-level: no metadata; entry[].id is the WABA and `time` says when.


class QualityUpdateValue(WireModel):
    display_phone_number: str | None = None
    # ONBOARDING, THROUGHPUT_UPGRADE, FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE
    event: str
    old_limit: str | None = None  # only for messaging-limit changes
    current_limit: str | None = None  # removed from February 2026 ...
    # ... in favour of this one: the business portfolio's limit, shared by its numbers.
    # A tier name ("TIER_2K"); business_capability_update writes it as an integer.
    max_daily_conversations_per_business: str | int | None = None

    @property
    def limit(self) -> str | int | None:
        """The messaging limit the event reports, whichever spelling carries it."""
        if self.max_daily_conversations_per_business not in (None, ""):
            return self.max_daily_conversations_per_business
        return self.current_limit or None


# Meta's limit tiers as a number of unique people per 24 h (None: unlimited). TIER_NOT_SET
# (the number has not sent yet) is absent: it says nothing about the limit.
MESSAGING_LIMIT_TIERS: dict[str, int | None] = {
    "TIER_50": 50,
    "TIER_250": 250,
    "TIER_1K": 1000,
    "TIER_2K": 2000,
    "TIER_10K": 10000,
    "TIER_100K": 100000,
    "TIER_UNLIMITED": None,
}
# Meta's throughput after THROUGHPUT_UPGRADE, in messages per second (§7).
UPGRADED_THROUGHPUT_MPS = 1000


class NameUpdateValue(WireModel):
    display_phone_number: str | None = None
    decision: str  # APPROVED | REJECTED | DEFERRED
    requested_verified_name: str | None = None
    rejection_reason: str | None = None
