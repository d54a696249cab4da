"""Requests Kicau makes to addresses its users gave it (web push endpoints, pages whose preview a status shows):
never into the server's own network.

A user may name any host, including one that resolves to 127.0.0.1, a private range or a cloud's metadata address;
a request there would let the user reach what only the server should. So an address is called only when every
address its host resolves to is a global one. ``PublicResolver`` does that check inside the HTTP client's own
resolution, so the connection goes to the very addresses that were checked: a name that answers differently to a
second lookup (DNS rebinding) cannot slip a private address in between a check and the connection. A literal IP
address is never resolved (aiohttp connects to it directly), so ``literal_host_problem`` checks it before.

Development and the tests (pages and push receivers on 127.0.0.1) lift all of it with a setting, which production
refuses (kicau/settings.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: str) -> bool:
    """Whether an IP address (text, perhaps with an IPv6 zone) is a global one; an IPv6 address that carries an
    IPv4 one (mapped, NAT64's well-known prefix, 6to4) only if that one is global too."""
    try:
        found = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(found, ipaddress.IPv6Address):
        carried = found.ipv4_mapped or found.sixtofour or (
            ipaddress.IPv4Address(int(found) & 0xFFFFFFFF) if found in _NAT64 else None)
        if carried is not None and not carried.is_global:
            return False
    return found.is_global


def literal_host_problem(url: str) -> str | None:
    """Why ``url`` may not be called, for a host written as an IP address that is not global; None otherwise
    (a name is checked as it is resolved, ``PublicResolver``)."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if is_public(host) else f"{host} is not a public address"


async def resolves_to_public(url: str) -> bool:
    """Whether every address ``url``'s host resolves to is global (an unresolvable name: True, as the request then
    fails as any other). A check of its own, for a client that resolves again to connect."""
    host = urlsplit(url).hostname or ""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return True
    return all(is_public(str(info[4][0])) for info in found)


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, keeping global addresses only: a host with none is refused (``OSError``, which aiohttp
    reports as a connection error), and the connection is made to the addresses returned here."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        public = [entry for entry in found if is_public(entry["host"])]
        if not public or len(public) != len(found):
            raise OSError(f"{host} resolves to an address that is not public")
        return public

    async def close(self) -> None:
        await self._resolver.close()
