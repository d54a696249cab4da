"""Whether the operator disabled an account's login (``accounts.disabled``, migration 0052; set by
``python -m services.graph.accounts``). Read by the graph service as it resolves a token or signs someone in, and by
the post service before it publishes a scheduled status (a disabled account's are dropped, as Mastodon's
``PublishScheduledStatusWorker`` does)."""

from __future__ import annotations

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer


class DisabledAccounts:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._read = session.prepare("SELECT disabled FROM accounts WHERE id = ?")
        self._write = write_preparer(session, write_consistency)("UPDATE accounts SET disabled = ? WHERE id = ?")
        # The operator's listing, never a request's: every account is read (no index on the flag).
        self._every = session.prepare("SELECT id, username FROM accounts WHERE disabled = true ALLOW FILTERING")

    async def disabled(self, account_id: int) -> bool:
        rows = await execute(self._session, self._read, (account_id,))
        return bool(rows and rows[0]["disabled"])

    async def every(self) -> list[tuple[int, str]]:
        """Every disabled account, (id, username), by username: a scan of all accounts, for the operator's tool."""
        rows = await execute(self._session, self._every, request_timeout=300)
        return sorted(((int(row["id"]), str(row["username"])) for row in rows), key=lambda found: found[1])

    async def set(self, account_id: int, disabled: bool) -> None:
        """For an account that exists (an UPDATE of another would make a row)."""
        await execute(self._session, self._write, (disabled, account_id))
