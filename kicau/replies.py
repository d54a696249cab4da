"""What a status's ``replies_count`` counts, as Mastodon counts it: its live public and unlisted replies.

Mastodon counts a reply in its parent's count only if it is distributable (public or unlisted): a followers-only or
direct reply is not, so the count does not tell strangers that someone answered privately. A deleted reply stops
counting.

The record is Cassandra's ``replies`` table (a thread's descendants, stack/migrations/0007_replies.cql): each row
says whether the reply counts (``counted``, stack/migrations/0011_reply_counts.cql). Deleting a reply unsets it in
the delete's own batch, and undoing the delete sets it again (services/post/store.py); the row stays, since the
thread below a deleted reply is still reached through it. The cached count moves with each reply and deletion
(kicau/status_tallies.py). Replies written before ``counted`` existed are not counted.
"""

from __future__ import annotations

from typing import Final

from kicau.visibility import PUBLIC, UNLISTED

# One partition, its rows filtered by a column that is no key: ALLOW FILTERING reads that partition alone.
COUNT_QUERY: Final = "SELECT COUNT(*) AS n FROM replies WHERE status_id = ? AND counted = true ALLOW FILTERING"


def counted(visibility: str | None) -> bool:
    """Whether a reply of this visibility counts in its parent's ``replies_count``."""
    return visibility in (PUBLIC, UNLISTED, None)  # None: a row from before visibility was stored is public
