"""Seeding bench accounts, tokens and follows straight into Cassandra.

Registration through the API costs an Argon2id hash (0.1-0.3 s each), far too slow for thousands of
accounts, so the bench writes the same rows the graph service writes (``services/graph/store.py``):
``accounts``, ``accounts_by_username``, ``accounts_by_email``, ``oauth_tokens`` (SHA-256 of the token, see
``kicau/tokens.py``), ``following``/``followers`` and the ``account_stats`` counters.

Every write is an upsert of fixed ids in the bench range (``bench.common.BENCH_BASE``), usernames start with
``bench_``, and counters are set to their target value (read, then add the difference), so seeding twice
changes nothing. Tokens are derived from a random per-machine secret kept in ``.stack/bench/secret``: stable
across runs (no pile of tokens), unguessable elsewhere. Bench accounts have no usable password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from cassandra import InvalidRequest
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import BatchStatement, BatchType

from bench.common import REDIS_URL, STATE, log
from kicau import clients, follower_lists, tokens
from kicau.bulk_rows import GraphRowWriters
from kicau.settings import CommonSettings

BENCH_CLIENT_ID = "bench"
SCOPES = {"read", "write", "follow", "push"}
CONCURRENCY = 128
FOLLOWER_BATCH = 200  # rows of one followers partition per unlogged batch


def _secret() -> bytes:
    path = STATE / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def token_for(account_id: int) -> str:
    return hmac.new(_secret(), f"bench-token:{account_id}".encode(), hashlib.sha256).hexdigest()


class Seeder:
    def __init__(self) -> None:
        settings = CommonSettings()
        self.session = clients.cassandra_session(settings)
        prepare = self.session.prepare
        self._rows = GraphRowWriters.prepare(self.session, bot=True, password_hash="!bench")
        self._token = prepare(
            "INSERT INTO oauth_tokens (token_hash, account_id, client_id, scopes, created_at) VALUES (?, ?, ?, ?, ?)"
        )
        self._app = prepare(
            "INSERT INTO oauth_apps (client_id, client_secret, name, website, redirect_uri, scopes, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self._app_done = False

    def close(self) -> None:
        clients.close_cassandra(self.session)

    def _run(self, statement: Any, params: Sequence[Sequence[Any]]) -> None:
        results = execute_concurrent_with_args(
            self.session, statement, params, concurrency=CONCURRENCY, raise_on_first_error=True
        )
        del results

    def app(self) -> None:
        if self._app_done:
            return
        self.session.execute(self._app, (BENCH_CLIENT_ID, secrets.token_hex(16), "kicau-bench", None,
                                         "urn:ietf:wg:oauth:2.0:oob", SCOPES, datetime.now(UTC)))
        self._app_done = True

    def accounts(self, named: dict[int, str], *, with_tokens: bool = True) -> dict[int, str]:
        """Upsert accounts ``{id: username}`` (username starting with ``bench_``); returns ``{id: token}``."""
        assert all(name.startswith("bench_") for name in named.values())
        now = datetime.now(UTC)
        self.app()
        rows = [(i, n, f"{n}@bench.invalid", n, now) for i, n in named.items()]
        self._run(self._rows.account, rows)
        self._run(self._rows.username, [(n.lower(), i) for i, n in named.items()])
        self._run(self._rows.email, [(f"{n.lower()}@bench.invalid", i) for i, n in named.items()])
        if not with_tokens:
            return {}
        issued = {i: token_for(i) for i in named}
        self._run(self._token, [(tokens.hash_token(t), i, BENCH_CLIENT_ID, SCOPES, now) for i, t in issued.items()])
        return issued

    def followers_count(self, account_id: int) -> int:
        """Follower edges actually stored (the fanout reads these rows, not the counter)."""
        rows = list(self.session.execute(
            "SELECT count(*) AS n FROM followers WHERE followee_id = %s", (account_id,), timeout=60))
        return int(rows[0]["n"]) if rows else 0

    def follow(self, followers: Iterable[int], followee: int, *, with_following_rows: bool = True) -> None:
        """Make every id in ``followers`` follow ``followee`` (both directions of the edge)."""
        ids = list(followers)
        now = datetime.now(UTC)
        # One partition per followee: same-partition unlogged batches are the cheapest way in.
        batches = []
        for start in range(0, len(ids), FOLLOWER_BATCH):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for follower in ids[start:start + FOLLOWER_BATCH]:
                batch.add(self._rows.follower, (followee, follower, now))
            batches.append(batch)
        futures = [self.session.execute_async(b) for b in batches[:32]]
        for index, batch in enumerate(batches[32:]):
            futures[index % 32].result()
            futures[index % 32] = self.session.execute_async(batch)
        for future in futures:
            future.result()
        # Written behind the graph service's back: the fanout must not keep using its copy of this list.
        with redis.Redis.from_url(REDIS_URL) as client:
            follower_lists.forget_now(client, [followee])
        if with_following_rows:
            self._run(self._rows.following, [(f, followee, now) for f in ids])

    def followers_counter(self, account_id: int) -> int:
        """The account's followers_count counter: seeding sets it last, so it marks a completed seed."""
        rows = list(self.session.execute(self._rows.stats, (account_id,)))
        return int(rows[0]["followers_count"] or 0) if rows else 0

    def drop_large_account(self, account_id: int) -> bool:
        """Take a bench account out of the large-account registry (when the schema has one)."""
        try:
            found = self.session.execute(
                "SELECT account_id FROM large_accounts WHERE shard = 0 AND account_id = %s", (account_id,)).all()
        except InvalidRequest:
            return False
        if found:
            self.session.execute("DELETE FROM large_accounts WHERE shard = 0 AND account_id = %s", (account_id,))
        return bool(found)

    def set_counts(self, account_id: int, *, followers: int | None = None, following: int | None = None) -> None:
        """Bring the counters to the given values (counters cannot be set, only moved)."""
        rows = list(self.session.execute(self._rows.stats, (account_id,)))
        current = rows[0] if rows else {}
        if followers is not None:
            delta = followers - int(current.get("followers_count") or 0)
            if delta:
                self.session.execute(self._rows.add_followers, (delta, account_id))
        if following is not None:
            delta = following - int(current.get("following_count") or 0)
            if delta:
                self.session.execute(self._rows.add_following, (delta, account_id))

    def set_following_counts(self, account_ids: Sequence[int], following: int) -> None:
        """Same as set_counts(following=) for many accounts, assuming they were seeded by the bench only."""
        rows = self._run_select(account_ids)
        updates = [(following - have, i) for i, have in rows.items() if following - have]
        if updates:
            self._run(self._rows.add_following, updates)

    def _run_select(self, account_ids: Sequence[int]) -> dict[int, int]:
        results = execute_concurrent_with_args(self.session, self._rows.stats, [(i,) for i in account_ids],
                                               concurrency=CONCURRENCY)
        out = {}
        for account_id, (ok, rows) in zip(account_ids, results, strict=True):
            if not ok:
                raise RuntimeError(f"reading account_stats of {account_id} failed: {rows}")
            found = list(rows)
            out[account_id] = int(found[0]["following_count"] or 0) if found else 0
        return out


def seed_followers(seeder: Seeder, author: int, author_name: str, first_follower: int, count: int) -> str:
    """An author with ``count`` follower edges (graph rows only: followers need no account record for the
    fanout). Skipped when a previous seed of that size completed. Returns the author's token."""
    token = seeder.accounts({author: author_name})[author]
    # The counter is set after the last edge is written, so it equal to `count` means a completed seed
    # (count(*) over a million-row partition times out on the server).
    if seeder.followers_counter(author) == count:
        log(f"  {author_name}: {count} followers already seeded")
        return token
    log(f"  seeding {count} follower edges of {author_name} into Cassandra")
    step = 5000
    for start in range(0, count, step):
        ids = range(first_follower + start, first_follower + min(count, start + step))
        # Followers' own `following` rows are skipped: the fanout and the large-account path read only the
        # author's `followers` partition, and one row per follower partition is the slow part of seeding.
        seeder.follow(ids, author, with_following_rows=False)
    seeder.set_counts(author, followers=count)
    return token
