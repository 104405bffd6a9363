"""The Meta sandbox: a local emulator of the WhatsApp Cloud API and of the people around it.

It is independent of Puente's database and domain code so integrators can run it on its own:
`create_sandbox_app(SandboxConfig(...))` returns one ASGI app (Graph paths, control API, phone page).
"""

from puente.sandbox.app import create_sandbox_app
from puente.sandbox.config import SandboxConfig, WebhookFaults

__all__ = ["SandboxConfig", "WebhookFaults", "create_sandbox_app"]
