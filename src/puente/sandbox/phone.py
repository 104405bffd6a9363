"""The simulated phone page (placeholder until the browser views land)."""

from __future__ import annotations

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
