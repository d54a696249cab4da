"""Every Redis key name in one place.

Keys that one operation touches together share a hash tag so the layout works on Redis Cluster: per-user keys
carry ``{u:<id>}``; home timelines carry their bucket's ``{h:<bucket>}`` (see ``home_bucket``), the one case
where a command spans keys of different users: on Redis Cluster always inside one bucket and so inside one slot.
"""

from __future__ import annotations

import functools
import hashlib

# The last entry of every home timeline (older than any status id). A timeline that ends with it is materialised,
# and a Redis list cannot be empty: the sentinel lets an empty-but-real timeline exist, told apart from one lost
# with Redis (which is rebuilt from Cassandra).
FEED_SENTINEL = b"0"
# The last entry of a timeline being rebuilt: older than the sentinel and than any status id of two digits or
# more (every snowflake has 17 or more), and read as the integer 0, so ``statuses_of`` leaves it out as it does
# the sentinel. Until the rebuild writes the timeline, the fanout pushes into the pending list as into any
# timeline that exists, so a status fanned out while the rebuild reads Cassandra is not lost; readers take a
# pending timeline for a missing one (kicau/feeds.py).
FEED_PENDING = b"00"


# Home timelines are spread over this many hash tags instead of one per user. The fanout writes thousands of timelines
# per status; with one tag per user, every timeline sits in a slot of its own and each needs a script call of its own
# (a multi-key call must stay in one slot on Redis Cluster). With buckets, the followers of a status that share a
# bucket are written by one call on Cluster; a single node takes followers of any buckets in one call
# (``kicau.feeds.calls_must_stay_in_one_slot``). 1,024 buckets still spread evenly over any realistic number of
# Cluster nodes (a bucket is one slot).
HOME_BUCKETS = 1024
_BUCKET_SHIFT = 64 - (HOME_BUCKETS.bit_length() - 1)
_FIBONACCI = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: multiplicative hashing mixes every bit of the id
_MASK64 = (1 << 64) - 1


def home_bucket(account_id: int) -> int:
    """The hash-tag bucket of an account's home timeline. Snowflake ids keep a short sequence in their low
    bits, so ``id % buckets`` would crowd a few buckets; the top bits of a multiplicative hash do not."""
    return ((account_id * _FIBONACCI) & _MASK64) >> _BUCKET_SHIFT


# "feed3": timelines kept as lists, newest first (kicau/feeds.py). Timelines under the earlier names ("feed:..."
# and "feed2:...", sorted sets) are never read again: each is rebuilt from Cassandra on its next read, as after a
# Redis loss, and the old keys expire with their TTL. Remembered: every home page names its reader's (as
# ``status_cache`` below).
@functools.lru_cache(maxsize=32_768)
def home_feed(account_id: int) -> str:
    return home_feed_in(home_bucket(account_id), account_id)


def home_feed_in(bucket: int, account_id: int) -> str:
    """``home_feed`` for a caller that already computed the bucket (the fanout groups followers by it)."""
    return f"feed3:{{h:{bucket}}}:{account_id}:home"


def author_feed(account_id: int) -> str:
    """A large account's own newest statuses, merged into its followers' home timelines at read time."""
    return f"feed3:{{u:{account_id}}}:own"


def list_feed(list_id: int) -> str:
    """A list's timeline (kicau/lists.py), in the representation of a home timeline."""
    return f"feed3:{{l:{list_id}}}:list"


def public_feed() -> str:
    """The public timeline (kicau/public_timeline.py), in the representation of a home timeline."""
    return "feed3:{p}:public"


def tag_uses(tag: str, day: int) -> str:
    """The statuses that used a hashtag on a day (kicau/tag_history.py): a HyperLogLog of status ids."""
    return f"tag:{{t:{tag}}}:{day}:uses"


def tag_accounts(tag: str, day: int) -> str:
    """The accounts that used a hashtag on a day: a HyperLogLog of account ids, in the slot of ``tag_uses``."""
    return f"tag:{{t:{tag}}}:{day}:accounts"


