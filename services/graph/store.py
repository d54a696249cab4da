"""Cassandra persistence of accounts, OAuth apps and tokens, and the follow graph."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, NamedTuple

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from kicau import posting_defaults
from kicau.clients import execute, write_preparer
from kicau.entities import PROFILE_FIELDS

# Reads of one large account's followers among a gateway's connected accounts in flight at once.
FOLLOWERS_AMONG_CONCURRENCY = 8


def _now() -> datetime:
    return datetime.now(UTC)


class FollowClaim(NamedTuple):
    created: bool  # this call created the edge
    unsent_notification: int  # the follow notification not yet published, or 0


class GraphStore:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        prepare = session.prepare

        write = write_preparer(session, write_consistency)

        self._claim_username = write(
            "INSERT INTO accounts_by_username (username, account_id) VALUES (?, ?) IF NOT EXISTS"
        )
        self._release_username = write("DELETE FROM accounts_by_username WHERE username = ? IF account_id = ?")
        self._claim_email = write("INSERT INTO accounts_by_email (email, account_id) VALUES (?, ?) IF NOT EXISTS")
        self._release_email = write("DELETE FROM accounts_by_email WHERE email = ? IF account_id = ?")
        self._take_over_username = write(
            "UPDATE accounts_by_username SET account_id = ? WHERE username = ? IF account_id = ?")
        self._take_over_email = write("UPDATE accounts_by_email SET account_id = ? WHERE email = ? IF account_id = ?")
        self._insert_account = write(
            "INSERT INTO accounts (id, username, email, display_name, note, locked, bot, password_hash, created_at,"
            " approval_pending, sign_up_reason) VALUES (?, ?, ?, ?, ?, false, false, ?, ?, ?, ?)"
        )
        self._delete_account = write("DELETE FROM accounts WHERE id = ?")
        # One statement per profile field: an update writes only the fields it changes, so two updates of
        # different fields at once both stand (a read-merge-write would let one undo the other).
        self._set_profile = {field: write(f"UPDATE accounts SET {field} = ? WHERE id = ?")
                             for field in (*PROFILE_FIELDS, *posting_defaults.COLUMNS.values())}
        self._by_username = prepare("SELECT account_id FROM accounts_by_username WHERE username = ?")
        self._by_email = prepare("SELECT account_id FROM accounts_by_email WHERE email = ?")
        self._account = prepare("SELECT * FROM accounts WHERE id = ?")
        self._insert_app = write(
            "INSERT INTO oauth_apps (client_id, client_secret, name, website, redirect_uri, scopes, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self._app = prepare("SELECT * FROM oauth_apps WHERE client_id = ?")
        self._insert_token = write(
            "INSERT INTO oauth_tokens (token_hash, account_id, client_id, scopes, created_at) VALUES (?, ?, ?, ?, ?)"
        )
        self._token = prepare("SELECT * FROM oauth_tokens WHERE token_hash = ?")
        # The operator's lookup, never a request's: the table has no index by account, so this reads every token.
        self._tokens_of = prepare("SELECT token_hash FROM oauth_tokens WHERE account_id = ? ALLOW FILTERING")
        self._delete_token = write("DELETE FROM oauth_tokens WHERE token_hash = ?")
        self._forget_push = write("DELETE FROM push_subscriptions WHERE account_id = ? AND token_hash = ?")
        self._claim_follow = write(
            "INSERT INTO following (follower_id, followee_id, created_at, unsent_notification) VALUES (?, ?, ?, ?)"
            " IF NOT EXISTS"
        )
        self._notification_sent = write(
            # Conditional, as the claim is: a plain write beside lightweight transactions on the same row may
            # order before them (Paxos and the client stamp differently).
            "UPDATE following SET unsent_notification = null WHERE follower_id = ? AND followee_id = ?"
            " IF unsent_notification = ?"
        )
        self._release_follow = write("DELETE FROM following WHERE follower_id = ? AND followee_id = ? IF EXISTS")
        self._insert_follower = write(
            "INSERT INTO followers (followee_id, follower_id, created_at) VALUES (?, ?, ?)"
        )
        self._delete_follower = write("DELETE FROM followers WHERE followee_id = ? AND follower_id = ?")
        self._is_following = prepare("SELECT followee_id FROM following WHERE follower_id = ? AND followee_id = ?")
        self._followees_among = prepare(
            "SELECT followee_id FROM following WHERE follower_id = ? AND followee_id IN ?")
        self._count_change = write(
            "UPDATE account_stats SET following_count = following_count + ? WHERE account_id = ?"
        )
        self._followers_change = write(
            "UPDATE account_stats SET followers_count = followers_count + ? WHERE account_id = ?"
        )
        self._followers_page = prepare(
            "SELECT follower_id FROM followers WHERE followee_id = ? AND follower_id < ? LIMIT ?"
        )
        self._following_page = prepare(
            "SELECT followee_id FROM following WHERE follower_id = ? AND followee_id < ? LIMIT ?"
        )
        self._followers_count = prepare("SELECT followers_count FROM account_stats WHERE account_id = ?")
        self._followers_among = prepare(
            "SELECT follower_id FROM followers WHERE followee_id = ? AND follower_id IN ?"
        )
        self._write_consistency = write_consistency

    # Accounts -----------------------------------------------------------------------------------------

    async def claim_username(self, username_key: str, account_id: int) -> bool:
        rows = await execute(self._session, self._claim_username, (username_key, account_id))
        return bool(rows[0]["[applied]"])

    async def release_username(self, username_key: str, account_id: int) -> None:
        await execute(self._session, self._release_username, (username_key, account_id))

    async def claim_email(self, email: str, account_id: int) -> bool:
        rows = await execute(self._session, self._claim_email, (email, account_id))
        return bool(rows[0]["[applied]"])

    async def release_email(self, email: str, account_id: int) -> None:
        await execute(self._session, self._release_email, (email, account_id))

    async def take_over_username(self, username_key: str, holder: int, account_id: int) -> bool:
        """Claim a username ``holder`` claimed for an account it never made (services/graph/service.py
        ``_claim``); False if another took it over first."""
        rows = await execute(self._session, self._take_over_username, (account_id, username_key, holder))
        return bool(rows[0]["[applied]"])

    async def take_over_email(self, email: str, holder: int, account_id: int) -> bool:
        """The same for an e-mail address."""
        rows = await execute(self._session, self._take_over_email, (account_id, email, holder))
        return bool(rows[0]["[applied]"])

    async def insert_account(
        self, *, account_id: int, username: str, email: str, display_name: str, password_hash: str,
        pending: bool = False, reason: str | None = None,
    ) -> None:
        """``pending``: its sign-up waits for staff's approval (services/graph/sign_ups.py); ``reason``, what the
        applicant wrote for staff."""
        await execute(
            self._session,
            self._insert_account,
            (account_id, username, email, display_name, "", password_hash, _now(), True if pending else None,
             reason or None),
        )

    async def delete_account(self, account_id: int) -> None:
        """The account's row (a rejected sign-up's: services/graph/sign_ups.py)."""
        await execute(self._session, self._delete_account, (account_id,))

    async def update_profile(self, account_id: int, changes: dict[str, Any]) -> None:
        """Write the given profile fields (of ``PROFILE_FIELDS``, and the posting defaults' columns) in one batch of
        one partition: all or none."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED,
                               consistency_level=self._write_consistency)
        for field, value in changes.items():
            batch.add(self._set_profile[field], (value, account_id))
        await execute(self._session, batch)

    async def account(self, account_id: int) -> dict[str, Any] | None:
        rows = await execute(self._session, self._account, (account_id,))
        return rows[0] if rows else None

    async def token_hashes_of(self, account_id: int) -> list[str]:
        """Every token of the account (a scan of all tokens: for the operator's tool, not for requests)."""
        rows = await execute(self._session, self._tokens_of, (account_id,), request_timeout=300)
        return [str(row["token_hash"]) for row in rows]

    async def account_id_by_username(self, username_key: str) -> int | None:
        rows = await execute(self._session, self._by_username, (username_key,))
        return int(rows[0]["account_id"]) if rows else None

    async def account_id_by_email(self, email: str) -> int | None:
        rows = await execute(self._session, self._by_email, (email,))
        return int(rows[0]["account_id"]) if rows else None

    # OAuth --------------------------------------------------------------------------------------------

    async def insert_app(
        self, *, client_id: str, client_secret: str, name: str, website: str | None, redirect_uri: str,
        scopes: set[str],
    ) -> None:
        await execute(
            self._session,
            self._insert_app,
            (client_id, client_secret, name, website, redirect_uri, scopes, _now()),
        )

    async def app(self, client_id: str) -> dict[str, Any] | None:
        rows = await execute(self._session, self._app, (client_id,))
        return rows[0] if rows else None

    async def insert_token(
        self, *, token_hash: str, account_id: int | None, client_id: str, scopes: set[str]
    ) -> None:
        await execute(self._session, self._insert_token, (token_hash, account_id, client_id, scopes, _now()))

    async def token(self, token_hash: str) -> dict[str, Any] | None:
        rows = await execute(self._session, self._token, (token_hash,))
        return rows[0] if rows else None

    async def delete_token(self, token_hash: str) -> None:
        await execute(self._session, self._delete_token, (token_hash,))

    async def forget_push_subscription(self, account_id: int, token_hash: str) -> None:
        await execute(self._session, self._forget_push, (account_id, token_hash))

    # Follow graph -------------------------------------------------------------------------------------

    async def claim_follow(self, follower_id: int, followee_id: int, notification_id: int) -> FollowClaim:
        """Create the edge, owing ``notification_id`` to the followee, unless it exists: then what the existing
        edge still owes (a lightweight transaction that is not applied returns the row it found)."""
        rows = await execute(self._session, self._claim_follow, (follower_id, followee_id, _now(), notification_id))
        row = rows[0]
        if row["[applied]"]:
            return FollowClaim(created=True, unsent_notification=notification_id)
        return FollowClaim(created=False, unsent_notification=int(row.get("unsent_notification") or 0))

    async def notification_sent(self, follower_id: int, followee_id: int, notification_id: int) -> None:
        await execute(self._session, self._notification_sent, (follower_id, followee_id, notification_id))

    async def release_follow(self, follower_id: int, followee_id: int) -> bool:
        rows = await execute(self._session, self._release_follow, (follower_id, followee_id))
        return bool(rows[0]["[applied]"])

    async def add_follower_row(self, follower_id: int, followee_id: int) -> None:
        await execute(self._session, self._insert_follower, (followee_id, follower_id, _now()))

    async def remove_follower_row(self, follower_id: int, followee_id: int) -> None:
        await execute(self._session, self._delete_follower, (followee_id, follower_id))

    async def change_counts(self, follower_id: int, followee_id: int, delta: int) -> None:
        # Counter updates cannot share a batch with ordinary rows; they go in a counter batch of their own.
        batch = BatchStatement(batch_type=BatchType.COUNTER, consistency_level=self._write_consistency)
        batch.add(self._count_change, (delta, follower_id))
        batch.add(self._followers_change, (delta, followee_id))
        await execute(self._session, batch)

    async def is_following(self, follower_id: int, followee_id: int) -> bool:
        return bool(await execute(self._session, self._is_following, (follower_id, followee_id)))

    async def followers_page(self, account_id: int, max_id: int, limit: int) -> list[int]:
        rows = await execute(self._session, self._followers_page, (account_id, max_id, limit))
        return [int(r["follower_id"]) for r in rows]

    async def following_page(self, account_id: int, max_id: int, limit: int) -> list[int]:
        rows = await execute(self._session, self._following_page, (account_id, max_id, limit))
        return [int(r["followee_id"]) for r in rows]

    async def followers_count(self, account_id: int) -> int:
        rows = await execute(self._session, self._followers_count, (account_id,))
        return int(rows[0]["followers_count"] or 0) if rows else 0

    async def followees_among(self, follower_id: int, candidates: list[int]) -> set[int]:
        """Which of ``candidates`` the account follows: reads inside its partition, 100 keys at a time."""
        chunks = [candidates[start: start + 100] for start in range(0, len(candidates), 100)]
        found = await asyncio.gather(*(execute(self._session, self._followees_among, (follower_id, chunk))
                                       for chunk in chunks))
        return {int(r["followee_id"]) for rows in found for r in rows}

    async def followers_among(self, account_id: int, candidates: list[int]) -> list[int]:
        """Which of ``candidates`` follow the account: reads inside its partition, 100 keys at a time, up to
        ``FOLLOWERS_AMONG_CONCURRENCY`` reads at once. This is on the path of a large account's status to its
        followers' open streams: one after the other, two reads held that delivery for ~70-180 ms."""
        slots = asyncio.Semaphore(FOLLOWERS_AMONG_CONCURRENCY)

        async def read(chunk: list[int]) -> list[dict[str, Any]]:
            async with slots:
                return await execute(self._session, self._followers_among, (account_id, chunk))

        chunks = [candidates[start: start + 100] for start in range(0, len(candidates), 100)]
        return [int(r["follower_id"]) for rows in await asyncio.gather(*map(read, chunks)) for r in rows]
