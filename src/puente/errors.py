"""Puente's error hierarchy: each error carries a user-facing message and an HTTP status."""

from __future__ import annotations

from typing import Any


class PuenteError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        code: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        # With `params`, `message` is a msgid with %(name)s placeholders: `self.message` is
        # the English text (the API's), and the web translates `template` and fills it in.
        self.template = message
        self.params = params or {}
        message = message % self.params if params else message
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(PuenteError):
    status_code = 422
    code = "invalid"


class NotAuthenticated(PuenteError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(PuenteError):
    status_code = 403
    code = "forbidden"


class NotFound(PuenteError):
    status_code = 404
    code = "not_found"


class Conflict(PuenteError):
    status_code = 409
    code = "conflict"


class TooManyRequests(PuenteError):
    status_code = 429
    code = "too_many_requests"
