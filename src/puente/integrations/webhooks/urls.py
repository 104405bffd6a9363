"""Which URLs outgoing webhooks may be sent to: http(s), no credentials, and (unless the
operator allows it) no private, loopback or link-local address, checked when an endpoint
is saved and again before each send (a name may resolve elsewhere by then), the send then
connecting to the addresses checked, not to the name resolved anew."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from puente.errors import InvalidInput

MAX_URL = 2048


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` stands for (itself when it is one); [] when it does not resolve."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    # In the resolver's order (its preference, as a connection tries them), each once.
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def addresses_of(url: str) -> list[str]:
    """The addresses the URL's host stands for ([] when it does not resolve); a localhost
    name is 127.0.0.1 whatever the resolver says."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return ["127.0.0.1"]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return resolve_addresses(host, port)


def first_private(addresses: list[str]) -> str | None:
    """The first private, loopback, link-local or otherwise non-public one of `addresses`."""
    return next((address for address in addresses if _is_private(address)), None)


def private_address_of(url: str) -> str | None:
    """The first non-public address the URL's host resolves to, or None. A host that does
    not resolve is not refused here: the send fails and is retried like any network error."""
    return first_private(addresses_of(url))


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, trimmed, if Puente may send to it; InvalidInput with the reason if not."""
    url = url.strip()
    if not url:
        raise InvalidInput("Enter the endpoint's URL.", code="invalid_url")
    if len(url) > MAX_URL:
        raise InvalidInput(
            "The URL is too long (at most %(max)s characters).",
            params={"max": MAX_URL},
            code="invalid_url",
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise InvalidInput("This is not a valid URL.", code="invalid_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "The URL must start with http:// or https:// and name a host.", code="invalid_url"
        )
    if parts.username or parts.password:
        raise InvalidInput(
            "The URL must not carry a user name or password; the signature authenticates Puente.",
            code="invalid_url",
        )
    if not allow_private:
        address = private_address_of(url)
        if address is not None:
            raise InvalidInput(
                "%(host)s is a private or local address (%(address)s); Puente only sends to "
                "public addresses unless the operator sets PUENTE_WEBHOOKS_ALLOW_PRIVATE=true.",
                params={"host": parts.hostname, "address": address},
                code="private_address",
            )
    return url
