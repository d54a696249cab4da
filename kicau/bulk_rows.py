"""Plain writes of account and follow-graph rows for tools that load many at once: the seeding tool
(``services.graph.seed``) and the benchmarks (``bench.seed``).

The graph service itself claims usernames and follows with lightweight transactions (``services/graph/store.py``)
because concurrent clients race for them; a bulk loader owns its ids and needs none, so it writes the same
tables with these cheaper statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session


@dataclass(frozen=True)
class GraphRowWriters:
    account: Any  # (id, username, email, display_name, created_at)
    username: Any  # (username, account_id)
    email: Any  # (email, account_id)
    follower: Any  # (followee_id, follower_id, created_at): the partition the fanout reads
    following: Any  # (follower_id, followee_id, created_at)
    add_followers: Any  # (delta, account_id)
    add_following: Any  # (delta, account_id)
    stats: Any  # (account_id,) -> followers_count, following_count

    @classmethod
    def prepare(cls, session: Session, *, bot: bool, password_hash: str) -> GraphRowWriters:
        """``password_hash`` is a marker no password verifies against (not an Argon2 hash): such accounts
        cannot log in; tools issue their tokens directly."""
        assert password_hash.startswith("!") and "'" not in password_hash
        return cls(
            account=session.prepare(
                "INSERT INTO accounts (id, username, email, display_name, note, locked, bot, password_hash,"
                f" created_at) VALUES (?, ?, ?, ?, '', false, {str(bot).lower()}, '{password_hash}', ?)"
            ),
            username=session.prepare("INSERT INTO accounts_by_username (username, account_id) VALUES (?, ?)"),
            email=session.prepare("INSERT INTO accounts_by_email (email, account_id) VALUES (?, ?)"),
            follower=session.prepare(
                "INSERT INTO followers (followee_id, follower_id, created_at) VALUES (?, ?, ?)"
            ),
            following=session.prepare(
                "INSERT INTO following (follower_id, followee_id, created_at) VALUES (?, ?, ?)"
            ),
            add_followers=session.prepare(
                "UPDATE account_stats SET followers_count = followers_count + ? WHERE account_id = ?"
            ),
            add_following=session.prepare(
                "UPDATE account_stats SET following_count = following_count + ? WHERE account_id = ?"
            ),
            stats=session.prepare(
                "SELECT followers_count, following_count FROM account_stats WHERE account_id = ?"
            ),
        )