def tag_trend_day(day: int) -> str:
    """The hashtags public statuses used on a day, scored by how many accounts used each (kicau/tag_trends.py)."""
    return f"trends:{{tags}}:{day}"


def status_trend_day(day: int) -> str:
    """The statuses favourited or reblogged on a day, scored by how many times (kicau/status_trends.py)."""
    return f"trends:{{statuses}}:{day}"


def most_followed() -> str:
    """Accounts scored by their followers counts (kicau/follow_suggestions.py)."""
    return "suggest:{accounts}:followers"


def directory_new() -> str:
    """Every account, scored with the time it registered (kicau/directory.py)."""
    return "directory:{accounts}:new"


def directory_active() -> str:
    """The accounts that posted, scored with the time of their newest status (kicau/directory.py)."""
    return "directory:{accounts}:active"


def poll_tallies(status_id: int) -> str:
    """A poll's votes so far, a hash (kicau/polls.py), beside its status's cached value (same hash tag)."""
    return f"poll:{{s:{status_id}}}"


def poll_waiting(status_id: int) -> str:
    """Votes waiting for the poll's tallies to be built (kicau/polls.py)."""
    return f"pollwait:{{s:{status_id}}}"


def statuses_count() -> str:
    """How many statuses the server holds, as its instance reports them (kicau/instance_usage.py)."""
    return "usage:{instance}:statuses"


def weekly_statuses() -> str:
    """A hash: the statuses posted each week (field: the week's start, epoch seconds; kicau/instance_usage.py)."""
    return "usage:{instance}:statuses:weekly"


def daily_posters(day: int) -> str:
    """A HyperLogLog of the accounts that posted on ``day`` (days since the epoch, UTC; kicau/instance_usage.py)."""
    return f"usage:{{instance}}:posters:{day}"


def daily_interactions(day: int) -> str:
    """How many favourites, reblogs and replies of another account's status were made on ``day``."""
    return f"usage:{{instance}}:interactions:{day}"


def daily_languages(day: int) -> str:
    """A hash: the statuses posted on ``day`` in each language (field: its ISO 639-1 code)."""
    return f"usage:{{instance}}:languages:{day}"


def weekly_logins(week: int) -> str:
    """A HyperLogLog of the accounts that signed in during the week starting at ``week`` (epoch seconds)."""
    return f"usage:{{instance}}:logins:{week}"


def tag_names() -> str:
    """Every hashtag a public status carried, by name (kicau/tag_history.py): a sorted set read by prefix."""
    return "tags:{names}"


def large_followees(account_id: int) -> str:
    """Which large accounts a reader follows, with its follows' options for them (cached for its home reads; kept
    true under ``large_followees_version``, kicau/large_accounts.py). Named anew when its form changed (``:large``
    held no options)."""
    return f"follows:{{u:{account_id}}}:large2"


def large_followees_version(account_id: int) -> str:
    """The version each change of what ``large_followees`` holds moves (the protocol in kicau/reader_copies.py)."""
    return f"follows:{{u:{account_id}}}:largev"

def followers_version(account_id: int) -> str:
    """Version of an account's follower list, for copies of it held in memory (kicau/follower_lists.py)."""
    return f"followers:{{u:{account_id}}}:v"


def tag_followers_version(tag: str) -> str:
    """Version of a hashtag's list of followers (kicau/tag_follows.py), for copies of it held in memory, under the
    same protocol as accounts' (kicau/follower_lists.py)."""
    return f"tag:{{t:{tag}}}:followers:v"


def account_statuses_version(account_id: int) -> str:
    """Version of an account's list of statuses, for copies of its newest page held in memory by the timeline
    service (kicau/newest_ids.py); the post service deletes it after each change to the list."""
    return f"statuses:{{u:{account_id}}}:v"


def feed_rebuild_lock(feed_key: str) -> str:
    """Held while one process rebuilds a timeline (shares the timeline's hash tag)."""
    return f"{feed_key}:rebuild"


