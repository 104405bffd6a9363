"""The Meta sandbox: a local emulator of the WhatsApp Cloud API and of the people around it.

It is independent of Puente's database and domain code so integrators can run it on its own:
`create_sandbox_app(SandboxConfig(...))` returns one ASGI app (Graph paths, control API, phone page).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from puente.sandbox.app import create_sandbox_app
    from puente.sandbox.config import SandboxConfig, WebhookFaults

__all__ = ["SandboxConfig", "WebhookFaults", "create_sandbox_app"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: `puente` commands import the sandbox's CLI module, and the app
    # behind it (the web framework, templates) should cost nothing to those that never
    # start it.
    if name == "create_sandbox_app":
        from puente.sandbox.app import create_sandbox_app

        return create_sandbox_app
    if name in ("SandboxConfig", "WebhookFaults"):
        from puente.sandbox import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
