"""Canonical e-mail blocks: single addresses no account may register with again, however they are dressed up
(Mastodon's ``/api/v1/admin/canonical_email_blocks``), for the spammer a moderator just removed.

An address's canonical form is Mastodon's: lower case, the dots of its local part taken out and anything after a
``+`` dropped (``J.Doe+spam@Mail.example`` → ``jdoe@mail.example``). A block keeps only that form's SHA-256 (hex),
never the address, as Mastodon does; a moderator may give either the address or the hash. A registration whose
address's hash is blocked is answered as one whose address is taken (Mastodon's answer too: the spammer is not told
why).

Kept in Cassandra ``canonical_email_blocks`` (migration 0056), a row a hash, made by a lightweight transaction; a
listing reads them all.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer

HASH: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class CanonicalEmailBlock:
    id: int  # a snowflake of when it was made
    canonical_email_hash: str


def canonical_email(email: str) -> str:
    """Mastodon's canonical form of an address."""
    local, _, domain = email.strip().lower().partition("@")
    return f"{local.replace('.', '').partition('+')[0]}@{domain}"


def canonical_hash(email: str) -> str:
    return hashlib.sha256(canonical_email(email).encode()).hexdigest()


def entity(block: CanonicalEmailBlock) -> dict[str, Any]:
    """Mastodon's Admin::CanonicalEmailBlock."""
    return {"id": str(block.id), "canonical_email_hash": block.canonical_email_hash}


class CanonicalEmailBlockStore:
    """Cassandra ``canonical_email_blocks``."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._add = session.prepare("INSERT INTO canonical_email_blocks (hash, id) VALUES (?, ?) IF NOT EXISTS")
        self._remove = write_preparer(session, write_consistency)("DELETE FROM canonical_email_blocks WHERE hash = ?")
        self._every = session.prepare("SELECT hash, id FROM canonical_email_blocks")
        self._one = session.prepare("SELECT hash, id FROM canonical_email_blocks WHERE hash = ?")

    async def add(self, block: CanonicalEmailBlock) -> bool:
        """Make the block; False if the hash was blocked already."""
        rows = await execute(self._session, self._add, (block.canonical_email_hash, block.id))
        return bool(rows[0]["[applied]"])

    async def remove(self, block: CanonicalEmailBlock) -> None:
        await execute(self._session, self._remove, (block.canonical_email_hash,))

    async def every(self) -> list[CanonicalEmailBlock]:
        """Every block, newest first."""
        rows = await execute(self._session, self._every)
        return sorted((CanonicalEmailBlock(int(row["id"]), str(row["hash"])) for row in rows),
                      key=lambda block: block.id, reverse=True)

    async def matching(self, email: str) -> CanonicalEmailBlock | None:
        """The block of the address's canonical form, if any."""
        rows = await execute(self._session, self._one, (canonical_hash(email),))
        return CanonicalEmailBlock(int(rows[0]["id"]), str(rows[0]["hash"])) if rows else None
