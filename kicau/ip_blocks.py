"""IP blocks: the addresses and ranges staff refuse (Mastodon's ``/api/v1/admin/ip_blocks``), the answer to a
sign-up wave or an abusive client that a per-IP rate limit only slows down.

A block names a network (``192.0.2.7`` is ``192.0.2.7/32``; ``2001:db8::/32`` a range) and a severity:

- ``sign_up_block``: no account may be registered from it (``POST /api/v1/accounts`` is Mastodon's 403 "This action
  is not allowed");
- ``no_access``: no request from it is answered (403 ``{"error": "Blocked"}``; a WebSocket is refused before it
  opens), sign-ups included. Health, readiness and metrics stay open: they are the operator's, not the public's;
- ``sign_up_requires_approval``: an account registered from it waits for staff's approval before it may sign in
  (services/graph/sign_ups.py), whatever the instance's registrations mode. The graph service reads the blocks as
  it registers an account (rare, and limited per address), so gateways keep no copy of these.

A block may expire (``expires_in`` seconds): it is written with that TTL, so Cassandra drops it when it lapses,
and every gateway stops applying it at that moment without waiting to hear of it.

Kept in Cassandra ``ip_blocks`` (migration 0061), one partition for all (an instance keeps hundreds), written by
the graph service (services/graph/ip_blocks.py), which then moves ``keys.IP_BLOCKS_VERSION``. Each gateway process
keeps the enforced blocks in memory as a ``Blocklist`` and reads the version each second, loading the blocks
again when it moved (services/gateway/ip_blocks.py): a change applies everywhere within about a second, and a
request costs no read. The client's address is the one the rate limits use (the peer's, or behind
``trusted_proxies`` the nearest ``X-Forwarded-For`` hop that is not one).

One network is blocked once: a second block of it is a 422 ("Ip has already been taken", as Mastodon's). The check
reads the blocks, so two staff adding the same network at the same instant could both succeed; either block
applies.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.ids import time_of_id

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SIGN_UP_REQUIRES_APPROVAL: Final = "sign_up_requires_approval"
SIGN_UP_BLOCK: Final = "sign_up_block"
NO_ACCESS: Final = "no_access"
SEVERITIES: Final = (SIGN_UP_REQUIRES_APPROVAL, SIGN_UP_BLOCK, NO_ACCESS)
# The severities Kicau applies (module doc).
ENFORCED: Final = (SIGN_UP_BLOCK, NO_ACCESS)
MAX_COMMENT: Final = 2_000
# Longest ``expires_in`` a block takes: Cassandra's largest TTL (20 years).
MAX_EXPIRES_IN: Final = 630_720_000
_SCOPE: Final = "all"


@dataclass(frozen=True, slots=True)
class IpBlock:
    id: int  # a snowflake of when it was made
    network: Network
    severity: str
    comment: str = ""
    expires_at: datetime | None = None

    @property
    def created_at(self) -> datetime:
        return time_of_id(self.id)

    @property
    def ip(self) -> str:
        """As Mastodon shows it: the address and its prefix length (``192.0.2.7/32``)."""
        return self.network.with_prefixlen

    def seconds_left(self, now: float) -> int | None:
        """Its TTL written at ``now`` (seconds since the epoch): None for a block that never expires, at least 1."""
        if self.expires_at is None:
            return None
        return max(1, int(self.expires_at.timestamp() - now))


def parsed_network(raw: str) -> Network | None:
    """The network an ``ip`` names (an address alone is its own /32 or /128; bits beyond the prefix are dropped,
    ``10.1.2.3/8`` → ``10.0.0.0/8``), or None if it names none. An IPv4 address written inside IPv6
    (``::ffff:192.0.2.7``) is the IPv4 one, as clients reach the gateway by either."""
    try:
        network = ipaddress.ip_network(raw.strip(), strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None \
            and network.prefixlen >= 96:
        return ipaddress.IPv4Network((network.network_address.ipv4_mapped, network.prefixlen - 96))
    return network


def requires_approval(blocks: Iterable[IpBlock], address: str | None) -> bool:
    """Whether a ``sign_up_requires_approval`` block among ``blocks`` (those in force) names ``address``."""
    network = parsed_network(address) if address else None
    if network is None or network.num_addresses != 1:
        return False  # no address (a Unix socket, a test client's name): nothing names it
    return any(block.severity == SIGN_UP_REQUIRES_APPROVAL and network.subnet_of(block.network)  # type: ignore[arg-type]
               for block in blocks if block.network.version == network.version)


def entity(block: IpBlock) -> dict[str, Any]:
    """Mastodon's Admin::IpBlock."""
    return {"id": str(block.id), "ip": block.ip, "severity": block.severity, "comment": block.comment,
            "created_at": iso_time(block.created_at), "expires_at": iso_time(block.expires_at)}


