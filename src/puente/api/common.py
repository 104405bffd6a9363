"""Shapes every API route shares: the error body, documented error responses, pages, cursors."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from puente.errors import InvalidInput

T = TypeVar("T")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. not_found, missing_scope, invalid")
    message: str = Field(description="what went wrong, for a person")
    details: Any = Field(
        default=None,
        description="for invalid input, a list of {field, message}; for conflicts, the existing id",
    )


class ErrorOut(BaseModel):
    error: ErrorDetail


_ERROR_TEXT = {
    400: "The body is not JSON",
    401: "No API token, or an unknown or revoked one",
    403: "The token lacks the scope this route needs",
    404: "Not found in the token's workspace",
    409: "Conflicts with existing data (duplicate, or a limit reached)",
    413: "The body is larger than PUENTE_MAX_API_BODY_BYTES",
    422: "The request is not valid; `details` names each bad field",
    502: "Meta could not be reached or refused; `message` says why",
}


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="pass it back to get the next page; null on the last page"
    )


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the given error statuses (401 and 422 are always possible)."""
    wanted = sorted({401, 422, *codes})
    return {code: {"model": ErrorOut, "description": _ERROR_TEXT[code]} for code in wanted}


def invalid_field(field: str, message: str) -> InvalidInput:
    """A 422 shaped like FastAPI's own validation errors, naming the field."""
    return InvalidInput(f"{field}: {message}", details=[{"field": field, "message": message}])


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[Any]:
    """The values inside an opaque cursor made by `encode_cursor`; 422 if it was tampered with."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid_field("cursor", "not a cursor this API returned") from None
    if not isinstance(values, list) or len(values) != length:
        raise invalid_field("cursor", "not a cursor this API returned")
    return values
