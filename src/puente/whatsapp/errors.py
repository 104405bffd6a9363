"""Meta's Graph API errors as typed exceptions (whatsapp-protocol.md §7).

Each error carries Meta's code, subcode, message and details, whether a retry can help,
and a plain-words `reason` for the people who read it in the inbox.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GraphError(Exception):
    """An error answered by the Graph API (or met on the way to it)."""

    retryable: ClassVar[bool] = False
    # Plain words for agents; Meta's own message is kept in `.message` and `.details`.
    plain: ClassVar[str] = "Meta refused the request"

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        details: str | None = None,
        http_status: int | None = None,
        error_type: str | None = None,
        fbtrace_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.details = details
        self.http_status = http_status
        self.error_type = error_type
        self.fbtrace_id = fbtrace_id
        # Seconds Meta (or the transport) asked us to wait, when it said so.
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        """One sentence for people: what happened and, where it helps, what to do."""
        code = f" (error {self.code})" if self.code is not None else ""
        detail = self.details or self.message
        if detail and detail not in self.plain:
            return f"{self.plain}{code}: {detail}"
        return f"{self.plain}{code}"

    def as_dict(self) -> dict[str, Any]:
        """What Puente stores on a failed message."""
        return {
            "code": self.code,
            "subcode": self.subcode,
            "message": self.message,
            "details": self.details,
            "reason": self.reason,
            "retryable": self.retryable,
        }

    def __str__(self) -> str:
        return self.reason


class GraphTransportError(GraphError):
    """The request never got an answer: connection refused, reset or timed out."""

    retryable = True
    plain = "Meta could not be reached; Puente will try again"

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        # False when the request surely never left (connect failure): a retry cannot
        # duplicate it. True when it may have reached Meta (read timeout, reset).
        self.request_sent = request_sent


class GraphTimeout(GraphTransportError):
    plain = "Meta did not answer in time; Puente will try again"


class AuthError(GraphError):
    plain = "Meta refused the access token; reconnect the number in Settings"


class GraphPermissionError(GraphError):
    plain = "The access token lacks a permission Meta requires for this"


class InvalidParameter(GraphError):
    plain = "Meta rejected a parameter of the message"


class RateLimited(GraphError):
    """The app, WABA or number sent too fast (4, 80007, 130429): slow the whole lane."""

    retryable = True
    plain = "Meta's rate limit was reached; Puente will slow down and retry"


class PairRateLimited(GraphError):
    """Too many messages to the same recipient (131056): delay that recipient only."""

    retryable = True
    plain = "Too many messages to this person in a short time; Puente will retry shortly"


class SpamRateLimited(GraphError):
    plain = "Meta is limiting this number for spam (quality); sending stopped"


class EngagementLimited(GraphError):
    plain = (
        "Meta held back this marketing message to protect the person's experience; "
        "try again in a day or more"
    )


class MarketingOptOut(GraphError):
    plain = "This person stopped marketing messages from the business"


class ReEngagementRequired(GraphError):
    plain = (
        "More than 24 hours passed since this person last wrote; only a template can be sent now"
    )


class Undeliverable(GraphError):
    plain = (
        "WhatsApp could not deliver this message (the number may not be on WhatsApp "
        "or uses an old version)"
    )


class AccountRestricted(GraphError):
    """Account locked (131031), policy block (368), payment problem (131042)."""

    plain = "The WhatsApp Business account is restricted; check WhatsApp Manager"


class UnsupportedMessage(GraphError):
    plain = "WhatsApp does not support this message type here"


class MediaError(GraphError):
    plain = "The media file could not be uploaded or downloaded"


class Maintenance(GraphError):
    retryable = True
    plain = "WhatsApp is under maintenance for this number; Puente will retry"


class MessagingLimitReached(GraphError):
    plain = "The business reached its messaging limit; wait for it to reset"


class TemplateError(GraphError):
    plain = "The template was refused"


class NumberNotRegistered(GraphError):
    plain = "This phone number is not registered with the Cloud API"


class ServerError(GraphError):
    retryable = True
    plain = "Meta had a temporary problem; Puente will try again"


class MediaUrlExpired(GraphError):
    """A media download URL answered 404: fetch a fresh URL with get_media and retry."""

    plain = "The media download link expired; ask for a new one"


class UntrustedMediaLink(MediaError):
    """A media link that does not point at Meta: Puente never sends a number's token
    there (a webhook's `url` is data from outside, not an address to trust)."""

    plain = "The media link does not point at Meta; Puente did not download it"


class BadMediaId(MediaError):
    """A media id that is not Meta's shape (digits): it never becomes part of a Graph
    request path or query."""

    plain = "The media id is not one Meta gives"


class MediaRedirected(MediaError):
    """A media download answered with a redirect instead of the file."""

    plain = "The media download was redirected instead of answered; Puente did not follow"


class MediaTooLarge(MediaError):
    """A media download grew past the caller's size cap (Meta's own cap is 100 MB)."""

    plain = "The media file is larger than Puente accepts"


_TEMPLATE_REASONS = {
    132000: "the number of template parameters does not match the template",
    132001: "the template does not exist or is not approved in that language",
    132005: "the template text is too long once filled in",
    132007: "the template breaks a WhatsApp content policy",
    132012: "a template parameter has the wrong format",
    132015: "the template is paused because of low quality",
    132016: "the template is disabled because of low quality",
    132018: "the template parameters are not valid",
}

_BY_CODE: dict[int, type[GraphError]] = {
    0: AuthError,
    190: AuthError,
    3: GraphPermissionError,
    10: GraphPermissionError,
    131005: GraphPermissionError,
    100: InvalidParameter,
    4: RateLimited,
    80007: RateLimited,
    130429: RateLimited,
    131056: PairRateLimited,
    131048: SpamRateLimited,
    131049: EngagementLimited,
    131050: MarketingOptOut,
    131047: ReEngagementRequired,
    131026: Undeliverable,
    131031: AccountRestricted,
    368: AccountRestricted,
    131042: AccountRestricted,
    131051: UnsupportedMessage,
    131052: MediaError,
    131053: MediaError,
    131057: Maintenance,
    131064: MessagingLimitReached,
    133010: NumberNotRegistered,
    # 1 and 2 are Meta's "unknown"/"service temporarily unavailable" API errors.
    1: ServerError,
    2: ServerError,
    131000: ServerError,
}


def error_class_for(code: int | None, http_status: int | None) -> type[GraphError]:
    if code is not None:
        if code in _BY_CODE:
            return _BY_CODE[code]
        if 200 <= code <= 299:
            return GraphPermissionError
        if 132000 <= code <= 132999:
            return TemplateError
    if http_status is not None and http_status >= 500:
        return ServerError
    if http_status == 429:
        return RateLimited
    if http_status in (401,):
        return AuthError
    return GraphError


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def parse_graph_error(http_status: int, body: Any) -> GraphError:
    """The typed error for an unsuccessful Graph response with JSON `body` (or any body)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        text = body if isinstance(body, str) else ""
        cls = error_class_for(None, http_status)
        return cls(
            f"HTTP {http_status} from the Graph API{': ' + text[:200] if text else ''}",
            http_status=http_status,
        )
    code = _as_int(err.get("code"))
    subcode = _as_int(err.get("error_subcode"))
    data = err.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    cls = error_class_for(code, http_status)
    exc = cls(
        str(err.get("message") or err.get("error_user_msg") or f"HTTP {http_status}"),
        code=code,
        subcode=subcode,
        details=str(details) if details else None,
        http_status=http_status,
        error_type=err.get("type") if isinstance(err.get("type"), str) else None,
        fbtrace_id=err.get("fbtrace_id") if isinstance(err.get("fbtrace_id"), str) else None,
    )
    if isinstance(exc, TemplateError) and code in _TEMPLATE_REASONS and not exc.details:
        exc.details = _TEMPLATE_REASONS[code]
    return exc
