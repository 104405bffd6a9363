"""Settings, read once from environment variables with the PUENTE_ prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PUENTE_", env_file=None, extra="ignore")

    # Where SQLite, media files and generated keys live.
    data_dir: Path = Path("./var")
    # Unset means SQLite (WAL) inside data_dir; a postgresql:// URL runs on PostgreSQL.
    database_url: str | None = None

    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    # Meta app (or the sandbox standing in for it).
    graph_base_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v23.0"
    meta_app_id: str = ""
    meta_app_secret: SecretStr = SecretStr("")
    meta_verify_token: SecretStr = SecretStr("")
    meta_config_id: str = ""

    # Key for secrets at rest (Fernet, urlsafe base64). Generated into data_dir if unset.
    secret_key: SecretStr | None = None
    # Keys the audit log's chain is signed with (comma-separated: the first signs, all
    # verify). Kept outside the database so that someone who can write to it cannot
    # rewrite the log and recompute the chain. Unset: generated once into the data dir.
    audit_key: SecretStr | None = None
    # Signs session cookies; generated into data_dir if unset.
    session_secret: SecretStr | None = None
    secure_cookies: bool = False

    # Run the background workers inside the web process (the one-machine default).
    run_workers: bool = True
    worker_poll_seconds: float = Field(default=0.5, gt=0)

    max_webhook_bytes: int = 3 * 1024 * 1024
    # The largest body the REST API reads (a broadcast's CSV travels inside one).
    max_api_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # Raw webhook bodies hold message text and phone numbers: processed ones (DONE) older
    # than this are deleted by the retention run. 0 keeps them forever.
    webhook_retention_days: int = Field(default=30, ge=0)
    max_channels_per_workspace: int = 15
    # Outgoing webhooks may point at private, loopback and link-local addresses (a
    # receiver on the same machine or network). Off, they are refused at creation and
    # again at each send, so an admin cannot make Puente probe the internal network.
    webhooks_allow_private: bool = False

    smtp_url: str | None = None
    mail_from: str = "puente@localhost"
    # Development only (`puente demo` turns it on): /dev/mail shows the mail Puente kept.
    # Off, /dev/mail does not exist; it must stay off in production.
    dev_mail: bool = False

    log_level: str = "INFO"
    # "json": one JSON object per line (time, level, logger, message, and the request id,
    # workspace id and webhook event id when known), for a log collector.
    log_format: Literal["text", "json"] = "text"
    # When set, GET /metrics asks for it as a bearer token; unset, /metrics is open.
    metrics_token: SecretStr | None = None
    # GET /readyz fails when a running worker has not gone round its loop for this long
    # (seconds); 0 turns that check off.
    worker_stale_seconds: float = Field(default=120, ge=0)

    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the plain postgres scheme and run it through psycopg 3.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{(self.data_dir / 'puente.sqlite3').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
