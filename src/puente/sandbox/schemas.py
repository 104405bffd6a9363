"""Request and response shapes of the sandbox's control API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from puente.sandbox.config import SendFault, WebhookFaults

Digits = Field(pattern=r"^\d{7,15}$")


class ConfigPatch(BaseModel):
    callback_url: str | None = None
    verify_token: str | None = None
    app_secret: str | None = None
    batch_size: int | None = Field(None, ge=1, le=1000)
    faults: WebhookFaults | None = None
    backoff_base: float | None = Field(None, gt=0)
    backoff_max: float | None = Field(None, gt=0)
    status_delays: tuple[float, float, float] | None = None
    pair_limit: int | None = Field(None, ge=1)
    pair_window: float | None = Field(None, gt=0)
    template_review_delay: float | None = Field(None, ge=0)
    signup_code_ttl: float | None = Field(None, gt=0)
    history_chunk_messages: int | None = Field(None, ge=1)
    policy_errors_sync: bool | None = None
    media_download_faults: list[int] | None = Field(None, max_length=100)
    lose_send_answers: int | None = Field(None, ge=0)
    send_faults: list[SendFault] | None = Field(None, max_length=100)
    media_upload_faults: list[SendFault] | None = Field(None, max_length=100)
    hold_send_answers: bool | None = None
    played_delay: float | None = Field(None, ge=0)
    throughput_window: float | None = Field(None, gt=0)
    messaging_limit_code: int | None = Field(None, ge=1)
    messaging_limit_sync: bool | None = None
    paced_message_status: bool | None = None


class NumberIn(BaseModel):
    display_phone_number: str = Digits
    verified_name: str = "Negocio de prueba"
    coexistence: bool = True
    waba_id: str | None = None
    mps: int | None = Field(None, ge=1, le=100_000)
    history_sharing: Literal["accepted", "declined", "undecided"] = "accepted"


class NumberPatch(BaseModel):
    mps: int | None = Field(None, ge=1, le=100_000)
    quality_rating: Literal["GREEN", "YELLOW", "RED"] | None = None
    history_sharing: Literal["accepted", "declined", "undecided"] | None = None
    blocked_for: float | None = Field(
        None, ge=0, description="Refuse sends with 368 for this many seconds (0 lifts it)."
    )


MessagingLimit = Literal["TIER_250", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED"]


class MessagingLimitIn(BaseModel):
    messaging_limit: MessagingLimit


class PacingIn(BaseModel):
    paced: bool
    hold_after: int = Field(
        0, ge=0, description="Sends let through while paced before the rest are held."
    )


class CustomerIn(BaseModel):
    wa_id: str = Digits
    name: str = Field(min_length=1, max_length=100)
    delivery: Literal["read", "delivered", "sent", "fail"] = "read"
    marketing_opt_out: bool = False
    marketing_capped: bool = False


class CustomerPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    delivery: Literal["read", "delivered", "sent", "fail"] | None = None
    marketing_opt_out: bool | None = None
    marketing_capped: bool | None = None


class MediaIn(BaseModel):
    data_b64: str | None = None
    mime_type: str | None = None
    filename: str | None = None
    caption: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class InboundIn(BaseModel):
    """What a customer sends. `text` is a shortcut for type text; `payload` is Meta's object."""

    from_: str = Field(alias="from", pattern=r"^\d{7,15}$")
    name: str | None = None
    type: str = "text"
    text: str | None = None
    payload: Any = None
    media: MediaIn | None = None
    context_id: str | None = None
    forwarded: bool = False
    referral: dict[str, Any] | None = None


class OwnerMessageIn(BaseModel):
    to: str = Digits
    type: str = "text"
    text: str | None = None
    payload: Any = None
    media: MediaIn | None = None
    context_id: str | None = None


class ContactIn(BaseModel):
    full_name: str = Field(min_length=1, max_length=200)
    first_name: str | None = None


class HistoryIn(BaseModel):
    chats: int = Field(10, ge=1, le=100_000)
    messages: int = Field(20, ge=1, le=10_000)
    seed: int = 1


class DecisionIn(BaseModel):
    share: bool


class AccountEventIn(BaseModel):
    event: Literal["PARTNER_REMOVED", "ACCOUNT_OFFBOARDED", "ACCOUNT_RECONNECTED"]
    reason: str | None = None
    initiated_by: Literal["USER", "SYSTEM"] | None = None


class TemplateIn(BaseModel):
    waba_id: str
    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
    components: list[dict[str, Any]]
    parameter_format: Literal["POSITIONAL", "NAMED"] = "POSITIONAL"
    status: Literal["PENDING", "APPROVED", "REJECTED"] = "APPROVED"


class TemplateStatusIn(BaseModel):
    event: Literal["APPROVED", "REJECTED", "PAUSED", "DISABLED", "REINSTATED", "FLAGGED"]
    reason: str | None = None


class TokenIn(BaseModel):
    waba_ids: list[str] = Field(default_factory=list)
    expires_in: float | None = Field(
        None, gt=0, description="Seconds (sandbox clock) until Meta answers 190/463 for it."
    )


class ClockIn(BaseModel):
    advance_seconds: float = Field(ge=0, le=400 * 86400)


class SignupIn(BaseModel):
    mode: Literal["coexistence", "new"] = "coexistence"
    phone: str = Digits
    business_name: str | None = None


class SignupConfirmIn(BaseModel):
    confirm_code: str
    share_history: bool = True


# Meta's tier names in phone_number_quality_update (TIER_50 and TIER_1K are older tiers).
QualityLimit = Literal[
    "TIER_50",
    "TIER_250",
    "TIER_1K",
    "TIER_2K",
    "TIER_10K",
    "TIER_100K",
    "TIER_UNLIMITED",
    "TIER_NOT_SET",
]


class QualityUpdateIn(BaseModel):
    event: Literal[
        "ONBOARDING", "THROUGHPUT_UPGRADE", "FLAGGED", "UNFLAGGED", "UPGRADE", "DOWNGRADE"
    ]
    limit: QualityLimit | None = Field(
        None, description="The portfolio's messaging limit now; the current one if omitted."
    )
    old_limit: QualityLimit | None = Field(
        None, description="Sent for UPGRADE and DOWNGRADE; the limit before, if omitted."
    )
    shape: Literal["current", "legacy", "both"] = Field(
        "current",
        description="current: max_daily_conversations_per_business only (from February "
        "2026); legacy: current_limit only; both: the two, as during the change-over.",
    )


class NameUpdateIn(BaseModel):
    decision: Literal["APPROVED", "REJECTED", "DEFERRED"]
    requested_verified_name: str | None = Field(None, max_length=200)
    rejection_reason: str | None = Field(None, max_length=500)


class MarketingPreferenceIn(BaseModel):
    value: Literal["stop", "resume"]
