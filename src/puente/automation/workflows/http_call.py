"""An HTTP step's call, made by the worker outside any transaction.

Addresses on private, loopback and link-local networks are refused unless the workspace
allows them (setting `workflows_allow_private_http`): a workflow must not become a way
to reach Puente's own network. Every address the host resolves to is checked, and
redirects are not followed (a public endpoint cannot bounce the call inward).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_RESPONSE = 256 * 1024


def N_(message: str) -> str:
    return message  # marked for the catalogue; shown in the reader's language


def _said(template: str, **params: Any) -> dict[str, Any]:
    """A reason as the run records it: a catalogue text and its values."""
    return {"template": template, "params": params}


def _refused_address(host: str) -> dict[str, Any] | None:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return _said(N_("The address %(host)s could not be resolved."), host=host)
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            return _said(
                N_("%(host)s is a private or local address, which this workspace does not allow."),
                host=host,
            )
    return None


def perform(call: dict[str, Any]) -> dict[str, Any]:
    """Make the call; the response as the run records it: `ok`, `status`, `data` (the
    JSON body, or the text), or `error` saying why it failed."""
    url = str(call.get("url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return {"ok": False, "error": _said(N_("Not an http(s) address: %(url)s"), url=url[:200])}
    if not call.get("allow_private"):
        refused = _refused_address(parts.hostname)
        if refused:
            return {"ok": False, "error": refused}
    timeout = float(call.get("timeout") or 10)
    body = call.get("body")
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.request(
                str(call.get("method") or "POST"),
                url,
                headers={str(k): str(v) for k, v in (call.get("headers") or {}).items()},
                json=body if body is not None else None,
            )
    except httpx.TimeoutException:
        return {
            "ok": False,
            "error": _said(N_("No answer within %(seconds)s s."), seconds=f"{timeout:g}"),
        }
    except httpx.HTTPError as exc:
        return {
            "ok": False,
            "error": _said(N_("The call failed: %(error)s."), error=type(exc).__name__),
        }
    content = response.content[:MAX_RESPONSE]
    data: Any
    try:
        data = response.json() if content else None
    except ValueError:
        data = content.decode("utf-8", "replace")
    if not 200 <= response.status_code < 300:
        return {
            "ok": False,
            "status": response.status_code,
            "error": _said(N_("The endpoint answered %(status)s."), status=response.status_code),
        }
    return {"ok": True, "status": response.status_code, "data": data}
