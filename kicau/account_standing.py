"""An account's standing with the staff. Whether it may sign in: not if the operator or staff disabled its login
(``accounts.disabled``, migration 0052; ``python -m services.graph.accounts`` or the admin action ``disable``), nor
if staff suspended it (``accounts.suspended_at``, migration 0058; the admin action ``suspend``). And whether staff
limited (silenced) it (``accounts.silenced_at``, migration 0059) or marked it sensitive (``accounts.sensitized_at``,
migration 0067), which leave its login alone. And whether its sign-up still waits for staff's approval
(``accounts.approval_pending``, migration 0065, services/graph/sign_ups.py): its tokens are refused until then, with
Mastodon's other answer.

The login is read by the graph service as it resolves a token or signs someone in, by the post service before it
publishes a scheduled status (a refused account's are dropped, as Mastodon's ``PublishScheduledStatusWorker`` does),
and by the push service with the account's subscriptions (a refused account is pushed nothing). Suspension, limits
and the sensitive mark show to readers through the account's card (kicau/entities.py), not from here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer


@dataclass(frozen=True, slots=True)
class Standing:
    disabled: bool
    suspended: bool
    pending: bool  # its sign-up waits for staff's approval (others are told it does not exist)

    @property
    def login_refused(self) -> bool:
        """Disabled or suspended (a sign-up waiting is refused otherwise: ``pending``)."""
        return self.disabled or self.suspended


class AccountStanding:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._read = session.prepare("SELECT disabled, suspended_at, approval_pending FROM accounts WHERE id = ?")
        self._read_pending = session.prepare("SELECT id, approval_pending FROM accounts WHERE id IN ?")
        prepare_write = write_preparer(session, write_consistency)
        self._write = prepare_write("UPDATE accounts SET disabled = ? WHERE id = ?")
        self._suspend = prepare_write("UPDATE accounts SET suspended_at = ? WHERE id = ?")
        self._silence = prepare_write("UPDATE accounts SET silenced_at = ? WHERE id = ?")
        self._sensitize = prepare_write("UPDATE accounts SET sensitized_at = ? WHERE id = ?")
        self._pending = prepare_write("UPDATE accounts SET approval_pending = ? WHERE id = ?")
        # The operator's listing, never a request's: every account is read (no index on the flag).
        self._every = session.prepare("SELECT id, username FROM accounts WHERE disabled = true ALLOW FILTERING")

    async def of(self, account_id: int) -> Standing:
        """The account's standing, in one read (one that does not exist: none of it)."""
        rows = await execute(self._session, self._read, (account_id,))
        row = rows[0] if rows else {}
        return Standing(bool(row.get("disabled")), row.get("suspended_at") is not None,
                        bool(row.get("approval_pending")))

    async def pending_among(self, account_ids: list[int]) -> set[int]:
        """Those of the accounts whose sign-up waits for staff's approval, in one read."""
        if not account_ids:
            return set()
        rows = await execute(self._session, self._read_pending, (account_ids,))
        return {int(row["id"]) for row in rows if row.get("approval_pending")}

    async def every(self) -> list[tuple[int, str]]:
        """Every disabled account, (id, username), by username: a scan of all accounts, for the operator's tool."""
        rows = await execute(self._session, self._every, request_timeout=300)
        return sorted(((int(row["id"]), str(row["username"])) for row in rows), key=lambda found: found[1])

    async def set(self, account_id: int, disabled: bool) -> None:
        """For an account that exists (an UPDATE of another would make a row)."""
        await execute(self._session, self._write, (disabled, account_id))

    async def set_suspended(self, account_id: int, since: datetime | None) -> None:
        """Suspended since ``since``, or no longer (None). For an account that exists, as ``set``."""
        await execute(self._session, self._suspend, (since, account_id))

    async def set_silenced(self, account_id: int, since: datetime | None) -> None:
        """Limited (silenced) since ``since``, or no longer (None). For an account that exists, as ``set``."""
        await execute(self._session, self._silence, (since, account_id))

    async def set_sensitized(self, account_id: int, since: datetime | None) -> None:
        """Marked sensitive since ``since``, or no longer (None). For an account that exists, as ``set``."""
        await execute(self._session, self._sensitize, (since, account_id))

    async def set_pending(self, account_id: int, pending: bool) -> None:
        """Waiting for staff's approval, or no longer (null, as for accounts that never waited). For an account that
        exists, as ``set``."""
        await execute(self._session, self._pending, (True if pending else None, account_id))