def enforced(block: IpBlock) -> dict[str, Any]:
    """What a gateway needs of a block it applies (``Blocklist.of``)."""
    return {"ip": block.ip, "severity": block.severity,
            "expires_at": block.expires_at.timestamp() if block.expires_at is not None else None}


class IpBlockStore:
    """Cassandra ``ip_blocks``."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        prepare_write = write_preparer(session, write_consistency)
        # A whole row each time, its TTL too (0: none), so a changed block replaces every cell and the row marker.
        self._put = prepare_write("INSERT INTO ip_blocks (scope, id, ip, severity, comment, expires_at) "
                                  "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?")
        self._remove = prepare_write("DELETE FROM ip_blocks WHERE scope = ? AND id = ?")
        self._every = session.prepare("SELECT id, ip, severity, comment, expires_at FROM ip_blocks WHERE scope = ?")

    async def every(self) -> list[IpBlock]:
        """Every block in force, newest first."""
        rows = await execute(self._session, self._every, (_SCOPE,))
        found = []
        for row in rows:
            network = parsed_network(row["ip"] or "")
            if network is None or row["severity"] is None:
                continue
            expires_at = row["expires_at"].replace(tzinfo=UTC) if row["expires_at"] is not None else None
            found.append(IpBlock(int(row["id"]), network, str(row["severity"]), row["comment"] or "", expires_at))
        return found

    async def put(self, block: IpBlock) -> None:
        """Write the block, new or changed, expiring at its ``expires_at``."""
        await execute(self._session, self._put, (_SCOPE, block.id, block.ip, block.severity, block.comment,
                                                 block.expires_at, block.seconds_left(time.time()) or 0))

    async def remove(self, block: IpBlock) -> None:
        await execute(self._session, self._remove, (_SCOPE, block.id))


class Blocklist:
    """The enforced blocks as a gateway applies them: per severity, the blocked networks by IP version and prefix
    length, so an address is checked with one set lookup per distinct prefix length (at most 33 for IPv4), however
    many blocks there are. A block that lapses stops applying at its ``expires_at``."""

    def __init__(self, blocks: Iterable[tuple[Network, str, float | None]] = ()) -> None:
        self._blocks = [(network, severity, expires) for network, severity, expires in blocks
                        if severity in ENFORCED]
        self._build(time.time())

    @classmethod
    def of(cls, listed: Iterable[dict[str, Any]]) -> Blocklist:
        """From the graph service's listing (``enforced``'s dicts); entries it cannot read are left out."""
        blocks = []
        for item in listed:
            network = parsed_network(str(item.get("ip", "")))
            expires = item.get("expires_at")
            if network is not None:
                blocks.append((network, str(item.get("severity")), float(expires) if expires is not None else None))
        return cls(blocks)

    def _build(self, now: float) -> None:
        live = [(n, s, e) for n, s, e in self._blocks if e is None or e > now]
        self._next_expiry = min((e for _, _, e in live if e is not None), default=None)
        # severity -> ((version, prefix length) -> the networks' addresses shifted down to their prefix)
        self._by_severity: dict[str, dict[tuple[int, int], set[int]]] = {s: {} for s in ENFORCED}
        for network, severity, _ in live:
            prefixes = self._by_severity[severity]
            shift = network.max_prefixlen - network.prefixlen
            prefixes.setdefault((network.version, network.prefixlen), set()).add(
                int(network.network_address) >> shift)
        self.denying = bool(self._by_severity[NO_ACCESS])
        self.refusing_sign_ups = self.denying or bool(self._by_severity[SIGN_UP_BLOCK])

    def __len__(self) -> int:
        return sum(len(found) for prefixes in self._by_severity.values() for found in prefixes.values())

    def _matches(self, address: str, *severities: str) -> bool:
        """Whether a block of any of ``severities`` names ``address``: the address parsed once for all of them."""
        if self._next_expiry is not None and time.time() >= self._next_expiry:
            self._build(time.time())
        searched = [self._by_severity[s] for s in severities if self._by_severity[s]]
        if not searched:
            return False
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False  # not an address (a test client's name, a Unix socket): nothing names it
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        value, bits = int(parsed), parsed.max_prefixlen
        return any((value >> (bits - length)) in found for prefixes in searched
                   for (version, length), found in prefixes.items() if version == parsed.version)

    def denies(self, address: str) -> bool:
        """Whether no request from ``address`` is answered (``no_access``)."""
        return self.denying and self._matches(address, NO_ACCESS)

    def refuses_sign_up(self, address: str) -> bool:
        """Whether no account may be registered from ``address`` (``sign_up_block``, or ``no_access``)."""
        return self.refusing_sign_ups and self._matches(address, SIGN_UP_BLOCK, NO_ACCESS)
