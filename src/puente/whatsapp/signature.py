"""The `X-Hub-Signature-256` check on Meta's webhook POSTs (whatsapp-protocol.md §1).

Pure functions: an HMAC-SHA256 of the raw body keyed with the app secret, compared in
constant time before anything parses the body.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-hub-signature-256"
_PREFIX = "sha256="


def compute_signature(app_secret: bytes, body: bytes) -> str:
    """The header value Meta would send for `body`: `sha256=<hex>`."""
    return _PREFIX + hmac.new(app_secret, body, hashlib.sha256).hexdigest()


def verify_signature(app_secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` under `app_secret`.

    An empty secret verifies nothing: anyone can compute an HMAC under an empty key.
    """
    if not app_secret or not header or not header.startswith(_PREFIX):
        return False
    expected = compute_signature(app_secret, body)
    # Compare as bytes so a header with non-ASCII characters is a mismatch, not a TypeError.
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode("utf-8", "replace"))
