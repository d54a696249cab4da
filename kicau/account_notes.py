"""What an account keeps about another, shown to it alone in their Relationship: a private note (``note``) and
whether it features the other on its profile (``endorsed``), as Mastodon's account notes and endorsements.

The record is Cassandra's (stack/migrations/0029_account_notes_and_endorsements.cql), written by the graph service:

* a **note** is one row per (account, target), replaced by each save and removed when saved empty; at most
  ``MAX_NOTE_LENGTH`` characters (Mastodon's limit).
* an **endorsement** (``POST /api/v1/accounts/:id/pin``) is only of an account followed (Mastodon's rule): a claim
  per (account, target) taken with a lightweight transaction, so a repeated one is one and keeps its id; then the
  account's list (newest first), written again by every retry, so a crash after the claim is repaired by the next
  attempt. Undone (``/unpin``, or the follow's end: an unfollow or a block) list entry first, then the claim given
  back (conditional on its id): a crash in between leaves the claim, and the retry removes the rest again. An
  endorsement made while an unfollow of the same account runs may outlive the follow (Mastodon's check is not
  atomic either); the lists read by others show only the accounts still followed.
"""

from __future__ import annotations

import asyncio
from typing import Final, NamedTuple

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.ids import ABOVE_EVERY_ID

MAX_NOTE_LENGTH: Final = 2_000


class Annotations(NamedTuple):
    """An account's note on a target ("" for none) and whether it endorses the target."""

    note: str = ""
    endorsed: bool = False


class AccountNoteStore:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._save = write("INSERT INTO account_notes (account_id, target_id, comment) VALUES (?, ?, ?)")
        self._erase = write("DELETE FROM account_notes WHERE account_id = ? AND target_id = ?")
        self._claim = write("INSERT INTO endorsement_claims (account_id, target_id, endorsement_id) VALUES (?, ?, ?)"
                            " IF NOT EXISTS")
        self._release = write("DELETE FROM endorsement_claims WHERE account_id = ? AND target_id = ?"
                              " IF endorsement_id = ?")
        self._list = write("INSERT INTO endorsements_by_account (account_id, endorsement_id, target_id)"
                           " VALUES (?, ?, ?)")
        self._unlist = write("DELETE FROM endorsements_by_account WHERE account_id = ? AND endorsement_id = ?")
        prepare = session.prepare
        self._note = prepare("SELECT comment FROM account_notes WHERE account_id = ? AND target_id = ?")
        self._claim_of = prepare("SELECT endorsement_id FROM endorsement_claims WHERE account_id = ? AND target_id = ?")
        self._page = prepare("SELECT endorsement_id, target_id FROM endorsements_by_account WHERE account_id = ?"
                             " AND endorsement_id < ? LIMIT ?")

    async def annotations(self, account_id: int, target_id: int) -> Annotations:
        """The account's note on the target and whether it endorses it: two reads at once."""
        notes, claims = await asyncio.gather(execute(self._session, self._note, (account_id, target_id)),
                                             execute(self._session, self._claim_of, (account_id, target_id)))
        return Annotations(str(notes[0]["comment"] or "") if notes else "", bool(claims))

    async def save_note(self, account_id: int, target_id: int, comment: str) -> None:
        if comment:
            await execute(self._session, self._save, (account_id, target_id, comment))
        else:
            await execute(self._session, self._erase, (account_id, target_id))

    async def endorse(self, account_id: int, target_id: int, endorsement_id: int) -> None:
        """Claim the endorsement under ``endorsement_id`` (a repeated one keeps the first's id), then list it."""
        row = (await execute(self._session, self._claim, (account_id, target_id, endorsement_id)))[0]
        held = endorsement_id if row["[applied]"] else int(row["endorsement_id"])
        await execute(self._session, self._list, (account_id, held, target_id))

    async def unendorse(self, account_id: int, target_id: int) -> None:
        """Unlist, then give the claim back (none: nothing to do)."""
        rows = await execute(self._session, self._claim_of, (account_id, target_id))
        if not rows:
            return
        held = int(rows[0]["endorsement_id"])
        await execute(self._session, self._unlist, (account_id, held))
        await execute(self._session, self._release, (account_id, target_id, held))

    async def endorsed(self, account_id: int, max_id: int | None, limit: int) -> list[tuple[int, int]]:
        """(endorsement id, target) of the account's endorsements below ``max_id``, newest first."""
        below = ABOVE_EVERY_ID if max_id is None else max_id
        rows = await execute(self._session, self._page, (account_id, below, limit))
        return [(int(row["endorsement_id"]), int(row["target_id"])) for row in rows]
