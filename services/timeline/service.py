"""Reading timelines: home (Redis, rebuilt from Cassandra when missing) and an account's own statuses.

Home timeline contract: the newest-first merge of the reader's own statuses and those of every account the
reader follows, capped at ``home_timeline_cap``. Statuses of large accounts (see kicau/large_accounts.py) are
not in the reader's timeline but merged in at read time from the author's own feed, exactly, cursor for cursor.
Deleted statuses never appear: hydration drops them even if an id is still in Redis.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple

import msgspec
from redis.asyncio import Redis

from kicau import (
    conversations,
    hashtags,
    keys,
    link_trends,
    resp,
    retractions,
    status_trends,
    tag_history,
    tag_trends,
)
from kicau.account_cards import AccountCards, without_suspended
from kicau.account_warnings import WarningStore
from kicau.account_warnings import rendered_entity as rendered_warning
from kicau.audit_log import ActionLog, AuditLogStore, unclaimed_id
from kicau.blocks_and_mutes import MUTE, BlocksAndMutes, HideCopies, Kind
from kicau.bookmarks import BookmarkStore
from kicau.conversations import Conversation, ConversationStore
from kicau.crash_points import crash_point
from kicau.entities import dumps, iso_time
from kicau.favourites import FavouriteStore
from kicau.featured_tags import FeaturedTagStore
from kicau.feeds import Feeds, PageRead, PageRequest
from kicau.filters import ACCOUNT as ACCOUNT_CONTEXT
from kicau.filters import NOTIFICATIONS as NOTIFICATIONS_CONTEXT
from kicau.filters import PUBLIC as PUBLIC_CONTEXT
from kicau.filters import THREAD
from kicau.follow_options import (
    EncodedOptions,
    FollowOptions,
    FollowOptionStore,
    admitted,
    decode_options,
    encode_options,
)
from kicau.follower_lists import FollowerLists
from kicau.ids import ms_from_id, pack_id, parse_id
from kicau.large_accounts import LargeAccounts
from kicau.linked_statuses import LinkedStatuses
from kicau.lists import AccountList, ListStore, shows_reply
from kicau.markers import MarkerStore
from kicau.metrics import TIMELINE_REBUILDS, TIMELINE_REBUILDS_RESTARTED
from kicau.newest_ids import KEPT as NEWEST_KEPT
from kicau.newest_ids import NewestIds
from kicau.notification_groups import GroupSpan
from kicau.notification_policies import PolicyStore, changed, rendered_request, requests_of, summary_counts
from kicau.notification_policies import entity as policy_entity
from kicau.notifications import (
    ADMIN_REPORT,
    MENTION,
    MODERATION_WARNING,
    REBLOG,
    RECORDED,
    STAFF_TYPES,
    Notification,
    NotificationStore,
    rendered,
)
from kicau.pins import PinStore
from kicau.public_timeline import PublicStatuses
from kicau.quotes import QuoteStore
from kicau.reader_copies import ReaderCopies, copy_lifetime
from kicau.reblogs import ReblogStore
from kicau.reports import ReportStore
from kicau.reports import rendered_entity as report_entity
from kicau.settings import CommonSettings
from kicau.staff import StaffStore
from kicau.status_cards import StatusCards
from kicau.tag_follows import TagFollowStore
from kicau.tag_history import TagNames
from kicau.tag_timeline import TaggedStatuses
from kicau.trend_reviews import PERMISSION as REVIEW_PERMISSION
from kicau.trend_reviews import Kind as TrendKind
from kicau.trend_reviews import Review, TrendReviews, lets_trend, link_id, link_url, review_fields
from kicau.visibility import ANONYMOUS, Reader
from kicau.web import ApiError
from services.timeline.settings import TimelineSettings
from services.timeline.store import TimelineStore

log = logging.getLogger(__name__)
# A rebuild that a change overtakes reads Cassandra again, at most this often (changes during one read are rare;
# a timeline left unbuilt is rebuilt by its next read).
_REBUILD_ATTEMPTS = 3

MAX_LIMIT = 40
NewestOf = Callable[[], Awaitable[list[int]]]  # a timeline's newest statuses, for its rebuild
DEFAULT_LIMIT = 20
# A profile page without replies or reblogs reads this many ids at a time (or its limit, if more), at most
# FILTER_SCANS times.
FILTER_SCAN, FILTER_SCANS = 40, 5


@dataclass(frozen=True, slots=True)
class ProfileFilter:
    """What of an account's statuses a profile read asks for (Mastodon's parameters). ``pinned``: its pinned
    statuses alone (kicau/pins.py). ``tagged``: those carrying this hashtag (its normal form, kicau/hashtags.py).
    ``only_media``: the account's own statuses with attachments (kicau/media.py; a reblog has none of its own, as
    on Mastodon). ``nothing``: it asks for statuses with a name that is no hashtag's."""

    exclude_replies: bool = False
    exclude_reblogs: bool = False
    pinned: bool = False
    tagged: str = ""
    only_media: bool = False
    nothing: bool = False

    @property
    def filters(self) -> bool:
        return self.exclude_replies or self.exclude_reblogs or bool(self.tagged) or self.only_media

    def keeps(self, status: bytes, account_id: int) -> bool:
        """Whether a rendered status of the account's is on the page."""
        if not self.filters:
            return True
        shown = _read_shown(status)
        reblog = shown.reblog is not None
        reply_to_another = shown.in_reply_to_id is not None and shown.in_reply_to_account_id != str(account_id)
        # A reblog's own tags are empty: it carries the hashtag only as the reblogged status does, as in Mastodon's
        # profile, which lists the account's own statuses with the hashtag.
        untagged = bool(self.tagged) and not any(tag.name == self.tagged for tag in shown.tags)
        bare = self.only_media and not shown.media_attachments
        return not ((self.exclude_reblogs and reblog) or (self.exclude_replies and reply_to_another) or untagged
                    or bare)


EVERY_STATUS = ProfileFilter()


class _Id(msgspec.Struct):
    id: str


class _Tag(msgspec.Struct):
    name: str


class _Shown(msgspec.Struct):
    """What a rendered Status answers, what it reblogs and its hashtags; the members it does not name are skipped
    unparsed. A reply stored before replies kept the account they answer counts as a reply to another account."""

    in_reply_to_id: str | None = None
    in_reply_to_account_id: str | None = None
    reblog: _Id | None = None
    tags: list[_Tag] = msgspec.field(default_factory=list)
    account: _Id | None = None
    media_attachments: list[_Id] = msgspec.field(default_factory=list)


_read_shown = msgspec.json.Decoder(_Shown).decode


def _replied_to(status: bytes) -> int | None:
    """The status a rendered Status replies to."""
    parent = _read_shown(status).in_reply_to_id
    return int(parent) if parent else None


# Mastodon's bounds on a thread's context.
MAX_ANCESTORS, MAX_DESCENDANTS, MAX_DEPTH = 40, 60, 20


# An account's held-back notifications read at most, for its requests and its policy's summary.
HELD_SCAN: Final = 1000
# Rows a filtered notifications page (types[], exclude_types[], account_id) reads for its limit at most.
NOTIFICATION_SCAN = 400
# How many rows of a notification group's window its count reads at most (every type's: the table is by id).
GROUP_COUNT_SCAN: Final = 2_000


@dataclass(frozen=True)
class Page:
    body: bytes
    # Cursors for the Link header: the oldest and newest ids read (before dropping deleted statuses).
    next_max_id: int | None
    prev_min_id: int | None


@functools.lru_cache(maxsize=8)  # the registry changes rarely; hashing it for every home read cost ~1.5%
def _registry_version(large: frozenset[int]) -> str:
    return hashlib.blake2b(b"".join(pack_id(a) for a in sorted(large)), digest_size=8).hexdigest()


@dataclass(frozen=True)
class HomeAfter:
    """What a stream missed since a point (``TimelineService.home_after``): whether it is provably all of it, the
    home timeline's statuses after the point (oldest first), and the statuses edited since (rendered as they are
    now) and deleted since, that concern the reader."""

    covered: bool
    statuses: list[bytes]
    edited: list[bytes]
    deleted: list[int]
    # Whether the edits and deletions are provably all (the log reaches back to the point: kicau/retractions.py).
    retractions_covered: bool = False


@dataclass(frozen=True)
class StreamsRetracted:
    """The statuses edited since a point (rendered as they are now, as no one in particular reads them, or a list's
    owner) and deleted since (each with its author and hashtags), that the public timeline's streams, a hashtag's or
    a list's were sent live (``TimelineService.public_retracted``, ``list_retracted``); and whether those are
    provably all."""

    covered: bool
    edited: list[bytes]
    deleted: list[retractions.Retraction]


class LargeFollowees(NamedTuple):
    """The large accounts a reader follows (and neither hides nor keeps apart), whose statuses are merged into its
    home timeline as it reads it, and its follows' options for those of them where they are not the defaults
    (kicau/follow_options.py), applied as the page is shown: there is no per-follower write to apply them in."""

    ids: list[int]
    options: dict[int, FollowOptions]


