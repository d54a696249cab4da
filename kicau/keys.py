"""Every Redis key name in one place.

Keys that one operation touches together share a hash tag (``{u:<id>}``) so the layout works on Redis
Cluster; no command in Kicau spans keys of different users.
"""

from __future__ import annotations

# The smallest possible member of a home timeline. Its presence marks a timeline as materialised, so an
# empty-but-real timeline is told apart from one lost with Redis (which is rebuilt from Cassandra).
FEED_SENTINEL = b"\x00" * 8


def home_feed(account_id: int) -> str:
    return f"feed:{{u:{account_id}}}:home"


def author_feed(account_id: int) -> str:
    """A large account's own newest statuses, merged into its followers' home timelines at read time."""
    return f"feed:{{u:{account_id}}}:own"


def feed_rebuild_lock(feed_key: str) -> str:
    """Held while one process rebuilds a timeline (shares the timeline's hash tag)."""
    return f"{feed_key}:rebuild"


def status_cache(status_id: int) -> str:
    return f"status:{{s:{status_id}}}"


def account_cache(account_id: int) -> str:
    return f"account:{{u:{account_id}}}"


def token_cache(token_hash: str) -> str:
    return f"token:{{t:{token_hash}}}"


def stream_channel(gateway_id: str) -> str:
    """Pub/sub channel of one gateway process: it receives only events for users connected to it."""
    return f"stream:{{g:{gateway_id}}}"


PRESENCE_CHANNEL = "online:changes"
# Every gateway listens here for statuses of large accounts, published once whatever the audience.
LARGE_ACCOUNTS_CHANNEL = "stream:large"


def last_seen(account_id: int) -> str:
    return f"seen:{{u:{account_id}}}"


def rate_limit(bucket: str, subject: str, window: int) -> str:
    return f"ratelimit:{{{bucket}:{subject}}}:{window}"
