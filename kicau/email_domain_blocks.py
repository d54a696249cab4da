"""E-mail domain blocks: the e-mail domains no account may register with (Mastodon's
``/api/v1/admin/email_domain_blocks``), the operator's first answer to a wave of sign-ups from throwaway mailboxes.

A block names a domain and covers its subdomains too: blocking ``spam.example`` refuses ``a@mail.spam.example``, as
Mastodon matches a block against the address's domain and each domain above it. A registration with a blocked
address is a 422 (Mastodon's "uses a disallowed e-mail provider") and leaves nothing behind; each refusal is counted
against the block that matched it (the most specific), for its history: how many times it refused a sign-up each
of the last seven days (``uses``) and how many different addresses tried (``accounts``).

A block made with ``allow_with_approval`` refuses nothing: a sign-up it covers waits for staff's approval instead
(services/graph/sign_ups.py), unless another block covering the address refuses it. Mastodon also resolves the
address's mail servers and refuses an address whose servers' domains are blocked; Kicau looks at the address alone
(no DNS on the sign-up path).

Kept in Cassandra ``email_domain_blocks`` (migration 0055), a row a domain (created with a lightweight transaction,
so one domain is blocked once); a listing reads them all (an instance holds hundreds, not millions). The history's
counts live in Redis, a key a block and a day, gone after ``HISTORY_DAYS`` + 1 days.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.ids import time_of_id
from kicau.resp import command, round_trip

HISTORY_DAYS: Final = 7
_DAY_SECONDS: Final = 86_400
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_DOMAIN: Final = 253
REFUSED: Final = "Validation failed: Email uses a disallowed e-mail provider"


@dataclass(frozen=True, slots=True)
class EmailDomainBlock:
    id: int  # a snowflake of when it was made
    domain: str
    allow_with_approval: bool = False  # holds the sign-ups it covers for approval instead of refusing them

    @property
    def created_at(self) -> datetime:
        return time_of_id(self.id)


def normalized_domain(raw: str) -> str | None:
    """The domain as blocks keep it (lower case, its international labels in their ASCII form, no final dot), or
    None for what is no domain name: labels of letters, digits and inner hyphens, 63 characters each, 253 in all."""
    text = raw.strip().rstrip(".").lower()
    if not text or len(text) > MAX_DOMAIN * 2:
        return None
    try:
        ascii_form = text.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_form.split(".")
    if len(ascii_form) > MAX_DOMAIN or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return ascii_form


def domains_of(email: str) -> list[str]:
    """The address's domain and each domain above it, most specific first (``a.b.c`` → ``a.b.c``, ``b.c``,
    ``c``); none for an address whose domain is no domain name."""
    domain = normalized_domain(email.rpartition("@")[2])
    if domain is None:
        return []
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def day_of(seconds: float) -> int:
    """The UTC day's start (epoch seconds)."""
    return int(seconds) // _DAY_SECONDS * _DAY_SECONDS


def refusal_commands(domain: str, email: str, now: float | None = None) -> list[bytes]:
    """Count a refused sign-up against the block of ``domain``: a use, and the address among the day's."""
    day = day_of(time.time() if now is None else now)
    expiry = b"%d" % ((HISTORY_DAYS + 1) * _DAY_SECONDS)
    uses, accounts = keys.email_block_uses(domain, day).encode(), keys.email_block_accounts(domain, day).encode()
    return [command(b"INCR", uses), command(b"EXPIRE", uses, expiry),
            command(b"PFADD", accounts, email.lower().encode()), command(b"EXPIRE", accounts, expiry)]


async def histories(redis: Redis, domains: Sequence[str], now: float | None = None) -> dict[str, list[dict[str, str]]]:
    """Each block's history: its last ``HISTORY_DAYS`` days, today first (Mastodon's ``history``), in one round
    trip."""
    today = day_of(time.time() if now is None else now)
    days = [today - i * _DAY_SECONDS for i in range(HISTORY_DAYS)]
    commands = [c for domain in domains for day in days
                for c in (command(b"GET", keys.email_block_uses(domain, day).encode()),
                          command(b"PFCOUNT", keys.email_block_accounts(domain, day).encode()))]
    replies = await round_trip(redis, commands) if commands else []
    found: dict[str, list[dict[str, str]]] = {}
    for index, domain in enumerate(domains):
        base = index * HISTORY_DAYS * 2
        found[domain] = [{"day": str(day), "accounts": str(int(replies[base + 2 * i + 1] or 0)),
                          "uses": str(int(replies[base + 2 * i] or 0))} for i, day in enumerate(days)]
    return found


def entity(block: EmailDomainBlock, history: list[dict[str, str]]) -> dict[str, Any]:
    """Mastodon's Admin::EmailDomainBlock."""
    return {"id": str(block.id), "domain": block.domain, "created_at": iso_time(block.created_at),
            "history": history, "allow_with_approval": block.allow_with_approval}


class EmailDomainBlockStore:
    """Cassandra ``email_domain_blocks``."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        # A lightweight transaction: two moderators blocking one domain at once make one block.
        self._add = session.prepare("INSERT INTO email_domain_blocks (domain, id, allow_with_approval) VALUES (?, ?, ?)"
                                    " IF NOT EXISTS")
        self._remove = write("DELETE FROM email_domain_blocks WHERE domain = ?")
        self._every = session.prepare("SELECT domain, id, allow_with_approval FROM email_domain_blocks")
        self._matching = session.prepare(
            "SELECT domain, id, allow_with_approval FROM email_domain_blocks WHERE domain IN ?")

    async def add(self, block: EmailDomainBlock) -> bool:
        """Make the block; False if the domain was blocked already."""
        rows = await execute(self._session, self._add,
                             (block.domain, block.id, True if block.allow_with_approval else None))
        return bool(rows[0]["[applied]"])

    async def remove(self, block: EmailDomainBlock) -> None:
        await execute(self._session, self._remove, (block.domain,))

    async def every(self) -> list[EmailDomainBlock]:
        """Every block, newest first."""
        rows = await execute(self._session, self._every)
        return sorted(map(_block, rows), key=lambda block: block.id, reverse=True)

    async def covering(self, email: str) -> list[EmailDomainBlock]:
        """The blocks covering the address's domain, the most specific first."""
        domains = domains_of(email)
        if not domains:
            return []
        rows = await execute(self._session, self._matching, (domains,))
        found = {block.domain: block for block in map(_block, rows)}
        return [found[domain] for domain in domains if domain in found]


def refusing(covering: Sequence[EmailDomainBlock]) -> EmailDomainBlock | None:
    """Of the blocks covering an address (``covering``'s), the most specific that refuses it, if any."""
    return next((block for block in covering if not block.allow_with_approval), None)


def _block(row: dict[str, Any]) -> EmailDomainBlock:
    return EmailDomainBlock(int(row["id"]), str(row["domain"]), bool(row.get("allow_with_approval")))