NO_LARGE_FOLLOWEES: Final = LargeFollowees([], {})

# A reader's cached large followees, (registry version, account ids, options): decoded on every home read while any
# account is large, by one decoder built once.
_decode_large_followees = msgspec.json.Decoder(tuple[str, list[int], EncodedOptions]).decode


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    return max(1, min(limit, MAX_LIMIT))


@dataclass
class TimelineService:
    settings: CommonSettings
    own: TimelineSettings
    store: TimelineStore
    redis: Redis
    feeds: Feeds
    large: LargeAccounts
    statuses: StatusCards
    accounts: AccountCards
    notifications: NotificationStore
    markers: MarkerStore
    public: PublicStatuses
    tagged: TaggedStatuses
    tag_names: TagNames
    tag_follows: TagFollowStore
    featured_tags: FeaturedTagStore  # the graph service's; read for Tags' ``featuring``
    linked: LinkedStatuses  # the post service's; read for the link timeline
    quotes: QuoteStore  # the post service's; read for a status's quotes
    favourite_store: FavouriteStore
    bookmark_store: BookmarkStore
    pin_store: PinStore
    reblog_store: ReblogStore
    hides: BlocksAndMutes
    hide_copies: HideCopies
    follow_options: FollowOptionStore
    lists: ListStore
    conversations: ConversationStore
    policies: PolicyStore  # notification policies and the senders accounts accepted
    filtered: NotificationStore  # the notifications policies held back (kicau/notification_policies.py)
    reports: ReportStore  # the graph service's; read for ``admin.report`` notifications
    warnings: WarningStore  # the graph service's; read for ``moderation_warning`` notifications
    staff: StaffStore  # the graph service's; who may read the staff's notifications and review trends
    trend_reviews: TrendReviews
    audit: AuditLogStore  # the graph service's; a trend's review is logged for staff (kicau/audit_log.py)
    newest_ids: NewestIds | None = None
    _rebuilds: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # Trends as last ranked (hashtags: kicau/tag_trends.py; statuses: kicau/status_trends.py), and when (monotonic
    # seconds); one ranking at a time.
    _rankings: dict[str, tuple[float, list[Any]]] = field(default_factory=dict)
    _ranking: asyncio.Lock = field(default_factory=asyncio.Lock)
    _followee_copies: ReaderCopies[bytes] = field(init=False)
    # The follower lists of the authors of edits and deletions that resumed streams are told of (``_retracted_for``).
    _audiences: FollowerLists[int] = field(init=False)

    def __post_init__(self) -> None:
        self._audiences = FollowerLists(self.redis, self.store.followers, max_ids=self.own.retraction_follower_ids)
        # Each reader's large followees as its copy holds them (the protocol in kicau/large_accounts.py). Read
        # with the home page's own round trip (``home``), so only the builds go through here.
        self._followee_copies = ReaderCopies(self.redis, None, key=keys.large_followees,
                                             version=keys.large_followees_version,
                                             build=self._build_large_followees, decode=bytes)

    async def large_followees(self, account_id: int) -> LargeFollowees:
        """The large accounts the reader follows and neither blocks nor mutes nor keeps in an exclusive list
        (kicau/lists.py), whose statuses are merged into its home timeline.

        Cached in Redis per reader, tagged with the registry it was computed against: a home read then costs
        no Cassandra query, an account changing scale invalidates every copy at once, and the graph service
        retires a reader's copy on each follow and unfollow, block and mute (kicau/large_accounts.py), so a copy
        built from what Cassandra held before one is never stored. While Cassandra is unavailable a stale
        copy is served, or none: a home timeline is then served from Redis alone, without the large accounts'
        statuses, rather than not at all."""
        large = await self.large.current()
        if not large:
            return NO_LARGE_FOLLOWEES
        return await self._large_followees(account_id, large, await self.redis.get(keys.large_followees(account_id)))

    async def _large_followees(self, account_id: int, large: frozenset[int], cached: bytes | str | None,
                               ) -> LargeFollowees:
        """``large_followees`` given the reader's cached copy (``cached``, as read from Redis)."""
        version = _registry_version(large)
        stale: LargeFollowees | None = None
        if cached is not None:
            cached_version, followees, options = _decode_large_followees(cached)
            if cached_version == version:
                return LargeFollowees(followees, decode_options(options))
            stale = LargeFollowees([a for a in followees if a in large], decode_options(options))
        if self.large.degraded:
            return stale or NO_LARGE_FOLLOWEES
        try:
            _, followees, options = _decode_large_followees(await self._followee_copies.build(account_id))
        except Exception:
            log.warning("large followees of %s unavailable; serving the home timeline without them", account_id,
                        exc_info=True)
            return stale or NO_LARGE_FOLLOWEES
        return LargeFollowees(followees, decode_options(options))

    async def _build_large_followees(self, account_id: int) -> tuple[bytes, int]:
        """The reader's large followees as Cassandra holds them now, encoded as its copy holds them, and how long
        the copy may be kept."""
        large = await self.large.current()
        among, hidden, apart = await asyncio.gather(self.store.followees_among(account_id, large),
                                                    self.hides.hidden_by(account_id),
                                                    self.exclusive_members(account_id))
        followees = [a for a in among if a not in hidden and a not in apart]
        options = await self.follow_options.of_follower(account_id, followees)
        return msgspec.json.encode((_registry_version(large), followees, encode_options(options))), copy_lifetime()

    async def home(self, account_id: int, request: PageRequest) -> Page:
        large = await self.large.current()
        followed = NO_LARGE_FOLLOWEES
        if large:
            # The reader's cached large followees ride along with the home page's own round trip; only a reader
            # who follows some of them needs a second one, for their author feeds.
            cached = keys.large_followees(account_id)
            read = await self.feeds.read_page(account_id, request, prefetch=[(cached, resp.get(cached))])
            followed = await self._large_followees(account_id, large, read.prefetched[0])
            if followed.ids:
                read = await self.feeds.read_page(account_id, request, followed.ids)
        else:
            read = await self.feeds.read_page(account_id, request)
        read = await self._repaired(read, account_id, request, followed.ids,
                                    functools.partial(self.rebuild_home, account_id))
        return await self._page(read.ids, Reader.home_of(account_id, followed.options))

    async def _repaired(self, read: PageRead, account_id: int, request: PageRequest, large_followees: list[int],
                        rebuild: Callable[[], Awaitable[None]], key: str | None = None) -> PageRead:
        """``read`` itself when its timeline and author feeds were all there; else, once the missing ones are
        rebuilt (the timeline by ``rebuild``), the page read again."""
        if read.home_materialised and not read.missing_author_feeds:
            return read
        rebuilds: list[Awaitable[None]] = [self.rebuild_author_feed(a) for a in read.missing_author_feeds]
        if not read.home_materialised:
            rebuilds.append(rebuild())
        await asyncio.gather(*rebuilds)
        return await self.feeds.read_page(account_id, request, large_followees, key=key, fresh=True)

    async def home_after(self, account_id: int, after_id: int, *, rebuild: bool = True) -> HomeAfter:
        """Everything in the home timeline newer than ``after_id``, oldest first (stream resume), and whether that
        is provably everything; the statuses edited and deleted since then that concern the reader
        (kicau/retractions.py), and whether those are. Without ``rebuild``, a timeline Redis does not hold (it
        lost its data) is not rebuilt from Cassandra here, and nothing is provably everything: the gateway's reads
        after a loss of its channel (one per account with a user stream, all at once) must not rebuild every
        online reader's home at once; the reader's own next read rebuilds it."""
        # Whether the timeline is there, the reader's cached large followees and the log of deletions and edits
        # since the point, in one round trip: a loss of a gateway's channel sends one of these reads for every
        # account streaming there.
        cached = keys.large_followees(account_id)
        now_ms = int(time.time() * 1000)
        last, cached_followees, *logged = await resp.round_trip(
            self.redis, [resp.command(b"LINDEX", keys.home_feed(account_id).encode(), b"-1"), resp.get(cached),
                         *retractions.read_commands(ms_from_id(after_id))])
        materialised = last == keys.FEED_SENTINEL
        if not materialised and not rebuild:
            return HomeAfter(False, [], [], [])  # before the large followees, which may need Cassandra
        large = await self.large.current()
        followed = await self._large_followees(account_id, large, cached_followees) if large else NO_LARGE_FOLLOWEES
        if not materialised:
            await self.rebuild_home(account_id)
        for author in followed.ids:
            if not await self.feeds.is_materialised(keys.author_feed(author)):
                if not rebuild:
                    return HomeAfter(False, [], [], [])
                await self.rebuild_author_feed(author)
        cap = self.settings.home_timeline_cap
        logged_window = retractions.window(logged, ms_from_id(after_id), now_ms,
                                           self.settings.retraction_log_hours * 3_600_000)
        (covered, ids), retracted = await asyncio.gather(
            self.feeds.newest_after(account_id, after_id, cap + 1, followed.ids),
            self._retracted_for(account_id, logged_window.retractions, large, followed.ids))
        edited: list[bytes] = []
        if not retracted.edited:  # as nearly always
            statuses = await self.statuses.render(ids, Reader.home_of(account_id, followed.options))
        else:
            statuses, edited = await asyncio.gather(
                self.statuses.render(ids, Reader.home_of(account_id, followed.options)),
                # Rendered as any reader's view of them, not as its home's: an edit logged for a hashtag it follows
                # may be of a status its home would not hold.
                self.statuses.render(retracted.edited, Reader(account_id, context="home")))
        return HomeAfter(covered, statuses, edited, retracted.deleted, logged_window.covered)

    async def public_retracted(self, after_id: int, tag: str | None = None) -> StreamsRetracted:
        """The public statuses edited and deleted since the status id ``after_id`` (kicau/retractions.py), of a
        hashtag's (its normal form) if ``tag``: what the public timeline's streams, or that hashtag's, missed of
        them while a gateway's channel was lost. One read of the log for every stream of the gateway listening."""
        logged = await self._logged_since(after_id)
        return await self._retracted(logged.covered, retractions.of_public(logged.retractions, tag), ANONYMOUS)

    async def list_retracted(self, account_id: int, list_id: int, after_id: int) -> StreamsRetracted:
        """The statuses of the members of the reader's list edited and deleted since the status id ``after_id``
        (but direct ones), the edits as the reader sees them and as the list's replies policy shows them: what the
        list's stream missed of them while a gateway's channel was lost (the fanout told it live of its members'
        statuses, kicau/lists.py)."""
        found = await self._own_list(account_id, list_id)
        members, logged = await asyncio.gather(self.lists.members(list_id), self._logged_since(after_id))
        among = set(members)
        chosen = [r for r in logged.retractions if not r.direct and r.author_id in among]
        retracted = await self._retracted(logged.covered, chosen, Reader(account_id, context="home"))
        return StreamsRetracted(retracted.covered, await self._list_shows(found, among, retracted.edited),
                                retracted.deleted)

    async def _list_shows(self, found: AccountList, members: set[int], rendered: list[bytes]) -> list[bytes]:
        """Of statuses rendered for the owner of the list ``found``, in order, those its replies policy shows
        (kicau/lists.py, ``shows_reply``): whom the owner follows is read only for a ``followed`` list."""
        shown = [(status, _read_shown(status)) for status in rendered]
        replied = {int(s.in_reply_to_account_id) for _, s in shown if s.in_reply_to_account_id}
        followed: set[int] = set()
        if found.replies_policy == "followed" and replied:
            followed = set(await self.store.followees_among(found.owner_id, replied))
        return [status for status, s in shown if shows_reply(
            found.replies_policy, owner_id=found.owner_id, author_id=int(s.account.id) if s.account else 0,
            replied_to=int(s.in_reply_to_account_id or 0), members=members, followed=followed)]

    async def _logged_since(self, after_id: int) -> retractions.Window:
        """The log of edits and deletions since the status id ``after_id`` (kicau/retractions.py)."""
        return retractions.window(
            await resp.round_trip(self.redis, retractions.read_commands(ms_from_id(after_id))),
            ms_from_id(after_id), int(time.time() * 1000), self.settings.retraction_log_hours * 3_600_000)

    async def _retracted(self, covered: bool, chosen: list[retractions.Retraction], reader: Reader) -> StreamsRetracted:
        """The statuses of ``chosen`` edited (rendered for ``reader``) and deleted, each once."""
        collapsed = retractions.collapse(chosen)
        deletions = {r.status_id: r for r in chosen if r.kind == retractions.DELETE}
        edited = await self.statuses.render(collapsed.edited, reader) if collapsed.edited else []
        return StreamsRetracted(covered, edited, [deletions[status] for status in collapsed.deleted])

    async def _retracted_for(self, account_id: int, logged: list[retractions.Retraction], large: frozenset[int],
                             large_followed: list[int]) -> retractions.Retracted:
        """Which of the deletions and edits ``logged`` concern the reader. Whether it follows their authors: for a
        large account, from the reader's large followees; for the others, from their follower lists kept in this
        process under the fanout's versions (kicau/follower_lists.py). Many streams resuming at once (a gateway
        restarted, its channel lost) ask about the same few authors: each list is read from Cassandra once, not
        each reader's follows once (a read of ``following`` a resume cost ~1.2 ms of this process's CPU and as much
        of Cassandra's). Then the hashtags it follows, if any entry still depends on them."""
        if not logged:
            return retractions.Retracted([], [])
        authors = retractions.deciding_authors(logged, account_id)
        followed = {a for a in authors if a in large and a in large_followed}
        followed |= await self._audiences.followed_by(account_id, sorted(a for a in authors if a not in large))
        tags = retractions.deciding_tags(logged, account_id, followed)
        tags_followed = await self.tag_follows.followed_among(account_id, tags) if tags else set()
        return retractions.collapse(retractions.concerning(logged, account_id, followed, tags_followed))


    async def public_timeline(self, request: PageRequest, reader: Reader, *, remote: bool = False,
                              only_media: bool = False) -> Page:
        """Every public status, newest first (kicau/public_timeline.py), but those of accounts the reader blocks
        or mutes or that block it; with ``only_media``, those with attachments alone (filtered from the page read,
        so a page may hold fewer than asked, and its cursors go on from where the reading stopped, as for deleted
        statuses). Kicau's statuses are all local: ``remote`` gets an empty page, as Mastodon's would here."""
        if remote:
            return Page(body=b"[]", next_max_id=None, prev_min_id=None)
        # The statuses of accounts the reader blocks or mutes, or that block it, are left out as the page is shown
        # (the public context, kicau/status_cards.py).
        reader = replace(reader, context=PUBLIC_CONTEXT)
        ids, materialised = await self.feeds.read_list(keys.public_feed(), request)
        if not materialised:
            await self.rebuild_public()
            ids, _ = await self.feeds.read_list(keys.public_feed(), request, fresh=True)
        if only_media:
            return await self._filtered_page(ids, reader, media_only=True)
        return await self._page(ids, reader)

    async def unwanted_authors(self, account_id: int) -> frozenset[int]:
        """Whose statuses the account's public and hashtag streams leave out, as its timelines do: the accounts it
        blocks or mutes and those that block it (kicau/blocks_and_mutes.py)."""
        return (await self.hide_copies.of(account_id)).unwanted()

    async def _filtered_page(self, ids: list[int], reader: Reader, *, all_of: Sequence[str] = (),
                             none_of: Sequence[str] = (), media_only: bool = False) -> Page:
        """``_page`` of the statuses that carry every hashtag of ``all_of`` and none of ``none_of`` (and, for
        ``media_only``, attachments): a page may hold fewer than asked, and its cursors go on from where the
        reading stopped, as for deleted statuses."""
        rendered = await self.statuses.render_each(ids, reader)
        wanted, unwanted_tags = set(all_of), set(none_of)
        kept = []
        for status_id in ids:
            status = rendered.get(status_id)
            if status is None:
                continue
            shown = _read_shown(status)
            names = {t.name for t in shown.tags}
            if wanted <= names and not unwanted_tags & names and (shown.media_attachments or not media_only):
                kept.append(status)
        return Page(body=b"[" + b",".join(kept) + b"]", next_max_id=ids[-1] if ids else None,
                    prev_min_id=ids[0] if ids else None)

    async def tag_timeline(self, tag: str, request: PageRequest, reader: Reader, *, any_of: Sequence[str] = (),
                           all_of: Sequence[str] = (), none_of: Sequence[str] = (), remote: bool = False,
                           only_media: bool = False) -> Page:
        """The public statuses carrying a hashtag, or any of ``any_of`` too, newest first (kicau/tag_timeline.py;
        names in normal form). Of those, only the ones also carrying every hashtag of ``all_of`` and none of
        ``none_of`` (and with ``only_media``, attachments): filtered from the page read, so a page may hold fewer
        than asked, and its cursors go on from where the reading stopped, as for deleted statuses. As for the
        public timeline, ``remote`` gets an empty page. Statuses of accounts the reader blocks or mutes, or that
        block it, are left out too."""
        if remote:
            return Page(body=b"[]", next_max_id=None, prev_min_id=None)
        reader = replace(reader, context=PUBLIC_CONTEXT)
        tags = list(dict.fromkeys((tag, *any_of)))
        pages = await asyncio.gather(*(self.tagged.page(t, max_id=request.max_id, since_id=request.since_id,
                                                        min_id=request.min_id, limit=request.limit) for t in tags))
        ids = sorted(set().union(*pages), reverse=True)
        # Each tag's page holds its newest (or, after min_id, its oldest) statuses: so does their union's.
        ids = ids[-request.limit:] if request.min_id is not None else ids[:request.limit]
        if not all_of and not none_of and not only_media:
            return await self._page(ids, reader)
        return await self._filtered_page(ids, reader, all_of=all_of, none_of=none_of, media_only=only_media)

    async def link_timeline(self, url: str, request: PageRequest, reader: Reader) -> Page:
        """The public statuses that share a page (kicau/linked_statuses.py), newest first, as the reader may see
        them (blocks and mutes, the public context's filters); 404 for a page no public status has shared."""
        ids = await self.linked.page(url, max_id=request.max_id, since_id=request.since_id, min_id=request.min_id,
                                     limit=request.limit)
        if not ids and request.max_id is None and request.since_id is None and request.min_id is None \
                and not await self.linked.shared(url):
            raise ApiError(404, "Record not found")
        return await self._page(ids, replace(reader, context=PUBLIC_CONTEXT))

    async def quotes_of(self, status_id: int, request: PageRequest, reader: Reader) -> Page:
        """The accepted quotes of a status its reader may see (kicau/quotes.py), newest first, as the reader may
        see them: its author sees every one, others not those of accounts they block or mute, nor those their
        thread filters hide. 404 for a status the reader may not see."""
        if await self.statuses.render_one(status_id, reader, marks=False, quoted=False) is None:
            raise ApiError(404, "Record not found")
        ids = await self.quotes.page(status_id, max_id=request.max_id, since_id=request.since_id,
                                     min_id=request.min_id, limit=request.limit)
        author = await self.statuses.author_of(status_id)
        return await self._page(ids, reader if author == reader.account_id else replace(reader, context=THREAD))

    async def tag(self, tag: str, reader: Reader, *, known: bool = False) -> bytes:
        """Mastodon's Tag for a hashtag in normal form (kicau/tag_history.py), with ``following`` for a reader
        with an account (kicau/tag_follows.py); 404 when no public status has carried it and the reader does not
        follow it, unless ``known`` (the answer to a follow or unfollow, as Mastodon's names any hashtag)."""
        if not known and not await self.tagged.exists(tag) and (
                reader.account_id is None or await self.tag_follows.follow_id(reader.account_id, tag) is None):
            raise ApiError(404, "Record not found")
        return dumps((await self._tags([tag], reader))[0])

    async def followed_tags(self, account_id: int, request: PageRequest) -> Page:
        """The hashtags the account follows, most recently followed first, as Tags; the cursors are follow ids,
        as in Mastodon's Link headers."""
        found = await self.tag_follows.of_account(account_id, max_id=request.max_id, since_id=request.since_id,
                                                  min_id=request.min_id, limit=request.limit)
        tags = await self._tags([tag for _, tag in found], Reader(account_id), followed=True) if found else []
        return Page(body=dumps(tags), next_max_id=found[-1][0] if found else None,
                    prev_min_id=found[0][0] if found else None)

    async def tags_starting(self, prefix: str, reader: Reader, limit: int) -> bytes:
        """The Tags of up to ``limit`` hashtags whose names begin with ``prefix`` (in normal form), the one named
        ``prefix`` first, then by name."""
        names = await self.tag_names.starting_with(prefix, limit)
        return dumps(await self._tags(names, reader)) if names else b"[]"

    async def trending_tags(self, reader: Reader, limit: int, offset: int) -> tuple[bytes, bool]:
        """The Tags of the hashtags that trend (kicau/tag_trends.py) and staff let trend (kicau/trend_reviews.py),
        most first, from ``offset``, and whether more trend after them: ranked again when the ranking this process
        holds is older than ``trend_rank_seconds``."""
        trending = await self._allowed("tags")
        names = trending[offset:offset + limit]
        return (dumps(await self._tags(names, reader)) if names else b"[]"), len(trending) > offset + limit

    async def trending_links(self, reader: Reader, limit: int, offset: int) -> tuple[bytes, bool]:
        """The pages public statuses share more than usual (kicau/link_trends.py) and staff let trend, as their
        cards with their histories, most first, from ``offset``, and whether more trend after them (the same for
        every reader)."""
        trending = await self._allowed("links")
        shown = trending[offset:offset + limit]
        return dumps(await link_trends.entities(self.redis, shown, time.time() * 1000)), len(trending) > offset + limit

    async def trending_statuses(self, reader: Reader, limit: int, offset: int) -> tuple[bytes, bool]:
        """The statuses that trend (kicau/status_trends.py) and staff let trend, most first, from ``offset``, as
        the reader may see them (in the ``public`` context of its filters), and whether more trend after them."""
        trending = await self._allowed("statuses")
        shown = trending[offset:offset + limit]
        body = await self.statuses.render_array(shown, replace(reader, context=PUBLIC_CONTEXT)) if shown else b"[]"
        return body, len(trending) > offset + limit

    async def _allowed(self, kind: TrendKind) -> list[Any]:
        """The kind's ranking without what staff rejected, or (``trendable_by_default`` false) have not approved."""
        ranking, reviews = await asyncio.gather(self._ranking_of(kind), self.trend_reviews.of_kind(kind))
        by_default = self.own.trendable_by_default
        if by_default and not reviews:
            return list(ranking)
        return [item for item in ranking if lets_trend(reviews.get(str(item)), by_default)]

    async def _ranking_of(self, kind: TrendKind) -> list[Any]:
        """What trends of ``kind``, most first, whether staff let it or not."""
        if kind == "statuses":
            return await self._ranked(kind, self._rank_statuses)
        ranker = tag_trends.trending if kind == "tags" else link_trends.trending
        return await self._ranked(kind, lambda: ranker(self.redis, time.time() * 1000))

    async def reviewed_trends(self, actor: int, kind: TrendKind, limit: int, offset: int) -> tuple[bytes, bool]:
        """Staff's listing of a trend (Mastodon's ``/api/v1/admin/trends/...``): the whole ranking from
        ``offset``, reviewed or not, each item with its review; and whether more trend after them."""
        await self._may_review(actor)
        ranking, reviews = await asyncio.gather(self._ranking_of(kind), self.trend_reviews.of_kind(kind))
        shown = ranking[offset:offset + limit]
        return dumps(await self._with_reviews(kind, shown, reviews)), len(ranking) > offset + limit

    async def review_trend(self, actor: int, kind: TrendKind, item_id: str, trendable: bool) -> bytes:
        """Staff approve (``trendable``) or reject a hashtag (its name), a status (its id) or a page (its id,
        kicau/trend_reviews.py), trending or not; the item as staff's listing shows it. 404 for what names no
        hashtag a public status carried, no status or no page whose card is kept."""
        await self._may_review(actor)
        item: Any
        if kind == "tags":
            name = item_id.removeprefix("#")
            item = hashtags.normal(name) if hashtags.valid(name) else None
            if item is not None and not await self.tagged.exists(item):
                item = None
        else:
            item = parse_id(item_id) if kind == "statuses" else link_url(item_id)
        # Rendered once, before the review (no status or page to render: 404), and given the review's fields after.
        found = await self._with_reviews(kind, [item], {}) if item is not None else []
        if not found:
            raise ApiError(404, "Record not found")
        review = await self.trend_reviews.review(kind, str(item), trendable, actor)
        shown = {**found[0], **review_fields(review, self.own.trendable_by_default)}
        target_type = {"tags": "tag", "statuses": "status", "links": "preview_card"}[kind]
        author = int(shown["account"]["id"]) if kind == "statuses" else None
        await self.audit.add(ActionLog(unclaimed_id(), actor, "approve" if trendable else "reject", target_type,
                                       item_id if kind == "links" else str(item), str(item), author))
        return dumps(shown)

    async def _may_review(self, actor: int) -> None:
        if not (await self.staff.role_of(actor)).can(REVIEW_PERMISSION):
            raise ApiError(403, "This action is not allowed")

    async def _with_reviews(self, kind: TrendKind, items: list[Any],
                            reviews: Mapping[str, Review]) -> list[dict[str, Any]]:
        """Items as staff's listing shows them: Mastodon's Admin::Tag, Admin::Trends::Status and
        Admin::Trends::Link (``requires_review``, and ``trendable``: whether it trends now)."""
        by_default = self.own.trendable_by_default
        if kind == "tags":
            # A hashtag's id is its name in normal form: Kicau keeps no hashtag records.
            return [{"id": tag["name"], **tag, **review_fields(reviews.get(tag["name"]), by_default), "usable": True,
                     "listable": True} for tag in await self._tags(items, ANONYMOUS)]
        if kind == "statuses":
            rendered = await self.statuses.render_each(items, ANONYMOUS, marks=False)
            return [{**msgspec.json.decode(rendered[s]), **review_fields(reviews.get(str(s)), by_default)}
                    for s in items if s in rendered]
        return [{"id": link_id(url), **card, **review_fields(reviews.get(url), by_default)}
                for url, card in await link_trends.cards_of(self.redis, items, time.time() * 1000)]

    async def _rank_statuses(self) -> list[int]:
        """The candidates that trend, of those that may (rendered as no one in particular sees them)."""
        now = time.time() * 1000
        order = status_trends.ranked(await status_trends.candidates(self.redis, now), now, status_trends.CANDIDATES)
        neutral = await self.statuses.render_each(order, Reader(None), marks=False) if order else {}
        return [s for s in order
                if s in neutral and status_trends.may_trend(msgspec.json.decode(neutral[s]))][:status_trends.MAX_TRENDS]

    async def _ranked(self, kind: str, rank: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
        """A trend's ranking, ranked again when the one this process holds is older than ``trend_rank_seconds``."""
        async with self._ranking:  # concurrent readers wait for one ranking instead of each making their own
            held = self._rankings.get(kind)
            if held is None or time.monotonic() - held[0] >= self.own.trend_rank_seconds:
                held = self._rankings[kind] = (time.monotonic(), await rank())
        return held[1]

    async def _tags(self, names: list[str], reader: Reader, *, followed: bool = False) -> list[dict[str, Any]]:
        """Tags with their histories, counted in one round trip, and (for a reader with an account) whether it
        follows and features each, read at once; ``followed``: the caller knows it follows them all."""
        days = tag_history.history_days()
        account_id = reader.account_id
        if account_id is None:
            counts = await tag_history.history_counts(self.redis, names, days)
            return [tag_history.entity(tag, self.settings.public_url, days, counts[i]) for i, tag in enumerate(names)]

        async def followed_among() -> set[str]:
            return set(names) if followed else await self.tag_follows.followed_among(account_id, names)

        async def featured() -> set[str]:
            return {tag for _, tag in await self.featured_tags.of_account(account_id)}

        counts, following, featuring = await asyncio.gather(
            tag_history.history_counts(self.redis, names, days), followed_among(), featured())
        return [tag_history.entity(tag, self.settings.public_url, days, counts[i], following=tag in following,
                                   featuring=tag in featuring)
                for i, tag in enumerate(names)]

    async def account_statuses(self, account_id: int, request: PageRequest, reader: Reader,
                               shown: ProfileFilter = EVERY_STATUS) -> Page:
        """The account's statuses that ``reader`` may see (``kicau.visibility``): followers-only ones to its
        followers, direct ones to the account alone; of them, those ``shown`` asks for."""
        # An account exists when it has a card: usually this process's copy, so no Cassandra read.
        if await self.statuses.account_card(account_id) is None:
            raise ApiError(404, "Record not found")
        reader = replace(reader, context=ACCOUNT_CONTEXT)
        if shown.nothing:
            return Page(body=b"[]", next_max_id=None, prev_min_id=None)
        if shown.pinned:
            return await self._pinned(account_id, request, reader)
        if shown.filters:
            return await self._filtered(account_id, request, reader, shown)
        if (self.newest_ids is not None and request.max_id is None and request.since_id is None
                and request.min_id is None and request.limit <= NEWEST_KEPT):
            # The first page, as most profile reads are: its ids as kept in memory, unless the list has changed.
            ids = await self.newest_ids.newest(account_id, request.limit)
        else:
            ids = await self.store.account_status_ids(
                account_id, max_id=request.max_id, since_id=request.since_id, min_id=request.min_id,
                limit=request.limit,
            )
        return await self._page(ids, reader)

    async def _pinned(self, account_id: int, request: PageRequest, reader: Reader) -> Page:
        """The account's pinned statuses that ``reader`` may see, most recently pinned first, as Mastodon lists
        them: the cursors (status ids) and the limit cut the few there are, and the page links nowhere (Mastodon
        pages pins by pin, which its Link headers do not carry)."""
        ids = [status_id for status_id in await self.pin_store.of_account(account_id)
               if (request.max_id is None or status_id < request.max_id)
               and (request.since_id is None or status_id > request.since_id)
               and (request.min_id is None or status_id > request.min_id)][:request.limit]
        return Page(body=await self.statuses.render_array(ids, reader), next_max_id=None, prev_min_id=None)

    async def _filtered(self, account_id: int, request: PageRequest, reader: Reader, shown: ProfileFilter) -> Page:
        """A profile page without the account's replies to others (its replies to itself, a thread, stay, as in
        Mastodon), or without its reblogs, or both. Reads ``FILTER_SCAN`` ids at a time (or ``limit``, if more),
        at most ``FILTER_SCANS`` times, to fill the page; the cursors go on from the last status kept when it is
        full, else from where the reading stopped. A page comes back empty only after a run of more statuses left
        out than those reads hold (200)."""
        chunk = max(request.limit, FILTER_SCAN)
        kept: list[tuple[int, bytes]] = []
        cursor = request
        forward = request.min_id is not None
        read: list[int] = []
        for _ in range(FILTER_SCANS):
            ids = await self.store.account_status_ids(account_id, max_id=cursor.max_id, since_id=cursor.since_id,
                                                      min_id=cursor.min_id, limit=chunk)
            if not ids:
                break
            read += ids
            rendered = await self.statuses.render_each(ids, reader)
            batch = [(i, rendered[i]) for i in ids if i in rendered and shown.keeps(rendered[i], account_id)]
            # Newest first; walking forward (min_id), each batch is newer than the one before.
            kept = batch + kept if forward else kept + batch
            if len(kept) >= request.limit or len(ids) < chunk:
                break
            cursor = (PageRequest(max_id=cursor.max_id, min_id=ids[0]) if forward
                      else PageRequest(max_id=ids[-1], since_id=cursor.since_id))
        kept = kept[-request.limit:] if forward else kept[:request.limit]
        full = len(kept) == request.limit
        older = kept[-1][0] if kept and (forward or full) else (min(read) if read else None)
        newer = kept[0][0] if kept and (full or not forward) else (max(read) if read else None)
        return Page(body=b"[" + b",".join(status for _, status in kept) + b"]", next_max_id=older,
                    prev_min_id=newer)

    async def _page(self, ids: list[int], reader: Reader) -> Page:
        # The cursors are those of the ids read, as for deleted statuses: a page may hold fewer than asked, and
        # the next one goes on from where this one stopped reading.
        return Page(
            body=await self.statuses.render_array(ids, reader),
            next_max_id=ids[-1] if ids else None,
            prev_min_id=ids[0] if ids else None,
        )

    # Lists (kicau/lists.py) --------------------------------------------------------------------------------

    async def _own_list(self, account_id: int, list_id: int) -> AccountList:
        found = await self.lists.one(account_id, list_id)
        if found is None:
            raise ApiError(404, "Record not found")
        return found

    async def list_members(self, account_id: int, list_id: int, request: PageRequest) -> Page:
        """The accounts in the reader's list, highest id first; the cursors are account ids."""
        await self._own_list(account_id, list_id)
        ids = await self.lists.members_page(list_id, max_id=request.max_id, since_id=request.since_id,
                                            min_id=request.min_id, limit=request.limit)
        return await self._accounts_page([(member, member) for member in ids])

    async def list_timeline(self, account_id: int, list_id: int, request: PageRequest) -> Page:
        """A page of the reader's list's timeline: its members' statuses (Redis, rebuilt from Cassandra when
        missing) merged with the author feeds of its large members, as a home page is, then the replies its
        policy leaves out left out (the cursors are those of the statuses read, so a page may hold fewer)."""
        found = await self._own_list(account_id, list_id)
        members = await self.lists.members(list_id)
        large = await self.large.current()
        large_members = [m for m in members if m in large]
        options: dict[int, FollowOptions] = {}
        if large_members:
            hidden = await self.hides.hidden_by(account_id)
            large_members = [m for m in large_members if m not in hidden]
            # The owner's follows' options for them apply as the page is shown, as on its home page: their
            # statuses were never written per follower, where the fanout applies them for the other members.
            options = await self.follow_options.of_follower(account_id, large_members)
        key = keys.list_feed(list_id)
        read = await self._repaired(await self.feeds.read_page(account_id, request, large_members, key=key),
                                    account_id, request, large_members,
                                    functools.partial(self.rebuild_list, found), key)
        ids = read.ids
        rendered = await self.statuses.render_each(ids, Reader.home_of(account_id, options))
        kept = await self._list_shows(found, set(members), [rendered[i] for i in ids if i in rendered])
        return Page(body=b"[" + b",".join(kept) + b"]", next_max_id=ids[-1] if ids else None,
                    prev_min_id=ids[0] if ids else None)

    # Favourites (kicau/favourites.py) ---------------------------------------------------------------------

    async def favourites(self, account_id: int, request: PageRequest) -> Page:
        """The statuses the account favourites, most recently favourited first, as it may see them now; the
        cursors are favourite ids, as in Mastodon's Link headers."""
        found = await self.favourite_store.of_account(account_id, max_id=request.max_id, since_id=request.since_id,
                                                      min_id=request.min_id, limit=request.limit)
        return await self._marked_page(found, Reader(account_id))

    async def hidden_accounts(self, account_id: int, kind: Kind, request: PageRequest) -> Page:
        """The accounts the account blocks or mutes (kicau/blocks_and_mutes.py), most recent first; the cursors are
        block or mute ids, as in Mastodon's Link headers. A muted account carries its ``mute_expires_at``."""
        found = await self.hides.page(account_id, kind, max_id=request.max_id, since_id=request.since_id,
                                      min_id=request.min_id, limit=request.limit)
        cards = await self.accounts.cards({target for _, target in found})
        ends: list[str | None] = [None] * len(found)
        if kind == MUTE and found:
            mutes = await asyncio.gather(*(self.hides.hides(account_id, target) for _, target in found))
            ends = [iso_time(m[MUTE].expires_at) if MUTE in m and m[MUTE].expires_at else None for m in mutes]
        items = []
        for (_, target), ends_at in zip(found, ends, strict=True):
            card = cards.get(target)
            if card is None:
                continue
            if kind == MUTE:
                card = card[:-1] + b',"mute_expires_at":' + dumps(ends_at) + b"}"
            items.append(card)
        return Page(body=b"[" + b",".join(items) + b"]", next_max_id=found[-1][0] if found else None,
                    prev_min_id=found[0][0] if found else None)

    async def bookmarks(self, account_id: int, request: PageRequest) -> Page:
        """The statuses the account bookmarks (kicau/bookmarks.py), most recently bookmarked first, as it may see
        them now; the cursors are bookmark ids, as in Mastodon's Link headers."""
        found = await self.bookmark_store.of_account(account_id, max_id=request.max_id, since_id=request.since_id,
                                                     min_id=request.min_id, limit=request.limit)
        return await self._marked_page(found, Reader(account_id))

    async def _marked_page(self, found: list[tuple[int, int]], reader: Reader) -> Page:
        """A page of (mark id, status id), newest first: the statuses the reader may see, and the marks' cursors
        (a status deleted since, or no longer the reader's to see, is left out, and the cursors go past it)."""
        return Page(body=await self.statuses.render_array([status_id for _, status_id in found], reader),
                    next_max_id=found[-1][0] if found else None, prev_min_id=found[0][0] if found else None)

    async def favourited_by(self, status_id: int, request: PageRequest, reader: Reader) -> Page:
        """The accounts that favourite a status the reader may see, most recent first (404 for one it may not)."""
        if await self.statuses.render_one(status_id, reader) is None:
            raise ApiError(404, "Record not found")
        found = await self.favourite_store.of_status(status_id, max_id=request.max_id, since_id=request.since_id,
                                                     min_id=request.min_id, limit=request.limit)
        return await self._accounts_page(found)

    async def reblogged_by(self, status_id: int, request: PageRequest, reader: Reader) -> Page:
        """The accounts that reblog a status the reader may see, most recent first (404 for one it may not; an
        empty page for a reblog, which no one reblogs: a reblog of it reblogs the original)."""
        if await self.statuses.render_one(status_id, reader) is None:
            raise ApiError(404, "Record not found")
        found = await self.reblog_store.of_status(status_id, max_id=request.max_id, since_id=request.since_id,
                                                  min_id=request.min_id, limit=request.limit)
        return await self._accounts_page(found)

    async def _accounts_page(self, found: list[tuple[int, int]]) -> Page:
        """A page of (mark id, account id), newest first: the accounts' cards (suspended accounts left out), and the
        marks' cursors."""
        cards = await self._shown_cards({account_id for _, account_id in found})
        return Page(body=b"[" + b",".join(cards[a] for _, a in found if a in cards) + b"]",
                    next_max_id=found[-1][0] if found else None, prev_min_id=found[0][0] if found else None)

    async def _shown_cards(self, account_ids: set[int]) -> dict[int, bytes]:
        """The cards of those accounts that are neither gone nor suspended."""
        return without_suspended(await self.accounts.cards(account_ids))

    # Threads ----------------------------------------------------------------------------------------------

    async def statuses_by_id(self, status_ids: list[int], reader: Reader) -> bytes:
        """Each of the statuses the reader may see, in the order asked (each once); a missing, deleted or hidden
        one is left out, as Mastodon's ``GET /api/v1/statuses`` does."""
        wanted = list(dict.fromkeys(status_ids))
        shown = await self.statuses.render_each(wanted, reader)
        return b"[" + b",".join(shown[s] for s in wanted if s in shown) + b"]"

    async def context(self, status_id: int, reader: Reader) -> bytes:
        """Mastodon's Context of a status the reader may see: the statuses it replies to, oldest first, and the
        replies to it and to them, depth first, as Mastodon orders them; each that the reader may see (a deleted
        one, or one it may not see, is left out, and the thread goes on past it)."""
        focus = await self.statuses.render_each([status_id], reader)
        if status_id not in focus:
            raise ApiError(404, "Record not found")
        above: list[int] = []
        parent = _replied_to(focus[status_id])
        seen = {status_id}
        # Walked up whatever the reader may see (``parent_of``): a status it may not see (an account's that blocks
        # it, a private one) is left out below, and the thread goes on above it, as on Mastodon.
        while parent and parent not in seen and len(above) < MAX_ANCESTORS:
            seen.add(parent)
            grandparent = await self.statuses.parent_of(parent)
            if grandparent is None:
                break  # deleted: what it replied to is not known from here
            above.append(parent)
            parent = grandparent
        above.reverse()
        # The thread as the reader's ``thread`` filters leave it (kicau/filters.py): walked without them, so a
        # status they hide does not cut the thread above it.
        in_thread = replace(reader, context=THREAD)
        order = await self._descendants(status_id)
        shown_above, shown_replies = await asyncio.gather(self.statuses.render_each(above, in_thread),
                                                          self.statuses.render_each(order, in_thread))
        ancestors = [shown_above[i] for i in above if i in shown_above]
        descendants = [shown_replies[i] for i in order if i in shown_replies]
        return (b'{"ancestors":[' + b",".join(ancestors) + b'],"descendants":[' + b",".join(descendants)
                + b"]}")

    async def _descendants(self, status_id: int) -> list[int]:
        """The replies under a status, depth first (each reply followed by its own), at most
        ``MAX_DESCENDANTS`` of them and ``MAX_DEPTH`` levels down: one level's reads at a time, concurrently."""
        children: dict[int, list[int]] = {}
        level, found = [status_id], 0
        for _ in range(MAX_DEPTH):
            if not level or found >= MAX_DESCENDANTS:
                break
            replies = await asyncio.gather(*(self.store.replies(s, MAX_DESCENDANTS) for s in level))
            children.update(zip(level, replies, strict=True))
            level = [r for rs in replies for r in rs if r not in children]
            found += len(level)
        order: list[int] = []
        stack = list(reversed(children.get(status_id, [])))
        while stack and len(order) < MAX_DESCENDANTS:
            reply = stack.pop()
            order.append(reply)
            stack.extend(reversed(children.get(reply, [])))
        return order

    # Notifications (kicau/notifications.py) --------------------------------------------------------------

    async def notification_page(self, account_id: int, request: PageRequest, wanted: frozenset[str],
                                from_account: int | None = None, include_filtered: bool = False) -> Page:
        """The account's notifications of the ``wanted`` types (and from ``from_account`` alone, if given),
        newest first, with Mastodon's cursors. A filtered page scans up to ``NOTIFICATION_SCAN`` rows for its
        ``limit``; its cursors then go on from where the scan stopped, so paging never skips one. Those its policy
        held back (kicau/notification_policies.py) are left out unless ``include_filtered`` or ``from_account``
        (as Mastodon shows a request's notifications), and then merged in by id."""
        filtered = wanted != RECORDED or from_account is not None
        scan = max(request.limit, NOTIFICATION_SCAN) if filtered else request.limit
        stores = [self.notifications, self.filtered] if include_filtered or from_account is not None else [
            self.notifications]
        pages = await asyncio.gather(*(store.page(account_id, max_id=request.max_id, since_id=request.since_id,
                                                  min_id=request.min_id, limit=scan)
                                       for store in stores)) if wanted else []
        rows = merged_pages(pages, scan, forward=request.min_id is not None)
        matching = [n for n in rows
                    if n.type in wanted and (from_account is None or n.from_account_id == from_account)]
        forward = request.min_id is not None  # the page nearest min_id: the oldest matches, shown newest first
        kept = matching[-request.limit:] if forward else matching[:request.limit]
        full = len(kept) == request.limit
        older = kept[-1] if kept and (forward or full) else (rows[-1] if rows else None)
        newer = kept[0] if kept and (full or not forward) else (rows[0] if rows else None)
        return Page(body=b"[" + b",".join(await self._rendered(account_id, kept)) + b"]",
                    next_max_id=older.id if older else None, prev_min_id=newer.id if newer else None)

    async def notification_group_counts(self, account_id: int, spans: Mapping[str, GroupSpan],
                                        from_account: int | None = None) -> dict[str, int]:
        """How many notifications each group (by key: its span) holds that its account is shown, as a page shows
        them (and from ``from_account`` alone, if given). Each span reads its newest ``GROUP_COUNT_SCAN`` rows of
        every type at most: a count past that is a floor."""

        async def members(span: GroupSpan) -> list[Notification]:
            rows = await self.notifications.page(account_id, max_id=span.max_id, since_id=span.min_id - 1,
                                                 min_id=None, limit=GROUP_COUNT_SCAN)
            return [n for n in rows if n.type == span.kind and n.status_id == span.status_id
                    and (from_account is None or n.from_account_id == from_account)]

        found = dict(zip(spans, await asyncio.gather(*(members(span) for span in spans.values())), strict=True))
        everyone = [n for notices in found.values() for n in notices]
        if not everyone:
            return dict.fromkeys(found, 0)
        staff_types = await self._staff_types(account_id, everyone)
        cards, statuses = await asyncio.gather(
            self.accounts.cards({n.from_account_id for n in everyone}),
            self.statuses.visible_ids(_statuses_shown_with(everyone),
                                      Reader(account_id, context=NOTIFICATIONS_CONTEXT)))
        shown = without_suspended(cards)
        return {key: sum(_shows(n, shown, statuses, staff_types) for n in notices) for key, notices in found.items()}

    async def notification(self, account_id: int, notification_id: int) -> bytes:
        found = await self.notifications.one(account_id, notification_id)
        rendered = await self._rendered(account_id, [found]) if found is not None else []
        if not rendered:
            raise ApiError(404, "Record not found")
        return rendered[0]

    async def dismiss_notification(self, account_id: int, notification_id: int) -> None:
        # Mastodon answers 404 for a notification that is not the reader's (or not there).
        store = self.notifications
        if await store.one(account_id, notification_id) is None:
            raise ApiError(404, "Record not found")
        await store.dismiss(account_id, notification_id)

    async def clear_notifications(self, account_id: int) -> None:
        await self.notifications.clear(account_id)

    # Notification policies and requests (kicau/notification_policies.py) ---------------------------------------

    async def _held(self, account_id: int) -> list[Notification]:
        """The account's held-back notifications, newest first (``HELD_SCAN`` at most)."""
        return await self.filtered.page(account_id, max_id=None, since_id=None, min_id=None, limit=HELD_SCAN)

    async def notification_policy(self, account_id: int) -> dict[str, Any]:
        policy, held = await asyncio.gather(self.policies.one(account_id), self._held(account_id))
        return policy_entity(policy, *summary_counts(requests_of(held)))

    async def change_notification_policy(self, account_id: int, given: Mapping[str, str]) -> dict[str, Any]:
        await self.policies.keep(account_id, changed(await self.policies.one(account_id), given))
        return await self.notification_policy(account_id)

    async def notification_requests(self, account_id: int, request: PageRequest,
                                    only: int | None = None) -> Page:
        """The account's notification requests, the greatest id (sender) first, with Mastodon's cursors (``only``:
        the one of that sender, for a page of it alone)."""
        found = requests_of(await self._held(account_id))
        if only is not None:
            found = [r for r in found if r.from_account_id == only]
        below = request.max_id if request.max_id is not None else 1 << 63
        above = request.min_id if request.min_id is not None else (request.since_id or -1)
        found = [r for r in found if above < r.from_account_id < below]
        found = found[-request.limit:] if request.min_id is not None else found[:request.limit]
        cards, statuses = await asyncio.gather(
            self._shown_cards({r.from_account_id for r in found}),
            self.statuses.render_each([r.last_status_id for r in found if r.last_status_id is not None],
                                      Reader(account_id, context=NOTIFICATIONS_CONTEXT)))
        shown = [rendered_request(r, cards[r.from_account_id], statuses.get(r.last_status_id or 0))
                 for r in found if r.from_account_id in cards]
        return Page(body=b"[" + b",".join(shown) + b"]",
                    next_max_id=found[-1].from_account_id if found else None,
                    prev_min_id=found[0].from_account_id if found else None)

    async def answer_requests(self, account_id: int, senders: Sequence[int], *, accept: bool) -> None:
        """Accept the senders' requests (their held notifications join the account's list, with their own ids,
        and they are never held back again) or dismiss them (deleted). The permission first, then the copy,
        then the removal: a retry after a failure anywhere finishes the job, and nothing is lost."""
        chosen = set(senders)
        held = [n for n in await self._held(account_id) if n.from_account_id in chosen]
        if accept:
            await self.policies.permit(account_id, chosen)
            # The private mentions join the account's conversations, as they would have (Mastodon's unfilter does).
            joined = await self.conversations.joined_late(
                account_id, (n.status_id for n in held if n.type == MENTION and n.status_id is not None))
            await asyncio.gather(self.notifications.apply(held), self.conversations.apply(joined, []))
            crash_point("timeline.requests.copied")
        await self.filtered.apply((), [(account_id, n.id) for n in held])
        if accept:  # the user's streams are told (Mastodon's ``notifications_merged``), by every gateway; and when,
            # for a gateway whose channel is down at this moment (services/gateway/streaming.py, ``_merges_missed``)
            await resp.round_trip(self.redis, [
                resp.command(b"SET", keys.notifications_merged_at(account_id).encode(),
                             b"%d" % int(time.time() * 1000), b"EX", b"%d" % keys.MERGED_AT_SECONDS),
                resp.command(b"PUBLISH", keys.NOTIFICATIONS_MERGED_CHANNEL.encode(), str(account_id).encode())])

    # Direct conversations (kicau/conversations.py) ------------------------------------------------------------

    async def conversation_page(self, account_id: int, request: PageRequest) -> Page:
        """The account's conversations, newest last status first; the cursors are last status ids, as in Mastodon's
        Link headers. One whose last status the account may no longer see is left out, and the cursors go past
        it."""
        found = await self.conversations.page(account_id, max_id=request.max_id, since_id=request.since_id,
                                              min_id=request.min_id, limit=request.limit)
        shown = await self._rendered_conversations(account_id, found)
        return Page(body=b"[" + b",".join(body for body in shown if body is not None) + b"]",
                    next_max_id=found[-1].last_status_id if found else None,
                    prev_min_id=found[0].last_status_id if found else None)

    async def read_conversation(self, account_id: int, conversation_id: int) -> bytes:
        """Mark one of the account's conversations read (404: it has none of that id); the conversation."""
        conversation = await self.conversations.mark_read(account_id, conversation_id)
        if conversation is None:
            raise ApiError(404, "Record not found")
        body, = await self._rendered_conversations(account_id, [conversation], missing_status=True)
        assert body is not None
        return body

    async def forget_conversation(self, account_id: int, conversation_id: int) -> None:
        if not await self.conversations.forget(account_id, conversation_id):
            raise ApiError(404, "Record not found")

    async def _rendered_conversations(self, account_id: int, found: list[Conversation],
                                      missing_status: bool = False) -> list[bytes | None]:
        """Each conversation as its member reads it; None for one whose last status it may no longer see (or,
        with ``missing_status``, the conversation with ``last_status`` null)."""
        if not found:
            return []
        statuses, cards = await asyncio.gather(
            self.statuses.render_each([c.last_status_id for c in found], Reader(account_id)),
            self.accounts.cards({a for c in found for a in conversations.shown_accounts(c)}))
        return [conversations.rendered(c, [cards[a] for a in conversations.shown_accounts(c) if a in cards],
                                       statuses.get(c.last_status_id))
                if c.last_status_id in statuses or missing_status else None
                for c in found]

    async def _rendered(self, account_id: int, notifications: list[Notification]) -> list[bytes]:
        """Each notification whose account still has a card and whose status its reader may still see (a deleted
        status takes its mentions with it, and a reblog given back its notification: a reblog's notification shows
        the reblogged status, and is shown while the reblog, whose id it bears, is there)."""
        if not notifications:
            return []
        staff_types, reports, warnings = await asyncio.gather(
            self._staff_types(account_id, notifications),
            self.reports.some(n.id for n in notifications if n.type == ADMIN_REPORT),
            self.warnings.some(account_id, [n.id for n in notifications if n.type == MODERATION_WARNING]))
        cards, statuses = await asyncio.gather(
            self.accounts.cards({n.from_account_id for n in notifications}
                                | {r.target_account_id for r in reports.values()}),
            self.statuses.render_each(_statuses_shown_with(notifications),
                                      Reader(account_id, context=NOTIFICATIONS_CONTEXT)),
        )
        # A report shows with its target's card (suspended or not): one whose target is gone shows not at all.
        shown_reports = {report_id: report_entity(report, cards[report.target_account_id])
                         for report_id, report in reports.items() if report.target_account_id in cards}
        # A warning shows with the warned account's card: the reader's own, the notification's account too.
        shown_warnings = {warning_id: rendered_warning(warning, cards[account_id])
                          for warning_id, warning in warnings.items() if account_id in cards}
        senders = without_suspended(cards)  # notifications from a suspended account show not at all
        return [rendered(notice, cards[notice.from_account_id],
                         statuses[notice.status_id] if notice.status_id is not None else None,
                         shown_reports.get(notice.id) if notice.type == ADMIN_REPORT else None,
                         shown_warnings.get(notice.id) if notice.type == MODERATION_WARNING else None)
                for notice in notifications
                if _shows(notice, senders, statuses, staff_types)
                and (notice.type != ADMIN_REPORT or notice.id in shown_reports)
                and (notice.type != MODERATION_WARNING or notice.id in shown_warnings)]

    async def _staff_types(self, account_id: int, notifications: Sequence[Notification]) -> frozenset[str]:
        """The staff's notification types (kicau/notifications.py ``STAFF_TYPES``) the reader's role lets it read
        now; its role is read only for notifications of those types."""
        if not any(n.type in STAFF_TYPES for n in notifications):
            return frozenset()
        role = await self.staff.role_of(account_id)
        return frozenset(kind for kind, permission in STAFF_TYPES.items() if role.can(permission))

    # Rebuilds ---------------------------------------------------------------------------------------------

    async def rebuild_home(self, account_id: int) -> None:
        """The reader's own statuses and those of everyone it follows and neither blocks nor mutes nor keeps in an
        exclusive list (kicau/lists.py), newest first, capped; of each followee's, those its follow's options let
        in."""

        async def newest() -> list[int]:
            followees, hidden, apart = await asyncio.gather(self.store.followees(account_id),
                                                            self.hides.hidden_by(account_id),
                                                            self.exclusive_members(account_id))
            lists = await asyncio.gather(
                self._newest_of([account_id]),
                self._admitted_newest(account_id, [a for a in followees if a not in hidden and a not in apart]))
            return heapq.nlargest(self.settings.home_timeline_cap, {s for ids in lists for s in ids})

        await self._single_flight(keys.home_feed(account_id), newest)

    async def rebuild_list(self, found: AccountList) -> None:
        """A list's timeline: the newest statuses of its members that the owner follows and neither blocks nor
        mutes, as their follows' options let them into its home timeline; the replies policy applies when read.
        The members are read once the timeline is pending: a change of them after that drops the pending
        timeline, and the rebuild reads them again."""

        async def newest() -> list[int]:
            members = await self.lists.members(found.list_id)
            followed, hidden = await asyncio.gather(self.store.followees_among(found.owner_id, members),
                                                    self.hides.hidden_by(found.owner_id))
            return await self._admitted_newest(found.owner_id, [m for m in followed if m not in hidden])

        await self._single_flight(keys.list_feed(found.list_id), newest)

    async def _admitted_newest(self, account_id: int, followees: list[int]) -> list[int]:
        """The newest statuses of ``followees`` that each follow's options let in (kicau/follow_options.py: no
        reblogs when it hides them, only the languages it names), newest first, capped."""
        cap = self.settings.home_timeline_cap
        slots = asyncio.Semaphore(self.own.rebuild_concurrency)

        async def admitted_of(followee: int) -> list[int]:
            async with slots:
                entries, options = await asyncio.gather(self.store.newest_entries(followee, cap),
                                                        self.follow_options.of_follow(account_id, followee))
            return admitted(entries, options)

        lists = await asyncio.gather(*(admitted_of(a) for a in followees))
        return heapq.nlargest(cap, {s for ids in lists for s in ids})

    async def exclusive_members(self, account_id: int) -> set[int]:
        """The members of the account's exclusive lists, whose statuses its home timeline leaves out."""
        exclusive = [found.list_id for found in await self.lists.of_owner(account_id) if found.exclusive]
        members = await asyncio.gather(*(self.lists.members(list_id) for list_id in exclusive))
        return {member for listed in members for member in listed}

    async def rebuild_author_feed(self, account_id: int) -> None:
        async def newest() -> list[int]:
            return await self._newest_of([account_id])

        await self._single_flight(keys.author_feed(account_id), newest)

    async def rebuild_public(self) -> None:
        async def newest() -> list[int]:
            return await self.public.newest(self.settings.home_timeline_cap)

        await self._single_flight(keys.public_feed(), newest)

    async def _newest_of(self, authors: list[int]) -> list[int]:
        """The newest statuses of all ``authors`` together, newest first, capped."""
        cap = self.settings.home_timeline_cap
        slots = asyncio.Semaphore(self.own.rebuild_concurrency)

        async def newest(author: int) -> list[int]:
            async with slots:
                return await self.store.account_status_ids(author, max_id=None, since_id=None, min_id=None, limit=cap)

        lists = await asyncio.gather(*(newest(a) for a in authors))
        return heapq.nlargest(cap, {s for ids in lists for s in ids})

    async def _single_flight(self, key: str, newest: NewestOf) -> None:
        """At most one rebuild of a timeline at a time across all processes: concurrent readers in this process
        share one task, other processes wait on a Redis lock."""
        task = self._rebuilds.get(key)
        if task is None:
            task = asyncio.create_task(self._rebuild_once(key, newest))
            self._rebuilds[key] = task
            task.add_done_callback(lambda _: self._rebuilds.pop(key, None))
        await asyncio.shield(task)

    async def _rebuild_once(self, key: str, newest: NewestOf) -> None:
        lock = keys.feed_rebuild_lock(key)
        if not await self.redis.set(lock, b"1", nx=True, ex=self.own.rebuild_lock_seconds):
            # Another process is rebuilding this timeline: wait for it rather than rebuild twice.
            deadline = asyncio.get_running_loop().time() + self.own.rebuild_lock_seconds
            while asyncio.get_running_loop().time() < deadline:
                if await self.feeds.is_materialised(key):
                    return
                await asyncio.sleep(0.05)
            log.warning("rebuild of %s by another process timed out; rebuilding here", key)
        try:
            for attempt in range(1, _REBUILD_ATTEMPTS + 1):
                # A reader that found the timeline missing may get here only after another rebuild of it finished
                # (the shared task is gone once done, and so is the lock): what it saw is already repaired. Else
                # the timeline is made pending before Cassandra is read, so no push from here on is lost.
                if await self.feeds.begin_rebuild(key, self.own.rebuild_lock_seconds):
                    break
                merged = await newest()
                pipe = self.redis.pipeline(transaction=True)
                self.feeds.materialise(pipe, key, merged, rebuilt=True)
                written, *_ = await pipe.execute()
                if written >= 0:
                    TIMELINE_REBUILDS.inc()
                    log.info("rebuilt %s: %d entries", key, len(merged))
                    break
                # Dropped while Cassandra was read (a follow, a block or a list's members changed: what was read
                # may predate the change): read again.
                TIMELINE_REBUILDS_RESTARTED.inc()
                log.info("rebuild of %s overtaken by a change (attempt %d); reading again", key, attempt)
            else:
                log.warning("rebuild of %s overtaken %d times; left for the next read", key, _REBUILD_ATTEMPTS)
        finally:
            await self.redis.delete(lock)


def merged_pages(pages: Sequence[list[Notification]], scan: int, *, forward: bool) -> list[Notification]:
    """Pages of several tables (each ``scan`` rows at most, newest first) as one, newest first, cut where the
    first full one stops: past that, the others' rows could skip some of its own."""
    if len(pages) == 1:
        return pages[0]
    rows = sorted((n for page in pages for n in page), key=lambda n: n.id, reverse=True)
    for page in (page for page in pages if len(page) >= scan):
        # Forward (the oldest above the cursor), a full page covers up to its newest; else down to its oldest.
        bound = page[0].id if forward else page[-1].id
        rows = [n for n in rows if (n.id <= bound if forward else n.id >= bound)]
    return rows


def _statuses_shown_with(notifications: Sequence[Notification]) -> list[int]:
    """The statuses whose visibility decides whether notifications show: each one's status, and a reblog's own
    id (its notification shows while the reblog is there)."""
    return [*(n.status_id for n in notifications if n.status_id is not None),
            *(n.id for n in notifications if n.type == REBLOG)]


def _shows(notice: Notification, cards: Container[int], statuses: Container[int],
           staff_types: Container[str] = frozenset()) -> bool:
    """Whether a notification shows: its account still has a card, and its reader may still see its status (a
    deleted status takes its mentions with it) and, for a reblog, the reblog (given back, it takes its notification
    with it); one of the staff's types, while the reader's role lets it read them (``staff_types``). ``cards`` and
    ``statuses``: those there and seen."""
    return (notice.from_account_id in cards and (notice.status_id is None or notice.status_id in statuses)
            and (notice.type != REBLOG or notice.id in statuses)
            and (notice.type not in STAFF_TYPES or notice.type in staff_types))
