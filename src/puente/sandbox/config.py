"""Settings of one sandbox instance: credentials, webhook delivery, faults and Meta's limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class WebhookFaults(BaseModel):
    """Real-world delivery behaviour, switched on per scenario (all off by default)."""

    duplicate: float = Field(0.0, ge=0, le=1, description="Share of POSTs sent twice.")
    reorder: int = Field(0, ge=0, description="Shuffle pending updates in windows of this size.")
    delay: float = Field(0.0, ge=0, le=60, description="Seconds to wait before each POST.")
    drop: float = Field(
        0.0, ge=0, le=1, description="Share of POSTs lost on the way and retried with backoff."
    )
    seed: int = 7


class SendFault(BaseModel):
    """One refusal of a send, in Meta's error shape, for codes the sandbox's rules never give
    (maintenance, an app rate limit, a server error) or to force one at a chosen moment."""

    code: int
    status: int = Field(400, ge=400, le=599, description="The answer's HTTP status.")
    message: str | None = Field(None, description="Defaults to `(#code) <Meta's title>`.")
    details: str = "Injected by the sandbox"
    subcode: int | None = None
    to: str | None = Field(
        None, pattern=r"^\d{7,15}$", description="Only a send to this recipient takes it."
    )


class SandboxConfig(BaseModel):
    """Everything that can be tuned on a sandbox; the control API can change most of it live."""

    callback_url: str | None = None
    app_id: str = "100000000000001"
    app_secret: str = "sandbox-app-secret"  # noqa: S105 (a public sandbox default)
    verify_token: str = "sandbox-verify-token"  # noqa: S105
    access_token: str = "sandbox-token"  # noqa: S105
    public_url: str | None = Field(
        None, description="Base URL used in media URLs; defaults to the request's base URL."
    )
    state_file: Path | None = None
    bootstrap: bool = Field(True, description="Create a demo WABA, number, customers, templates.")

    batch_size: int = Field(1, ge=1, le=1000)
    concurrency: int = Field(
        1, ge=1, le=64, description="Parallel POSTs; above 1, delivery order is not kept."
    )
    backoff_base: float = Field(0.5, gt=0)
    backoff_max: float = Field(60.0, gt=0)
    faults: WebhookFaults = Field(default_factory=WebhookFaults)

    status_delays: tuple[float, float, float] = Field(
        (0.0, 0.2, 0.5), description="Seconds after the send for sent, delivered and read."
    )
    played_delay: float = Field(
        0.3, ge=0, description="Seconds after read for the `played` status of voice notes."
    )
    throughput_window: float = Field(
        1.0,
        gt=0,
        description="Seconds in which a number may handle `mps` messages, sends and inbound "
        "together (1 like Meta; tests lengthen it so 130429 does not depend on timing).",
    )
    messaging_limit_code: int = Field(
        131048,
        description="Error for a template to a new unique user beyond the portfolio's messaging "
        "limit. Meta documents no dedicated code; 131048 is the closest documented one.",
    )
    messaging_limit_sync: bool = Field(
        False,
        description="Refuse sends beyond the messaging limit with HTTP 400 instead of a "
        "failed status webhook.",
    )
    paced_message_status: bool = Field(
        True,
        description="Put `message_status` in the send response of paced templates (Meta "
        "documents it as optional).",
    )
    pair_limit: int = Field(
        10, ge=1, description="Messages to one recipient allowed within pair_window seconds."
    )
    pair_window: float = Field(6.0, gt=0)
    template_review_delay: float = Field(2.0, ge=0)
    signup_code_ttl: float = 30.0
    history_chunk_messages: int = Field(200, ge=1)
    freeze_gc: bool = Field(
        False,
        description="Move the ever-growing world out of the garbage collector's way every "
        "2,000 sends (standalone runs: `puente sandbox` and the benchmark turn it on).",
    )
    media_download_faults: list[int] = Field(
        default_factory=list,
        description="HTTP statuses the next media downloads answer, one each, in order "
        "(e.g. [503] fails the next download once; 404 looks like an expired URL).",
    )
    lose_send_answers: int = Field(
        0,
        ge=0,
        description="The next n accepted sends lose their answer: Meta has the message (its "
        "statuses follow, with biz_opaque_callback_data) but the connection closes before "
        "the whole answer is written.",
    )
    send_faults: list[SendFault] = Field(
        default_factory=list,
        description="Errors the next sends answer, one send each, in order; a fault with `to` "
        "waits for a send to that recipient (mark-as-read never takes one).",
    )
    media_upload_faults: list[SendFault] = Field(
        default_factory=list,
        description="Errors the next media uploads answer, one upload each, in order (`to` "
        "does not apply: an upload names no recipient).",
    )
    hold_send_answers: bool = Field(
        False,
        description="Accepted sends keep their answer until this is turned off: Meta has the "
        "message (its statuses follow) while the client still waits, as when a worker dies "
        "between Meta's answer and its own commit.",
    )
    policy_errors_sync: bool = Field(
        False,
        description="Return 131047/131049/131050/131026 and the messaging limit in the HTTP "
        "response instead of a failed status webhook (Meta reports them asynchronously).",
    )
