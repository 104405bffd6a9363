"""The outgoing webhooks' worker, on the job module's WEBHOOKS queue."""

from __future__ import annotations

from puente.integrations.webhooks.service import configure
from puente.runtime import Runtime


def install(runtime: Runtime) -> None:
    """Configure the webhooks' operations on the runtime's database."""
    configure(
        runtime.db,
        secrets=runtime.secrets,
        allow_private=runtime.settings.webhooks_allow_private,
    )
