"""Follow suggestions: Mastodon's ``GET /api/v2/suggestions`` (and v1), accounts a user may want to follow.

Two sources, as two of Mastodon's:

* ``friends_of_friends``: the accounts followed by those the user follows most recently (``FRIENDS`` of them,
  ``FRIENDS_FOLLOWS`` follows each, read at once), ranked by how many of them follow each;
* ``most_followed``: the accounts with the most followers, from a Redis sorted set the graph service keeps
  (``keys.most_followed``), scored with an account's followers count each time a follow or unfollow counts it
  again: the count itself, so a retry sets the same score. Lost with Redis, it fills again as accounts are
  followed; accounts followed before it existed join it with their next follow or unfollow.

Left out: the user, the accounts it follows, those it blocks or mutes and those that block it, and those it
dismissed (``DELETE /api/v1/suggestions/:account_id``, Cassandra ``suggestion_dismissals``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Final

from cassandra.cluster import Session

from kicau import keys
from kicau.clients import execute, write_preparer
from kicau.resp import command

FRIENDS: Final = 40
FRIENDS_FOLLOWS: Final = 80
FRIENDS_OF_FRIENDS: Final = "friends_of_friends"
MOST_FOLLOWED: Final = "most_followed"
# Mastodon's older single ``source`` for each of its sources.
SOURCE: Final = {FRIENDS_OF_FRIENDS: "past_interactions", MOST_FOLLOWED: "global"}


def followers_command(account_id: int, followers: int) -> bytes:
    """The account's place among the most followed: its followers count, or out with none."""
    key = keys.most_followed().encode()
    if followers <= 0:
        return command(b"ZREM", key, str(account_id).encode())
    return command(b"ZADD", key, str(followers).encode(), str(account_id).encode())


def most_followed_command(count: int) -> bytes:
    return command(b"ZRANGE", keys.most_followed().encode(), b"0", str(count - 1).encode(), b"REV")


def ranked(friends_follows: Iterable[Iterable[int]], most_followed: Iterable[int], left_out: set[int],
           limit: int) -> list[tuple[int, list[str]]]:
    """Up to ``limit`` (account, its sources): friends of friends first, by how many friends follow each (then the
    newest account), then the most followed in order; none of ``left_out``."""
    counted = Counter(account for follows in friends_follows for account in set(follows))
    order = sorted((a for a in counted if a not in left_out), key=lambda a: (-counted[a], -a))
    popular = [a for a in most_followed if a not in left_out]
    sources: dict[int, list[str]] = {}
    for account in order:
        sources[account] = [FRIENDS_OF_FRIENDS]
    for account in popular:
        sources.setdefault(account, []).append(MOST_FOLLOWED)
    return list(sources.items())[:limit]


class DismissalStore:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._dismiss = write_preparer(session, write_consistency)(
            "INSERT INTO suggestion_dismissals (account_id, target_id) VALUES (?, ?)")
        self._dismissed = session.prepare("SELECT target_id FROM suggestion_dismissals WHERE account_id = ?")

    async def dismiss(self, account_id: int, target_id: int) -> None:
        await execute(self._session, self._dismiss, (account_id, target_id))

    async def dismissed(self, account_id: int) -> set[int]:
        return {int(row["target_id"]) for row in await execute(self._session, self._dismissed, (account_id,))}
