"""Where accounts sign up and sign in from: Mastodon's Admin::Account ``ip`` (the last address) and ``ips`` (each
address and when it was last used), and its admin accounts filter ``ip`` (the accounts that used an address, or
any address of a network), which staff use to find the other accounts of a spammer before an IP block
(kicau/ip_blocks.py).

An address is recorded when an account is registered, and when it signs in: a token by password, or the
authorization form's sign-in (not the code's exchange, which the app's server may make from elsewhere). The
gateway passes the client's address (the one the rate limits use) in ``CLIENT_IP_HEADER``; a call without one
records nothing.

Kept in Cassandra (migration 0062): ``account_ips``, an account's partition, a row an address (a later use
replaces its time); and ``accounts_by_ip``, partitioned by the address's IPv4 /16 or IPv6 /32 (``bucket_of``), so
that a filter reads one partition for a network that narrow or narrower, and at most 256 for one up to 8 bits
wider (an IPv4 /8, an IPv6 /24); a wider one is refused. Both are written with a TTL of ``KEPT_DAYS`` from the last
use: a year later they are gone, as Mastodon's IP history is pruned.
"""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import datetime
from typing import Final

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.ip_blocks import Network, parsed_network

CLIENT_IP_HEADER: Final = "X-Kicau-Client-Ip"
KEPT_DAYS: Final = 365
# The partitions of ``accounts_by_ip``: an IPv4 /16, an IPv6 /32.
_BUCKET_BITS: Final = {4: 16, 6: 32}
# A filter reads at most 2**8 partitions.
_WIDEST_SPAN: Final = 8
# Rows of one ``accounts_by_ip`` partition a filter reads; an account's addresses shown.
MOST_READ: Final = 10_000
MOST_SHOWN: Final = 100


def client_address(raw: str | None) -> str | None:
    """The address a gateway passed, in its canonical form (an IPv4 one written inside IPv6 as IPv4), or None."""
    if not raw:
        return None
    network = parsed_network(raw)
    if network is None or network.num_addresses != 1:
        return None
    return str(network.network_address)


def bucket_of(address: str) -> str:
    """The ``accounts_by_ip`` partition of an address (``client_address``'s form)."""
    parsed = ipaddress.ip_address(address)
    return str(ipaddress.ip_network((parsed, _BUCKET_BITS[parsed.version]), strict=False))


def buckets_of(network: Network) -> list[str] | None:
    """The partitions that hold the addresses of ``network``; None if it is too wide to read (module doc)."""
    bits = _BUCKET_BITS[network.version]
    if network.prefixlen >= bits:
        return [str(network.supernet(new_prefix=bits))]
    if bits - network.prefixlen > _WIDEST_SPAN:
        return None
    return [str(subnet) for subnet in network.subnets(new_prefix=bits)]


class AccountIps:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        prepare_write = write_preparer(session, write_consistency)
        ttl = KEPT_DAYS * 86_400
        self._by_account = prepare_write(
            f"INSERT INTO account_ips (account_id, ip, used_at) VALUES (?, ?, ?) USING TTL {ttl}")
        self._by_ip = prepare_write(
            f"INSERT INTO accounts_by_ip (prefix, ip, account_id, used_at) VALUES (?, ?, ?, ?) USING TTL {ttl}")
        self._of = session.prepare("SELECT ip, used_at FROM account_ips WHERE account_id = ?")
        self._in = session.prepare(f"SELECT ip, account_id FROM accounts_by_ip WHERE prefix = ? LIMIT {MOST_READ}")

    async def record(self, account_id: int, address: str, at: datetime) -> None:
        """The account used ``address`` (``client_address``'s form) at ``at``."""
        await asyncio.gather(execute(self._session, self._by_account, (account_id, address, at)),
                             execute(self._session, self._by_ip, (bucket_of(address), address, account_id, at)))

    async def of(self, account_id: int) -> list[tuple[str, datetime]]:
        """The account's addresses and when each was last used, the latest first (at most ``MOST_SHOWN``)."""
        rows = await execute(self._session, self._of, (account_id,))
        used = sorted(((str(row["ip"]), row["used_at"]) for row in rows if row["used_at"] is not None),
                      key=lambda found: found[1], reverse=True)
        return used[:MOST_SHOWN]

    async def accounts_in(self, network: Network) -> set[int] | None:
        """The accounts that used an address of ``network``; None if it is too wide to read."""
        buckets = buckets_of(network)
        if buckets is None:
            return None
        found: set[int] = set()
        for rows in await asyncio.gather(*(execute(self._session, self._in, (b,)) for b in buckets)):
            found.update(int(row["account_id"]) for row in rows
                         if ipaddress.ip_address(row["ip"]) in network)
        return found
