"""Graph API errors in Meta's shape: `{"error":{message,type,code,error_subcode?,error_data,fbtrace_id}}`."""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.responses import JSONResponse

TITLES: dict[int, str] = {
    1: "API Unknown",
    100: "Invalid parameter",
    190: "Access token has expired",
    368: "Temporarily blocked for policies violations",
    2500: "Unknown path components",
    130429: "Rate limit hit",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "User has stopped marketing messages",
    131053: "Media upload error",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131060: "Unsupported message from a companion device",
    131064: "Messaging limit reached due to template misclassification",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    132015: "Template is Paused",
    132016: "Template is Disabled",
    133010: "Account not registered",
    2593109: "History sync is turned off by the business from the WhatsApp Business App",
}


class GraphError(Exception):
    """A refusal the way Meta answers it; raised anywhere in the Graph emulation."""

    def __init__(
        self,
        code: int,
        details: str,
        *,
        status: int = 400,
        subcode: int | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.status = status
        self.subcode = subcode
        self.message = message or f"(#{code}) {TITLES.get(code, 'Error')}"

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "error_data": {"messaging_product": "whatsapp", "details": self.details},
            "fbtrace_id": "A" + secrets.token_urlsafe(16),
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        return {"error": error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)

    def webhook_error(self) -> dict[str, Any]:
        """The `errors[]` item used in failed statuses and unsupported messages."""
        return error_item(self.code, self.details)


def error_item(code: int, details: str) -> dict[str, Any]:
    title = TITLES.get(code, "Error")
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }


def invalid(details: str) -> GraphError:
    return GraphError(100, details)


def bad_token() -> GraphError:
    return GraphError(
        190,
        "The access token could not be decrypted or has expired",
        status=401,
        message="Invalid OAuth access token - Cannot parse access token",
    )


def expired_token(expired_at: float, now: float) -> GraphError:
    """Meta's answer to a token past its expiry: 190 with subcode 463, in Meta's words."""
    said = (
        f"Session has expired on {_meta_time(expired_at)}. The current time is {_meta_time(now)}."
    )
    return GraphError(
        190, said, status=401, subcode=463, message=f"Error validating access token: {said}"
    )


def _meta_time(at: float) -> str:
    return time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(at))


def unknown_object(object_id: str) -> GraphError:
    return GraphError(
        100,
        f"Object with ID '{object_id}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation",
        subcode=33,
        message=f"Unsupported request - method type or object ID '{object_id}' not supported",
    )
