"""Secrets at rest (Meta access tokens, app secrets, TOTP seeds), encrypted with Fernet.

The key comes from PUENTE_SECRET_KEY; on a one-machine install without it, a key is
generated once into the data directory. Several keys may be given comma-separated:
the first encrypts, all decrypt, which is how `puente secrets rotate` works.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from puente.config import Settings


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt with the first (newest) key."""
        return self._fernet.rotate(token.encode()).decode()


def _key_file(settings: Settings, name: str) -> str:
    path = Path(settings.data_dir) / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    # Several processes may start at once on a new data directory: each writes its key to
    # a file of its own, then links it into place. The link either wins whole or finds the
    # winner's complete key, so every process ends up with the same one.
    draft = path.with_name(f".{name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(draft, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        draft.unlink()
    return key


def secret_box(settings: Settings) -> SecretBox:
    if settings.secret_key is not None:
        raw = settings.secret_key.get_secret_value()
        return SecretBox([k.strip() for k in raw.split(",") if k.strip()])
    return SecretBox([_key_file(settings, "secret.key")])


def session_secret(settings: Settings) -> str:
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    return _key_file(settings, "session.key")


def audit_keys(settings: Settings) -> list[bytes]:
    """The audit chain's signing keys: PUENTE_AUDIT_KEY, else one generated into the data
    directory (like the secret key: back it up with the database's backups, apart)."""
    if settings.audit_key is not None:
        raw = [k.strip() for k in settings.audit_key.get_secret_value().split(",")]
    else:
        raw = [_key_file(settings, "audit.key")]
    return [k.encode() for k in raw if k]
