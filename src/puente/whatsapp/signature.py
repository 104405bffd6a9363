"""The `X-Hub-Signature-256` check on Meta's webhook POSTs (whatsapp-protocol.md §1).

An HMAC-SHA256 of the raw body keyed with the app secret, compared in constant time
before anything parses the body.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-hub-signature-256"
_PREFIX = "sha256="
_PREFIX_BYTES = _PREFIX.encode()


def compute_signature(app_secret: bytes, body: bytes) -> str:
    """The header value Meta would send for `body`: `sha256=<hex>`."""
    return _PREFIX + hmac.new(app_secret, body, hashlib.sha256).hexdigest()


class SignatureCheck:
    """`X-Hub-Signature-256` checks under one app secret, keyed once: each check copies
    the keyed HMAC instead of setting the key up again (one per webhook POST).

    An empty secret verifies nothing: anyone can compute an HMAC under an empty key.
    """

    def __init__(self, app_secret: bytes) -> None:
        self._mac = hmac.new(app_secret, digestmod=hashlib.sha256) if app_secret else None

    def __call__(self, body: bytes, header: bytes | str | None) -> bool:
        """True when `header` (as received) is the signature of `body`."""
        if isinstance(header, str):
            # Compare as bytes so a non-ASCII header is a mismatch, not a TypeError.
            header = header.encode("utf-8", "replace")
        if self._mac is None or not header or not header.startswith(_PREFIX_BYTES):
            return False
        mac = self._mac.copy()
        mac.update(body)
        return hmac.compare_digest(_PREFIX_BYTES + mac.hexdigest().encode(), header.strip().lower())
