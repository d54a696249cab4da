"""Claims: at most one mark of a kind (a favourite, a reblog, a bookmark) per account and status.

Each kind has a table keyed by (account, status) holding the mark's id. A mark is claimed with a lightweight
transaction (``IF NOT EXISTS``), so concurrent or repeated requests make one mark and keep its id; a claim that is
not applied returns the row it found. A kind whose mark publishes an event (the author's notification) also
records that the event is still ``unsent``, until the writer marks it sent: a retry after a crash finds the claim
unsent and publishes the event again, with the same id. A mark is given back last, conditional on its id, so a
retry of a half-done undo finds the claim and repeats the rest.
"""

from __future__ import annotations

from typing import NamedTuple

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer


class Claim(NamedTuple):
    id: int  # the mark's: a favourite's, a reblog's (its status id), a bookmark's
    created: bool  # this call made the claim
    unsent: bool  # its event is still to be published (always false for a kind without events)


class Claims:
    """One kind's claims table: ``(account_id, status_id) -> <mark>[, unsent]``."""

    def __init__(self, session: Session, write_consistency: int, *, table: str, mark: str,
                 evented: bool) -> None:
        self._session = session
        self._evented = evented
        write = write_preparer(session, write_consistency)
        if evented:
            self._claim = write(f"INSERT INTO {table} (account_id, status_id, {mark}, unsent) VALUES (?, ?, ?, true)"
                                " IF NOT EXISTS")
            self._sent = write(f"UPDATE {table} SET unsent = null WHERE account_id = ? AND status_id = ?"
                               f" IF {mark} = ?")
        else:
            self._claim = write(f"INSERT INTO {table} (account_id, status_id, {mark}) VALUES (?, ?, ?) IF NOT EXISTS")
        self._release = write(f"DELETE FROM {table} WHERE account_id = ? AND status_id = ? IF {mark} = ?")
        self._claim_of = session.prepare(f"SELECT {mark} FROM {table} WHERE account_id = ? AND status_id = ?")
        self._claimed = session.prepare(f"SELECT status_id FROM {table} WHERE account_id = ?")
        self._mark = mark

    async def claim(self, account_id: int, status_id: int, mark_id: int) -> Claim:
        """Claim the mark under ``mark_id``, or find the claim already made."""
        row = (await execute(self._session, self._claim, (account_id, status_id, mark_id)))[0]
        if row["[applied]"]:
            return Claim(mark_id, created=True, unsent=self._evented)
        return Claim(int(row[self._mark]), created=False, unsent=bool(row.get("unsent")))

    async def sent(self, account_id: int, status_id: int, mark_id: int) -> None:
        """The mark's event is published: a retry need not publish it again."""
        await execute(self._session, self._sent, (account_id, status_id, mark_id))

    async def claim_of(self, account_id: int, status_id: int) -> int | None:
        rows = await execute(self._session, self._claim_of, (account_id, status_id))
        return int(rows[0][self._mark]) if rows else None

    async def release(self, account_id: int, status_id: int, mark_id: int) -> bool:
        """Give the claim back; True when this call did (a concurrent undo may have)."""
        rows = await execute(self._session, self._release, (account_id, status_id, mark_id))
        return bool(rows[0]["[applied]"])

    async def claimed(self, account_id: int) -> list[int]:
        """Every status the account has marked so (to build its set of marks, kicau/reader_marks.py)."""
        rows = await execute(self._session, self._claimed, (account_id,))
        return [int(row["status_id"]) for row in rows]