def status_edit_lock(status_id: int) -> str:
    """Held while the post service edits a status (services/post/service.py ``edit``): edits of one status run
    one at a time, so the row and its history always end at the same version."""
    return f"status:{{s:{status_id}}}:editing"


def status_edited(status_id: int) -> str:
    """Set when a status is edited, for as long as a cached value lives (kicau/status_cards.py ``cache_command``):
    a creation event applied after the edit (late, or replayed) must not cache the first version again."""
    return f"status:{{s:{status_id}}}:edited"


# A home page names ~20 statuses' cache keys and their authors' cards on every read: formatting them cost ~4 µs a
# page, ~5% of the timeline service's work on one (a py-spy profile of the page alone); a remembered key, ~1 µs.
# ~200 bytes an entry: ~6 MB a process at most for each of the two.
_REMEMBERED_KEYS = 32_768


@functools.lru_cache(maxsize=_REMEMBERED_KEYS)
def status_cache(status_id: int) -> str:
    # "status8": the value carries who may see the status, its four counts (quotes_count since "status8"), the status
    # it reblogs, the root of its thread and its flags (kicau/status_cards.py, kicau/status_tallies.py). Values under
    # older prefixes lack some of those; they expire within a day, and reads never look at them.
    return f"status8:{{s:{status_id}}}"


def marks(account_id: int) -> str:
    """The statuses an account favourites and bookmarks, for ``favourited`` and ``bookmarked`` on its reads
    (kicau/reader_marks.py). Sets under "favourited:" held favourites alone; they expire within a day."""
    return f"marks:{{u:{account_id}}}"


def filters(account_id: int) -> str:
    """The account's filters as its readers hold them (kicau/filters.py), and the version each change moves."""
    return f"filters:{{u:{account_id}}}"


def filters_version(account_id: int) -> str:
    return f"filtersv:{{u:{account_id}}}"


def hides(account_id: int) -> str:
    """What the account's reads leave out (the accounts it blocks or mutes, those that block it) as its readers
    hold it (kicau/blocks_and_mutes.py), and the version each block, mute or undo moves."""
    return f"hides:{{u:{account_id}}}"


def hides_version(account_id: int) -> str:
    return f"hidesv:{{u:{account_id}}}"


def posting_defaults(account_id: int) -> str:
    """The account's posting defaults as posters hold them (kicau/posting_defaults.py), and the version each change
    moves."""
    return f"postdef:{{u:{account_id}}}"


def posting_defaults_version(account_id: int) -> str:
    return f"postdefv:{{u:{account_id}}}"


@functools.lru_cache(maxsize=_REMEMBERED_KEYS)
def account_cache(account_id: int) -> str:
    return f"account:{{u:{account_id}}}"


def account_cache_epoch(account_id: int) -> str:
    """Moved by every writer that drops or replaces the account's card (kicau/account_cards.py): a load that began
    before a move caches nothing."""
    return f"account:{{u:{account_id}}}:epoch"


def token_cache(token_hash: str) -> str:
    return f"token:{{t:{token_hash}}}"


def stream_channel(gateway_id: str) -> str:
    """Pub/sub channel of one gateway process: it receives only events for users connected to it."""
    return f"stream:{{g:{gateway_id}}}"


PRESENCE_CHANNEL = "online:changes"
# Every gateway listens here for statuses of large accounts, published once whatever the audience.
LARGE_ACCOUNTS_CHANNEL = "stream:large"
# Every gateway listens here for blocks and mutes made and undone ("<account>:<target>", kicau/blocks_and_mutes.py):
# the public and hashtag streams of either account filter again.
HIDES_CHANNEL = "hides:changes"
# And here for accounts whose filters changed (the account id, kicau/filters.py): its streams filter again and get
# Mastodon's ``filters_changed`` event.
FILTERS_CHANNEL = "filters:changes"
# And here for the operator's announcements (kicau/announcements.py): each user stream gets Mastodon's
# ``announcement``, ``announcement.reaction`` and ``announcement.delete``.
ANNOUNCEMENTS_CHANNEL = "announcements:changes"
# And here for accounts that accepted notification requests (the account id, kicau/notification_policies.py): its
# user and notification streams get Mastodon's ``notifications_merged``.
NOTIFICATIONS_MERGED_CHANNEL = "notifications:merged"
# When an account last accepted notification requests (ms since the epoch), kept a day: a gateway whose channel was
# lost meanwhile tells the streams that missed the live ``notifications_merged`` once it is back.
MERGED_AT_SECONDS = 86_400


