"""Media store: uploads, Meta-style short-lived download URLs, and sample files for customers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from typing import Any

from puente.sandbox.engine import Sandbox
from puente.sandbox.errors import GraphError, unknown_object
from puente.sandbox.state import Media, make_media

URL_TTL = 300.0  # Meta's media URLs expire after 5 minutes
LIMITS = {
    "audio": 16 * 2**20,
    "document": 100 * 2**20,
    "image": 5 * 2**20,
    "video": 16 * 2**20,
    "sticker": 500 * 2**10,
}
MIME_KIND = {
    "audio/aac": "audio",
    "audio/amr": "audio",
    "audio/mpeg": "audio",
    "audio/mp4": "audio",
    "audio/ogg": "audio",
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "sticker",
    "video/mp4": "video",
    "video/3gpp": "video",
}


def media_kind(mime_type: str) -> str | None:
    base = mime_type.split(";")[0].strip().lower()
    if base in MIME_KIND:
        return MIME_KIND[base]
    if base.startswith("text/") or base.startswith("application/"):
        return "document"
    return None


def do_upload(sb: Sandbox, data: bytes, mime_type: str, filename: str | None) -> Media:
    kind = media_kind(mime_type)
    if kind is None:
        raise GraphError(131053, f"Unsupported media type {mime_type}")
    if not data:
        raise GraphError(131053, "The uploaded file is empty")
    if len(data) > LIMITS[kind]:
        raise GraphError(131053, f"{kind} files are limited to {LIMITS[kind]} bytes")
    with sb.store.lock:
        media = make_media(sb.store.new_id(), data, mime_type, sb.clock.now(), filename)
        sb.world.media[media.id] = media
    return media


def access_media(sb: Sandbox, media_id: str) -> Media:
    media = sb.world.media.get(media_id)
    if media is None:
        raise unknown_object(media_id)
    return media


def _signature(sb: Sandbox, media_id: str, expires: int) -> str:
    key = sb.config.app_secret.encode()
    return hmac.new(key, f"{media_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def media_info(sb: Sandbox, media: Media, base_url: str) -> dict[str, Any]:
    expires = int(sb.clock.now() + URL_TTL)
    url = f"{base_url}/_sandbox/lookaside/{media.id}?ext={expires}&hash={_signature(sb, media.id, expires)}"
    return {
        "messaging_product": "whatsapp",
        "url": url,
        "mime_type": media.mime_type,
        "sha256": media.sha256,
        "file_size": media.file_size,
        "id": media.id,
    }


def check_download(sb: Sandbox, media_id: str, expires: str, signature: str) -> Media:
    """A URL that expired or was forged gives 404, as Meta's lookaside does."""
    media = sb.world.media.get(media_id)
    if media is None or not expires.isdigit():
        raise GraphError(100, "Media not found", status=404)
    if not hmac.compare_digest(signature, _signature(sb, media_id, int(expires))):
        raise GraphError(100, "Media URL signature is invalid", status=404)
    if sb.clock.now() > int(expires):
        raise GraphError(100, "Media URL has expired; fetch a new one", status=404)
    if sb.config.media_download_faults:
        status = sb.config.media_download_faults.pop(0)
        if status == 404:
            raise GraphError(100, "Media URL has expired; fetch a new one", status=404)
        raise GraphError(2, "Service temporarily unavailable", status=status)
    return media


def _png(width: int = 2, height: int = 2) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    raw = b"".join(b"\x00" + b"\x30\x90\xd0" * width for _ in range(height))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


SAMPLES: dict[str, tuple[str, bytes]] = {
    "image": ("image/png", _png()),
    "sticker": (
        "image/webp",
        b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00",
    ),
    "document": ("application/pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),
    "audio": ("audio/ogg", b"OggS\x00\x02" + b"\x00" * 20),
    "video": ("video/mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 12),
}


def sample_media(
    sb: Sandbox, kind: str, data_b64: str | None, mime_type: str | None, filename: str | None
) -> Media:
    """Media a simulated customer sends: given bytes, or a small valid sample file."""
    default_mime, default_data = SAMPLES[kind]
    data = base64.b64decode(data_b64) if data_b64 else default_data
    return do_upload(sb, data, mime_type or default_mime, filename)
