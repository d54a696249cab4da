"""Sign-ups held for staff's approval: Mastodon's ``approved`` registrations mode, and IP blocks of severity
``sign_up_requires_approval``.

When a sign-up waits: the instance's ``KICAU_REGISTRATIONS_MODE`` is ``approved``; or, whatever the mode, the
applicant's address is in a network an IP block marks ``sign_up_requires_approval`` (kicau/ip_blocks.py), or its
e-mail address is under an e-mail domain block made with ``allow_with_approval`` (kicau/email_domain_blocks.py).
In mode ``none`` nobody may register (403, Mastodon's "This action is not allowed"). With
``KICAU_SIGN_UP_REASON_REQUIRED`` in mode ``approved`` (Mastodon's "require a reason to join"), a sign-up without a
``reason`` is a 422 "Reason can't be blank", before anything is claimed.

While it waits (``accounts.approval_pending``, migration 0065):

- the sign-up answers a token, as Mastodon's does, and so does signing in later; every request with any of the
  account's tokens is 403 "Your login is currently pending approval" (kicau/tokens.py), streams included;
- to everyone else the account does not exist: its profile and its lookup are 404, ``GET /api/v1/accounts?id[]=``
  leaves it out, it cannot be followed, blocked or muted, and it is in neither the index of names (search, mentions)
  nor the profile directory;
- staff are told of it (the ``admin.sign_up`` notification, as for every sign-up) and list it with the ``pending``
  filter (``status=pending`` in v2), and among the others (services/graph/admin.py), with ``approved: false`` and what
  the applicant wrote as ``invite_request`` (``reason``, at most ``MAX_REASON`` characters, Mastodon's limit).

``approve`` (403 for an account not waiting, as Mastodon's): the account's entries in the index of names and the
directory first (harmless while it still waits: readers go by its card and its row), then the flag, then its entry
in the waiting list; its tokens' cache entries are dropped before the flag and after it (twice, as for disabling,
services/graph/accounts.py), so every token of it works at once. ``reject`` (403 likewise) deletes the account as
Mastodon's does, reserving nothing: its tokens, then its username's and e-mail address's claims (either may be
registered again at once), then its row and its entry in the waiting list. A retry after a failure part way finds
what is left and finishes it: each step is idempotent, and the row goes last but for the list's entry.

The waiting list is Cassandra ``pending_sign_ups``, one partition, newest first. Its entry is written before the
account, so no waiting account is ever missing from it; an entry whose account no longer waits is skipped.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

from cassandra.cluster import Session

from kicau import directory, resp, tokens
from kicau.clients import execute, write_preparer
from kicau.entities import MAX_SIGN_UP_REASON
from kicau.ip_blocks import requires_approval
from kicau.web import ApiError

if TYPE_CHECKING:
    from services.graph.service import GraphService

MAX_REASON: Final = MAX_SIGN_UP_REASON
NOT_ALLOWED: Final = "This action is not allowed"
# The waiting list read for staff's ``pending`` filter: more than any instance keeps waiting.
LISTED_AT_MOST: Final = 10_000
_SCOPE: Final = "all"


class PendingSignUps:
    """Cassandra ``pending_sign_ups``: the accounts whose sign-up waits for staff."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._add = write("INSERT INTO pending_sign_ups (scope, account_id) VALUES (?, ?)")
        self._drop = write("DELETE FROM pending_sign_ups WHERE scope = ? AND account_id = ?")
        self._every = session.prepare("SELECT account_id FROM pending_sign_ups WHERE scope = ? LIMIT ?")

    async def add(self, account_id: int) -> None:
        await execute(self._session, self._add, (_SCOPE, account_id))

    async def drop(self, account_id: int) -> None:
        await execute(self._session, self._drop, (_SCOPE, account_id))

    async def every(self) -> list[int]:
        """The waiting accounts' ids, newest first (entries of accounts no longer waiting too: module doc)."""
        rows = await execute(self._session, self._every, (_SCOPE, LISTED_AT_MOST))
        return [int(row["account_id"]) for row in rows]


async def held_for_approval(graph: GraphService, address: str | None) -> bool:
    """Whether a sign-up now, from ``address``, waits for staff (module doc); 403 in mode ``none``."""
    mode = graph.settings.registrations_mode
    if mode == "none":
        raise ApiError(403, NOT_ALLOWED)
    if mode == "approved":
        return True
    return address is not None and requires_approval(await graph.ip_blocks.every(), address)


def checked_reason(reason: str | None, required: bool = False) -> str | None:
    """What the applicant wrote for staff, or None; 422 if it is longer than Mastodon takes, or missing where it
    is ``required``."""
    if reason is not None and len(reason) > MAX_REASON:
        raise ApiError(422, f"Validation failed: Reason is too long (maximum is {MAX_REASON} characters)")
    written = reason.strip() or None if reason is not None else None
    if required and written is None:
        raise ApiError(422, "Validation failed: Reason can't be blank")
    return written


async def approve(graph: GraphService, row: dict[str, Any]) -> None:
    """Let a waiting account in (module doc); 403 for one not waiting."""
    if not row.get("approval_pending"):
        raise ApiError(403, NOT_ALLOWED)
    account_id = int(row["id"])
    await resp.round_trip(graph.redis, [graph.names.add_command(str(row["username"]).lower(), account_id),
                                        directory.joined_command(account_id)])
    # Its tokens' cache entries (which say it waits) dropped before the flag too: a crash right after the flag
    # leaves none of them refusing it for the hour they are kept.
    token_hashes = await graph.store.token_hashes_of(account_id)
    await tokens.forget(graph.redis, *token_hashes)
    await graph.standing.set_pending(account_id, False)
    await graph.pending_sign_ups.drop(account_id)
    await graph.cards.forget(account_id)
    await tokens.forget(graph.redis, *token_hashes)
    # Again after a resolution begun before the flag's change could have cached the old answer (accounts.py).
    await asyncio.sleep(tokens.FRESH_RESOLUTION_SECONDS + 0.5)
    await tokens.forget(graph.redis, *token_hashes)


async def reject(graph: GraphService, row: dict[str, Any]) -> None:
    """Delete a waiting account, reserving nothing (module doc); 403 for one not waiting."""
    if not row.get("approval_pending"):
        raise ApiError(403, NOT_ALLOWED)
    account_id = int(row["id"])
    token_hashes = await graph.store.token_hashes_of(account_id)
    for token_hash in token_hashes:
        await graph.store.delete_token(token_hash)
    await tokens.forget(graph.redis, *token_hashes)
    await graph.store.release_username(str(row["username"]).lower(), account_id)
    if row.get("email"):
        await graph.store.release_email(str(row["email"]).lower(), account_id)
    await graph.store.delete_account(account_id)
    await graph.pending_sign_ups.drop(account_id)
    await graph.cards.forget(account_id)
    await tokens.end_streams(graph.redis, account_id=account_id)