def notifications_merged_at(account_id: int) -> str:
    return f"notifications:merged:{{u:{account_id}}}"

# And here for sessions that ended (kicau/tokens.py, ``end_streams``): ``token:<hash>`` when a token is revoked,
# ``account:<id>`` when the operator disables an account; the streams opened with it end, as Mastodon's streaming
# server ends them on ``kill``.
SESSIONS_ENDED_CHANNEL = "sessions:ended"


def last_seen(account_id: int) -> str:
    return f"seen:{{u:{account_id}}}"


def rate_limit(bucket: str, subject: str, window: int) -> str:
    return f"ratelimit:{{{bucket}:{subject}}}:{window}"


def display_name_words() -> str:
    """The words of accounts' display names (kicau/account_names.py): a sorted set of ``<word>:<id>``."""
    return "accounts:{words}"


def account_names() -> str:
    """Every account's username (kicau/account_names.py): a sorted set of ``<username>:<id>`` read by prefix."""
    return "accounts:{names}"


def _link_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def link_card(url: str) -> str:
    """A page's preview card, or that it makes none (services/post/link_previews.py), by the page's address: a
    link many statuses share is fetched once a day."""
    return f"link:card:{_link_hash(url)}"


def link_shares(url: str, day: int) -> str:
    """The public statuses that showed a page's card on a day (kicau/link_trends.py): a HyperLogLog of ids."""
    return f"link:{{l:{_link_hash(url)}}}:{day}:shares"


def link_sharers(url: str, day: int) -> str:
    """The accounts whose public statuses showed a page's card on a day, in the slot of ``link_shares``."""
    return f"link:{{l:{_link_hash(url)}}}:{day}:accounts"


def link_trend_day(day: int) -> str:
    """The pages public statuses shared on a day, scored by how many accounts shared each (kicau/link_trends.py)."""
    return f"trends:{{links}}:{day}"


def push_subscriptions_version(account_id: int) -> str:
    """The version token of an account's push subscriptions as push services keep them in memory
    (kicau/follower_lists.py's protocol: the graph service deletes it before and after a change)."""
    return f"push:subs:{{u:{account_id}}}:v"


# The pushes the push services try again later (services/push/later.py): a sorted set scored by when each is due.
PUSH_LATER = "push:{later}:due"


def push_sent(subscription_id: int, notification_id: int) -> str:
    """Set once a notification was pushed to a subscription (services/push/): a replayed notice is not pushed
    twice. Kept as long as a push service keeps an undelivered push (kicau/web_push.py, ``PUSH_TTL_SECONDS``)."""
    return f"push:sent:{subscription_id}:{notification_id}"


def email_block_uses(domain: str, day: int) -> str:
    """How many sign-ups the e-mail domain block of ``domain`` refused on the day starting at ``day`` (epoch seconds;
    kicau/email_domain_blocks.py)."""
    return f"email_block:{{d:{domain}}}:{day}:uses"


def email_block_accounts(domain: str, day: int) -> str:
    """A HyperLogLog of the addresses whose sign-ups that block refused that day."""
    return f"email_block:{{d:{domain}}}:{day}:accounts"


# Moved (INCR) by the graph service after each change to the IP blocks (kicau/ip_blocks.py): every gateway process
# reads it each second and loads the blocks again when it moved.
IP_BLOCKS_VERSION = "ip_blocks:version"


# Moved (INCR) by the timeline service after each review of a trend (kicau/trend_reviews.py): every timeline process
# reads it with each trends read and loads the reviews again when it moved.
TREND_REVIEWS_VERSION = "trend_reviews:version"
