"""Creating and deleting statuses.

The guarantee: a status answered 2xx is in Cassandra *and* acknowledged by Kafka (acks=all). The record is
written first; if the event cannot be published the record is rolled back and the client gets a 503, so no
half-written status remains. An Idempotency-Key is claimed by a lightweight transaction before anything is
written, so concurrent retries with one key produce one status; a retry that finds its key already used
republishes the original event (the fanout is idempotent) and answers the original status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from kicau import directory, hashtags, keys, link_trends, links, media, newest_ids, polls, quotes, replies, resp, tokens
from kicau.account_cards import AccountCards, with_statuses_count_moved
from kicau.account_standing import AccountStanding
from kicau.bookmarks import BookmarkStore
from kicau.claims import Claim
from kicau.conversations import thread_root
from kicau.crash_points import crash_point
from kicau.entities import (
    compose_status,
    compose_status_list,
    dumps,
    status_edit_fragment,
    status_fragment,
    text_to_html,
)
from kicau.events import (
    Event,
    PollEnded,
    StatusCreated,
    StatusDeleted,
    StatusEdited,
    StatusFavourited,
    StatusUnfavourited,
)
from kicau.favourites import FavouriteStore
from kicau.ids import SnowflakeGenerator, ms_from_id, time_of_id
from kicau.linked_statuses import LinkedStatuses
from kicau.mentions import Mention, MentionResolver, stored
from kicau.metrics import LINK_PREVIEWS, POST_STAGE_SECONDS, STATUSES_CREATED, STATUSES_DELETED, STATUSES_EDITED
from kicau.pins import MAX_PINS, PinStore
from kicau.posting_defaults import DefaultsCopies
from kicau.publishing import enqueue, publish
from kicau.reader_marks import Mark, mark_commands
from kicau.reblogs import VISIBILITIES as REBLOG_VISIBILITIES
from kicau.reblogs import ReblogStore, may_reblog, reblog_visibility
from kicau.settings import CommonSettings
from kicau.status_cards import StatusCards, cache_command, edited_command, tombstone_command
from kicau.status_tallies import Tally, move_command, recount_command
from kicau.status_trends import engagement_commands
from kicau.thread_mutes import ThreadMuteStore
from kicau.visibility import DIRECT, PUBLIC, UNLISTED, VISIBILITIES, Reader
from kicau.web import ApiError
from services.post.edits import (
    Alongside,
    Described,
    EditStore,
    StatusChange,
    changes_anything,
    version_media,
    version_time,
)
from services.post.link_previews import DuePreview, LinkPreviewStore, PageCards
from services.post.media import Attachments
from services.post.poll_endings import Ending, PollEndingStore, notification_id
from services.post.scheduled import (
    Params,
    PollParams,
    ScheduledStatus,
    ScheduledStore,
    check_time,
    idempotency_key,
    iso,
    parse_time,
)
from services.post.settings import PostSettings
from services.post.store import StatusStore

log = logging.getLogger(__name__)

_CARD_SECONDS, _PUBLISH_SECONDS, _CACHES_SECONDS = (POST_STAGE_SECONDS.labels(stage)
                                                    for stage in ("card", "publish", "caches"))

MAX_IDEMPOTENCY_KEY = 128
# Longer than a request holding an Idempotency-Key can still write or publish its status after generating its
# id (each Cassandra call and the publish time out after 5 s).
IDEMPOTENCY_IN_FLIGHT_SECONDS = 30.0
# Once a status is durable and published, what is left (counts, caches, the author's card for the answer) may
# take this long before it is skipped: the answer must not turn into a timeout at the gateway (10 s).
AFTER_COMMIT_SECONDS = 2.0
# Edits of one status run one at a time (``edit``): two at once would each keep a version and rewrite the row, and
# the row could end at one while the history ends at the other. One waits this long for the other to finish (well
# inside the gateway's 10 s). The lock's lease is short and renewed while its edit runs: one left by a service that
# died mid-edit lapses within EDIT_LEASE_SECONDS, before the client's retry comes back through a restarted service
# (the retry is what publishes an edit written and not yet streamed: tests/faults/test_edit_faults.py).
EDIT_WAIT_SECONDS = 3.0
EDIT_LEASE_SECONDS = 2.0
# A deleted status's reblogs are deleted with it, this many at once, for at most this long before its delete
# answers; what is left is left out of every read (kicau/status_cards.py).
REBLOGS_TAKEN_BACK_AT_ONCE = 32
REBLOGS_TAKEN_BACK_SECONDS = 5.0


class _Id(msgspec.Struct):
    id: str


class _Authored(msgspec.Struct):
    account: _Id


# The author of a rendered Status (the members it does not name are skipped unparsed).
_read_author = msgspec.json.Decoder(_Authored).decode


def _author_of(status: bytes) -> int:
    return int(_read_author(status).account.id)


class _Addresses(msgspec.Struct):
    uri: str
    url: str | None = None


_read_addresses = msgspec.json.Decoder(_Addresses).decode


class _Quoted(NamedTuple):
    """A status a new one quotes (``PostService._quoting``)."""

    status_id: int
    author_id: int
    visibility: str
    url: str
    uri: str
    shown: bytes  # as the quoter sees it, its own quote left shallow


def _new_quote_policy(row: dict[str, Any], policy: str | None) -> str | None:
    """``policy``, if it changes who may quote the status of ``row`` (one that is not public or unlisted is quoted
    by no one whatever it says, kicau/quotes.py); None for no change."""
    if policy is None or (row.get("visibility") or PUBLIC) not in (PUBLIC, UNLISTED) or \
            quotes.policy_of(row) == policy:
        return None
    return policy


def _as_author_sees(fragment: bytes, row: dict[str, Any], quoting: _Quoted | None) -> bytes:
    """A new status's fragment as its author is answered it: the Quote of the status it quotes (as the author sees
    that status), and ``quote_approval.current_user`` automatic where the fragment says what others see
    (kicau/quotes.py)."""
    if quoting is not None:
        fragment = quotes.with_quote(fragment, quotes.entity(quotes.ACCEPTED, quoting.shown))
    if quotes.policy_of(row) != quotes.ANYONE and row.get("visibility") != DIRECT:
        fragment = quotes.with_current_user(fragment, True)
    return fragment


class _Reblog(msgspec.Struct):
    reblog: _Id | None = None


_read_reblog = msgspec.json.Decoder(_Reblog).decode


def _reblogged_id(status: bytes) -> int | None:
    """The id of the status a rendered Status reblogs, if it is a reblog."""
    reblog = _read_reblog(status).reblog
    return None if reblog is None else int(reblog.id)


def _with_source(rendered: bytes, row: dict[str, Any]) -> bytes:
    """A deleted status as Mastodon answers it: with its source text, for "delete and redraft" (a reblog's is
    empty)."""
    return rendered[:-1] + b',"text":' + dumps(row.get("text") or "") + b"}"


def _counted_parent(row: dict[str, Any]) -> int | None:
    """The status whose replies_count counts this one (kicau/replies.py), if any."""
    parent: int | None = row.get("in_reply_to_id")
    return parent if parent is not None and replies.counted(row.get("visibility")) else None


def _counted_in(row: dict[str, Any], delta: int) -> tuple[Moved, ...]:
    """The counts of other statuses a status counts in, moved by ``delta``: its parent's replies_count (a counted
    reply, kicau/replies.py) and the quoted status's quotes_count (an accepted quote, kicau/quotes.py)."""
    moved: tuple[Moved, ...] = ()
    parent = _counted_parent(row)
    if parent is not None:
        moved += (Moved(parent, Tally.REPLIES, delta),)
    if quotes.stands(row):
        moved += (Moved(int(row["quote_of_id"]), Tally.QUOTES, delta),)
    return moved


class Moved(NamedTuple):
    """A count of another status that a change moves (kicau/status_tallies.py)."""

    status_id: int
    tally: Tally
    delta: int


@dataclass(frozen=True)
class NewStatus:
    text: str
    visibility: str = "public"
    sensitive: bool = False
    spoiler_text: str = ""
    language: str | None = None
    in_reply_to_id: int | None = None
    poll: polls.Definition | None = None  # checked when it was made (kicau/polls.py)
    # Uploaded attachments (kicau/media.py), in the order shown; each once.
    media_ids: tuple[int, ...] = ()
    # The status it quotes, and who may quote it (kicau/quotes.py; None: what its visibility allows).
    quoted_status_id: int | None = None
    quote_policy: str | None = None


@dataclass
class _EditProgress:
    """How far an edit got: whether Cassandra's row holds it (then the attachments it added are the status's)."""

    written: bool = False


@dataclass(frozen=True)
class _Relinking:
    """An edit's change of the address whose card its status shows (``PostService._relinking``)."""

    moved: bool = False  # another address, or none: the card is cleared
    planned: str | None = None  # the new address, whose preview is planned
    edit: tuple[Alongside, ...] = ()  # written in the edit's batch
    undo: tuple[Alongside, ...] = ()  # and in its undo's


def _check_direct_quote(quoting: _Quoted | None, visibility: str, mentions: Sequence[Mention],
                        account_id: int) -> None:
    """A direct quote must mention the quoted status's author (unless it quotes its own): 422 otherwise."""
    if quoting is not None and visibility == DIRECT and quoting.author_id != account_id \
            and quoting.author_id not in {m.account_id for m in mentions}:
        raise ApiError(422, "Validation failed: A direct quote must mention the author of the quoted post")


def validate(draft: NewStatus, max_characters: int) -> None:
    text = draft.text
    # With attachments a status may say nothing, as Mastodon's may.
    if not text.strip() and not draft.media_ids:
        raise ApiError(422, "Validation failed: Text can't be blank")
    if len(draft.media_ids) > media.MAX_PER_STATUS:
        raise ApiError(422, f"Validation failed: You can't attach more than {media.MAX_PER_STATUS} files")
    if draft.media_ids and draft.poll is not None:
        raise ApiError(422, "Validation failed: You can't attach both files and a poll")
    if draft.quoted_status_id is not None and (draft.media_ids or draft.poll is not None):
        raise ApiError(422, "Validation failed: A quote post cannot have attachments or a poll")
    if draft.quote_policy is not None and draft.quote_policy not in quotes.POLICIES:
        raise ApiError(422, "Validation failed: Quote approval policy is not included in the list")
    if "\x00" in text or "\x00" in draft.spoiler_text:
        raise ApiError(422, "Validation failed: Text must not contain NUL characters")
    # Mastodon counts characters as the user sees them: normalise so a decomposed "é" counts once.
    length = len(unicodedata.normalize("NFC", text)) + len(draft.spoiler_text)
    if length > max_characters:
        raise ApiError(422, f"Validation failed: Text character limit of {max_characters} exceeded")
    if draft.visibility not in VISIBILITIES:
        raise ApiError(422, "Validation failed: Visibility is not included in the list")
    code = (draft.language or "").replace("-", "")
    # ASCII: str.isalnum() alone also admits letters and digits of every other script.
    if draft.language is not None and (len(draft.language) > 16 or not (code.isascii() and code.isalnum())):
        raise ApiError(422, "Validation failed: Language is not a valid language code")


async def _keep_lease(lock: Lock) -> None:
    """Renew ``lock``'s lease while its holder runs (cancelled when it is done). Redis unreachable for a moment
    only shortens the lease; one already lost (the holder stalled past it) is logged, as the edit goes on."""
    while True:
        await asyncio.sleep(EDIT_LEASE_SECONDS / 3)
        try:
            await lock.reacquire()
        except LockError:
            log.warning("the lease of %s lapsed while its edit ran", lock.name)
            return
        except RedisError as exc:
            log.info("could not renew the lease of %s (%r)", lock.name, exc)


def _nothing() -> None:
    pass


@dataclass
class PostService:
    settings: CommonSettings
    own: PostSettings
    store: StatusStore
    redis: Redis
    producer: AIOKafkaProducer
    accounts: AccountCards
    statuses: StatusCards
    mentions: MentionResolver
    ids: SnowflakeGenerator
    favourites: FavouriteStore
    reblogs: ReblogStore
    bookmarks: BookmarkStore
    pins: PinStore
    thread_mutes: ThreadMuteStore
    poll_votes: polls.PollVotes
    poll_endings: PollEndingStore
    edits: EditStore
    scheduled: ScheduledStore
    attachments: Attachments
    link_previews: LinkPreviewStore
    linked: LinkedStatuses  # the public statuses sharing each page (GET /api/v1/timelines/link)
    defaults: DefaultsCopies  # what a new status is when its request does not say (kicau/posting_defaults.py)
    standing: AccountStanding  # whose login is refused (disabled, suspended): their scheduled statuses are dropped
    # Pages' cards (services/post/link_previews.py); None: no previews (``KICAU_POST_LINK_PREVIEWS=false``).
    page_cards: PageCards | None = None
    # Called once a preview is planned: the runner looks at once rather than at its next round.
    previews_planned: Callable[[], None] = _nothing

    def _preview_address(self, text: str) -> str | None:
        """The address whose card the status is to show (kicau/links.py), if previews are on."""
        if self.page_cards is None:
            return None
        return links.preview_address(text, self.settings.public_url)

    async def show_preview(self, due: DuePreview) -> bool:
        """Fetch a planned preview's page and, if it makes a card and the status still shows the address, write the
        card into its row and drop its cached value behind a new edited mark (services/post/link_previews.py);
        whether a card was shown. Raises (the plan is kept for the next round) only when an edit holds the status
        or an engine fails."""
        if self.page_cards is None or not self._shows_address(await self.store.get(due.status_id), due.url):
            LINK_PREVIEWS.labels("stale").inc()
            return False
        card = await self.page_cards.card(due.url)
        if card is None:
            LINK_PREVIEWS.labels("none").inc()
            return False
        lock = self.redis.lock(keys.status_edit_lock(due.status_id), timeout=EDIT_LEASE_SECONDS,
                               blocking_timeout=EDIT_WAIT_SECONDS)
        if not await lock.acquire():
            raise RuntimeError(f"status {due.status_id} is being edited: its preview waits for the next round")
        try:
            row = await self.store.get(due.status_id)
            if row is None or not self._shows_address(row, due.url):  # edited or deleted meanwhile
                LINK_PREVIEWS.labels("stale").inc()
                return False
            await self.link_previews.show(due.status_id, card)
            await resp.round_trip(self.redis, [edited_command(due.status_id, self.ids.next_id()),
                                               recount_command(due.status_id)])
        finally:
            with contextlib.suppress(LockError):
                await lock.release()
        if row.get("visibility") == PUBLIC:  # a share of the page: trending links, the link's timeline
            await asyncio.gather(
                link_trends.count_share(self.redis, due.url, due.status_id, int(row["account_id"])),
                self.linked.add(due.url, due.status_id))
        LINK_PREVIEWS.labels("card").inc()
        return True

    def _shows_address(self, row: dict[str, Any] | None, url: str) -> bool:
        return (row is not None and row.get("deleted_at") is None and not row.get("reblog_of_id")
                and self._preview_address(row.get("text") or "") == url)

    async def _publish(self, event: Event) -> None:
        async with asyncio.timeout(self.own.publish_timeout_seconds):
            await publish(self.producer, self.settings.kafka_statuses_topic, event)

    async def create(self, *, account_id: int, draft: NewStatus, idempotency_key: str | None,
                     media_from: int | None = None) -> bytes:
        """Post a status; ``media_from``: the scheduled status whose attachments it takes."""
        validate(draft, self.settings.max_characters)
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ApiError(422, "Validation failed: Idempotency-Key must be 1 to 128 characters")
        # The author's cached card (one Redis GET; Cassandra only on a miss) gives the username for the status and,
        # with the new count, the account embedded in the answer.
        started = time.perf_counter()
        card = await self.accounts.card(account_id)
        _CARD_SECONDS.observe(time.perf_counter() - started)
        if card is None:
            raise ApiError(401, "This method requires an authenticated user")
        parent_author = root = None
        if draft.in_reply_to_id is not None:
            # The parent's row beside its rendering: the root of its thread is the reply's (kicau/conversations.py).
            parent, parent_row = await asyncio.gather(
                self.statuses.render_one(draft.in_reply_to_id, Reader(account_id)),
                self.store.get(draft.in_reply_to_id))
            if parent is None or parent_row is None:
                # As Mastodon answers: no reply to a status that does not exist (or no longer does), nor to one
                # the author may not see (kicau/visibility.py), which must look the same.
                raise ApiError(422, "The status you are trying to reply to does not appear to exist.")
            parent_author = _author_of(parent)
            root = thread_root(parent_row)
        quoting = None
        if draft.quoted_status_id is not None:
            quoting = await self._quoting(account_id, draft.quoted_status_id)
            draft = replace(draft, visibility=quotes.visibility_of_quote(quoting.visibility, draft.visibility))
        username = str(msgspec.json.decode(card)["username"])
        # Before anything is written: a status's mentions are resolved once, and kept with it (kicau/mentions.py).
        mentions = await self.mentions.resolve(draft.text)
        _check_direct_quote(quoting, draft.visibility, mentions, account_id)
        status_id = self.ids.next_id()
        if idempotency_key:
            try:
                existing = await self._claim(account_id, idempotency_key, status_id)
            except ApiError:
                raise
            except Exception:
                # A claim that failed may still have been applied (a lightweight transaction that timed out, as
                # Cassandra's do under load): the key would then name a status never written, and retries would
                # get 409 until IDEMPOTENCY_IN_FLIGHT_SECONDS pass. Give it back if it is ours.
                await self._release_quietly(account_id, idempotency_key, status_id)
                raise
            if existing is not None:
                return await self._replay(existing, account_id, username, card)
        attached: list[media.StoredMedia] = []
        if draft.media_ids:
            try:
                attached = await self.attachments.attach(account_id, draft.media_ids, status_id,
                                                         self._holder_of(account_id), taking_from=media_from)
            except BaseException:
                if idempotency_key:
                    await self._release_quietly(account_id, idempotency_key, status_id)
                raise
            crash_point("post.media.attached")
        row: dict[str, Any] = {
            "id": status_id,
            "account_id": account_id,
            "text": draft.text,
            "content": text_to_html(draft.text, mentions, self.settings.public_url),
            "visibility": draft.visibility,
            "sensitive": draft.sensitive,
            "spoiler_text": draft.spoiler_text,
            "language": draft.language,
            "in_reply_to_id": draft.in_reply_to_id,
            "in_reply_to_account_id": parent_author,
            "created_at": datetime.now(UTC),
            "mentions": mentions,
            "conversation_id": root,
            "poll": polls.stored(draft.poll) if draft.poll is not None else None,
            "media": media.stored(attached),
            "quote_policy": draft.quote_policy if draft.visibility in (PUBLIC, UNLISTED) else None,
            # A follower it mentions, and asked to be told of its author's statuses, is told of both.
            "status_notification_id": self.ids.next_id() if mentions else None,
        }
        if quoting is not None:
            row.update(quote_of_id=quoting.status_id, quote_state=quotes.ACCEPTED,
                       quote_notification_id=self.ids.next_id())
            if not quotes.links_to(draft.text, quoting.url, quoting.uri):
                row["content"] = quotes.inline_link(quoting.url) + row["content"]
        fragment = status_fragment(row, username=username, public_url=self.settings.public_url)
        try:
            await self.store.insert(row)
            if draft.poll is not None:  # its end notifies its voters (services/post/poll_endings.py)
                await self.poll_endings.plan(status_id, account_id, draft.poll.ends())
            preview = self._preview_address(draft.text)
            if preview is not None:  # its link's card (services/post/link_previews.py)
                await self.link_previews.plan(status_id, preview)
            started = time.perf_counter()
            await self._publish(StatusCreated(status_id=status_id, account_id=account_id,
                                              status_json=fragment.decode(), visibility=draft.visibility,
                                              mentions=[m.account_id for m in mentions],
                                              tags=hashtags.names(draft.text),
                                              in_reply_to_account=parent_author or 0,
                                              language=draft.language or "", conversation_id=root or 0,
                                              quoted_account=quoting.author_id if quoting is not None else 0,
                                              quote_notification_id=row.get("quote_notification_id") or 0,
                                              status_notification_id=row["status_notification_id"] or 0))
            _PUBLISH_SECONDS.observe(time.perf_counter() - started)
        except BaseException:
            await self._roll_back(row, idempotency_key)
            raise
        STATUSES_CREATED.inc()
        if preview is not None:
            self.previews_planned()
        crash_point("post.status.published")
        # The answer embeds the card as read plus this status, whether or not the bookkeeping gets through: the
        # status is durable and published, and a 503 now would make a client without an Idempotency-Key post it
        # again.
        # A direct status is not counted (kicau/status_counts.py).
        bumped = card if draft.visibility == DIRECT else with_statuses_count_moved(card, +1)
        started = time.perf_counter()
        await self._after_change(status_id, account_id, fragment, (card, bumped), _counted_in(row, +1),
                                 root=root or 0)
        _CACHES_SECONDS.observe(time.perf_counter() - started)
        if draft.poll is not None:  # as its author reads it (kicau/polls.py): no votes yet, and "voted"
            fragment = polls.with_poll(fragment, polls.encoded(polls.entity(status_id, draft.poll, reader=account_id,
                                                                            author=account_id)))
        return compose_status(_as_author_sees(fragment, row, quoting), bumped)

    async def _quoting(self, account_id: int, quoted_id: int) -> _Quoted:
        """The status ``quoted_id`` as its quoter may quote it (kicau/quotes.py): one it may see, no reblog, whose
        policy lets it quote; else a 422 (one it may not see looks missing, as a reply's parent does)."""
        shown, row = await asyncio.gather(self.statuses.render_one(quoted_id, Reader(account_id), quoted=False),
                                          self.store.get(quoted_id))
        if shown is None or row is None or row.get("deleted_at") is not None:
            raise ApiError(422, "Validation failed: The post you are trying to quote does not appear to exist")
        if row.get("reblog_of_id"):
            raise ApiError(422, "Validation failed: A reblog cannot be quoted")
        author_id, visibility, policy = int(row["account_id"]), row.get("visibility") or PUBLIC, quotes.policy_of(row)
        follows = policy == quotes.FOLLOWERS and author_id != account_id and \
            await self.store.quotes.follows(account_id, author_id)
        if not quotes.may_quote(policy, visibility, author_id, account_id, follows):
            raise ApiError(422, "Validation failed: You are not allowed to quote this post")
        addresses = _read_addresses(shown)
        return _Quoted(quoted_id, author_id, visibility, addresses.url or addresses.uri, addresses.uri, shown)

    async def _claim(self, account_id: int, key: str, status_id: int) -> int | None:
        """None once this request owns the key, else the id of the status the key already belongs to.

        A key can name a status that was never written: its request failed and could not release the key
        (e.g. the claim reached a paused Cassandra only after the client had its 503). Once no request can
        still be writing that status, a retry takes the key over instead of failing for ever.
        """
        for _ in range(3):
            existing = await self.store.claim_idempotency_key(account_id, key, status_id)
            if existing is None or await self.store.get(existing) is not None:
                return existing
            if time.time() * 1000 - ms_from_id(existing) < IDEMPOTENCY_IN_FLIGHT_SECONDS * 1000:
                break
            if await self.store.take_over_idempotency_key(account_id, key, existing, status_id):
                return None
        raise ApiError(409, "A request with this Idempotency-Key is still in progress, try again shortly")

    async def _quoted_author(self, row: dict[str, Any]) -> int:
        """The author of the status ``row`` quotes, while its quote stands (who is told of it); else 0."""
        if not quotes.stands(row):
            return 0
        quoted = await self.store.get(int(row["quote_of_id"]))
        return int(quoted["account_id"]) if quoted is not None and quoted.get("deleted_at") is None else 0

    async def _replay(self, status_id: int, account_id: int, username: str, card: bytes) -> bytes:
        row = await self.store.get(status_id)
        if row is None or row.get("deleted_at") is not None or row["account_id"] != account_id:
            # The key's first request was rolled back or its status deleted since: Mastodon answers the
            # original outcome; with nothing to return, say so rather than post a second status.
            raise ApiError(422, "Validation failed: this Idempotency-Key was already used")
        fragment = status_fragment(row, username=username, public_url=self.settings.public_url)
        await self._publish(StatusCreated(status_id=status_id, account_id=account_id, status_json=fragment.decode(),
                                          visibility=row.get("visibility") or PUBLIC,
                                          mentions=[m.account_id for m in stored(row.get("mentions"))],
                                          tags=hashtags.names(row.get("text") or ""),
                                          in_reply_to_account=int(row.get("in_reply_to_account_id") or 0),
                                          language=row.get("language") or "",
                                          conversation_id=int(row.get("conversation_id") or 0),
                                          quoted_account=await self._quoted_author(row),
                                          quote_notification_id=int(row.get("quote_notification_id") or 0),
                                          status_notification_id=int(row.get("status_notification_id") or 0)))
        for counted in _counted_in(row, +1):
            # The first request may have died before or after counting the reply (or the quote): counted again.
            await self._recount_quietly(counted.status_id)
        return compose_status(fragment, card)

    async def _roll_back(self, row: dict[str, Any], idempotency_key: str | None) -> None:
        try:
            await self.store.remove(row["id"], row["account_id"], row["in_reply_to_id"], row.get("quote_of_id"))
            # A publish that timed out may still be delivered: the idempotent producer retries its batch until
            # the broker takes it, so the fanout can see this status later. The tombstone keeps it out of every
            # read (the fanout's cache write never replaces one). A profile read meanwhile may have kept the
            # list with it: that copy dies too.
            await self._tombstone(row["id"], row["account_id"])
            if idempotency_key:
                await self.store.release_idempotency_key(row["account_id"], idempotency_key, row["id"])
            await self.attachments.release(media.ids_of(row.get("media")), row["id"])
        except Exception:
            # Both engines failing at once: the row may remain, unpublished. A retry with the same key
            # republishes it (see _replay); without a key it stays out of every home timeline.
            log.exception("could not roll back status %s", row["id"])

    def _holder_of(self, account_id: int) -> Callable[[int], Awaitable[bool]]:
        """Whether an id holding one of the account's attachments is a status written or a scheduled status kept
        (services/post/media.py): either keeps its claim however old."""
        async def holds(holder: int) -> bool:
            return (await self.store.get(holder) is not None
                    or await self.scheduled.one(account_id, holder) is not None)
        return holds

    async def _release_quietly(self, account_id: int, key: str, status_id: int) -> None:
        try:
            await self.store.release_idempotency_key(account_id, key, status_id)
        except Exception:
            log.warning("could not release Idempotency-Key of status %s after a failed claim", status_id,
                        exc_info=True)

    async def _tombstone(self, status_id: int, account_id: int) -> None:
        try:
            await resp.round_trip(self.redis, [tombstone_command(status_id), newest_ids.forget_command(account_id)])
        except Exception:
            log.warning("could not tombstone rolled-back status %s", status_id, exc_info=True)

    async def _after_change(self, status_id: int, account_id: int, fragment: bytes | None,
                            card_change: tuple[bytes, bytes] | None = None, moved: Sequence[Moved] = (),
                            reblog_of: int = 0, root: int = 0) -> None:
        """Best-effort bookkeeping after the status is safe: the caches. Failures here lose nothing, and it is
        bounded in time so that an engine stalling now cannot turn the success into a timeout."""
        try:
            async with asyncio.timeout(AFTER_COMMIT_SECONDS):
                await self._refresh_caches(status_id, account_id, fragment, card_change, moved, reblog_of, root)
        except Exception:
            log.warning("bookkeeping after status %s failed", status_id, exc_info=True)
            await self._forget_cached(account_id)
            for each in moved:
                await self._recount_quietly(each.status_id)

    async def _refresh_caches(self, status_id: int, account_id: int, fragment: bytes | None,
                              card_change: tuple[bytes, bytes] | None, moved: Sequence[Moved],
                              reblog_of: int, root: int) -> None:
        """The status cache (a new status's, or its tombstone) and the author's cached card in one hand-packed
        round trip, with counts of other statuses (``moved``: a reply's parent, a reblogged or quoted status) moved
        by one. The card is replaced by the one with the new count (``card_change``: as read before the write, and
        bumped) if nobody changed it meanwhile, else dropped; without ``card_change`` it is dropped. Nothing in
        Cassandra: the count is the length of the author's list, which the status's own writes have already
        changed (kicau/status_counts.py)."""
        # Sent once only: neither replacing the card nor moving a count is safe to repeat (a second run finds the
        # new card and drops it; it counts the reply twice). A failure reaches _after_change, which then drops the
        # card, the list's version and the other status's cached value.
        commands = [
            tombstone_command(status_id) if fragment is None
            else cache_command(status_id, account_id, fragment, reblog_of, root),
            AccountCards.forget_command(account_id) if card_change is None
            else AccountCards.replace_if_unchanged_command(account_id, *card_change),
            # The author's list changed: every copy of its newest page is dead (kicau/newest_ids.py).
            newest_ids.forget_command(account_id),
        ]
        commands += [move_command(*each) for each in moved]
        if fragment is not None:  # the author's place in the profile directory (kicau/directory.py)
            commands.append(directory.posted_command(account_id, status_id))
        await resp.round_trip(self.redis, commands, attempts=1)

    async def _recount_quietly(self, status_id: int) -> None:
        """Drop a status's cached value (a tombstone stays), so that it is counted again when next read."""
        try:
            async with asyncio.timeout(AFTER_COMMIT_SECONDS):
                await resp.round_trip(self.redis, [recount_command(status_id)])
        except Exception:
            log.warning("could not have status %s counted again", status_id, exc_info=True)

    async def _forget_cached(self, account_id: int) -> None:
        """Drop the author's cached card and the copies of its newest page, after a change whose bookkeeping
        failed; if Redis refuses this too, copies of the page live at most a minute (kicau/newest_ids.py)."""
        try:
            async with asyncio.timeout(AFTER_COMMIT_SECONDS):
                await resp.round_trip(self.redis, [AccountCards.forget_command(account_id),
                                                   newest_ids.forget_command(account_id)])
        except Exception:
            log.warning("could not drop the cached card and page of %s", account_id, exc_info=True)

    async def get(self, status_id: int, reader: Reader) -> bytes:
        """The status, if ``reader`` may see it (``kicau.visibility``); one it may not is missing to it."""
        rendered = await self.statuses.render_one(status_id, reader)
        if rendered is None:
            raise ApiError(404, "Record not found")
        return rendered

    # Favourites (kicau/favourites.py) ---------------------------------------------------------------------

    async def favourite(self, *, account_id: int, status_id: int) -> bytes:
        """Favourite a status the account may see; the status as it now sees it. Every step is repeated by a retry
        without harm, and a retry after a crash finishes what the crash left: the lists, the reader's set and,
        while the claim says it is unsent, the author's notification. The call that made the claim moves the
        cached count by one; a retry of an unsent claim has it counted again instead (the first call may have
        died before or after moving it)."""
        reader = Reader(account_id)
        requested = status_id
        status_id, author = await self._marked(status_id, reader)
        if author in (await self.statuses.hides_of(account_id)).blocking:  # as Mastodon's status policy has it
            raise ApiError(403, "This action is not allowed")
        claim = await self.favourites.claim(account_id, status_id, self.ids.next_id())
        crash_point("post.favourite.claimed")
        await self.favourites.add_to_lists(account_id, status_id, claim.id)
        changes = mark_commands(account_id, status_id, Mark.FAVOURITE, True)
        if claim.created:  # and one engagement for the trends (kicau/status_trends.py)
            changes += (move_command(status_id, Tally.FAVOURITES, +1),
                        *engagement_commands(status_id, time.time() * 1000))
        elif claim.unsent:  # a retry: the call that made the claim may have died before or after counting it
            changes.append(recount_command(status_id))
        await resp.round_trip(self.redis, changes)
        crash_point("post.favourite.counted")
        if claim.unsent:
            # The status as its author sees it, for the notification's stream event.
            status = await self.get(status_id, Reader(author))
            await self._publish(StatusFavourited(account_id=account_id, status_id=status_id, author_id=author,
                                                 favourite_id=claim.id, status=status.decode()))
            await self.favourites.sent(account_id, status_id, claim.id)
        return await self.get(requested, reader)

    async def unfavourite(self, *, account_id: int, status_id: int) -> bytes:
        """Give a favourite back (nothing to do if there is none); the status as the account now sees it. The
        claim goes last, so a retry after a crash finds it and repeats the rest."""
        reader = Reader(account_id)
        requested = status_id
        status_id, author = await self._marked(status_id, reader)
        favourite_id = await self.favourites.claim_of(account_id, status_id)
        if favourite_id is None:
            # Nothing to give back, or a retry of a call that died after giving it back: counted again.
            await resp.round_trip(self.redis, [recount_command(status_id)])
        else:
            await self.favourites.remove_from_lists(account_id, status_id, favourite_id)
            await resp.round_trip(self.redis, mark_commands(account_id, status_id, Mark.FAVOURITE, False))
            await self._publish(StatusUnfavourited(account_id=account_id, status_id=status_id, author_id=author,
                                                   favourite_id=favourite_id))
            if await self.favourites.release(account_id, status_id, favourite_id):
                crash_point("post.unfavourite.released")
                await resp.round_trip(self.redis, [move_command(status_id, Tally.FAVOURITES, -1)])
        return await self.get(requested, reader)

    async def _marked(self, status_id: int, reader: Reader) -> tuple[int, int]:
        """The status a favourite or a bookmark of ``status_id`` is about, if the reader may see it, and its
        author: the status itself, or the one it reblogs. As on Mastodon, favouriting or bookmarking a reblog
        (clients act on the id of the timeline's entry) marks the reblogged status: a reblog has no content of its
        own to favour, and its booster is not the one to notify."""
        rendered = await self.get(status_id, reader)
        reblogged = _reblogged_id(rendered)
        if reblogged is None:
            return status_id, _author_of(rendered)
        # A reblog is shown only while the reader may see the status it reblogs (kicau/status_cards.py).
        return reblogged, _author_of(await self.get(reblogged, reader))

    # Reblogs (kicau/reblogs.py) ---------------------------------------------------------------------------

    async def _reblogged(self, status_id: int, reader: Reader) -> dict[str, Any]:
        """The row of the status a reblog (or unreblog) of ``status_id`` is about, if the reader may see it: the
        status itself, or the one it reblogs (a reblog of a reblog reblogs the original)."""
        await self.get(status_id, reader)
        row = await self.store.get(status_id)
        if row is not None and row.get("reblog_of_id"):
            return await self._reblogged(int(row["reblog_of_id"]), reader)
        if row is None or row.get("deleted_at") is not None:
            raise ApiError(404, "Record not found")
        return row

    async def reblog(self, *, account_id: int, status_id: int, visibility: str = PUBLIC) -> bytes:
        """Reblog a status the account may see and Mastodon's policy lets it reblog; the reblog as it sees it.
        Again: the same reblog. A retry after a crash finishes what the crash left while the claim is unsent."""
        if visibility not in REBLOG_VISIBILITIES:
            raise ApiError(422, "Validation failed: Visibility is not included in the list")
        reader = Reader(account_id)
        original = await self._reblogged(status_id, reader)
        status_id, author = int(original["id"]), int(original["account_id"])
        shown_to = original.get("visibility") or PUBLIC
        # Not a status the account may not reblog, nor one of an account it blocks (Mastodon's status policy).
        blocking = (await self.statuses.hides_of(account_id)).blocking
        if not may_reblog(shown_to, author, account_id) or author in blocking:
            raise ApiError(403, "This action is not allowed")
        for _ in range(2):
            claim = await self.reblogs.claim(account_id, status_id, self.ids.next_id())
            crash_point("post.reblog.claimed")
            if claim.unsent:
                await self._send_reblog(account_id, original, claim, reblog_visibility(shown_to, visibility))
            rendered = await self.statuses.render_one(claim.id, reader)
            if rendered is not None:
                return rendered
            # A claim whose reblog is gone: an unreblog died before giving it back. Finish it as an unreblog would
            # (what it left may be more than the claim), then reblog anew; counted again from the record.
            await self._take_back(account_id, status_id, author, claim.id)
            await self._recount_quietly(status_id)
        raise ApiError(503, "The reblog could not be made, try again")

    async def _send_reblog(self, account_id: int, original: dict[str, Any], claim: Claim,
                           visibility: str) -> None:
        """Write the reblog (the same rows again on a retry), publish it, count it, mark the claim sent."""
        status_id, author = int(original["id"]), int(original["account_id"])
        card = await self.accounts.card(account_id)
        if card is None:
            raise ApiError(401, "This method requires an authenticated user")
        row = {
            "id": claim.id, "account_id": account_id, "text": "", "content": "", "visibility": visibility,
            "sensitive": False, "spoiler_text": "", "language": None, "in_reply_to_id": None,
            "in_reply_to_account_id": None, "mentions": [], "reblog_of_id": status_id,
            # From its id, so that a retry writes the same row.
            "created_at": time_of_id(claim.id),
        }
        username = str(msgspec.json.decode(card)["username"])
        fragment = status_fragment(row, username=username, public_url=self.settings.public_url)
        # As no one in particular sees it (every flag false): what every stream reader and the author receive.
        neutral = await self.statuses.render_one(status_id, Reader(author), marks=False)
        if neutral is None:
            raise ApiError(404, "Record not found")
        await asyncio.gather(self.store.insert(row), self.reblogs.add_to_list(account_id, status_id, claim.id))
        await self._publish(StatusCreated(status_id=claim.id, account_id=account_id,
                                          status_json=fragment.decode(), visibility=visibility,
                                          reblog_of=status_id, reblog_author=author, reblog=neutral.decode()))
        crash_point("post.reblog.published")
        await resp.round_trip(self.redis, [*mark_commands(account_id, status_id, Mark.REBLOG, True),
                                           *(engagement_commands(status_id, time.time() * 1000) if claim.created
                                             else ())])
        if claim.created:
            STATUSES_CREATED.inc()
            await self._after_change(claim.id, account_id, fragment, (card, with_statuses_count_moved(card, +1)),
                                     (Moved(status_id, Tally.REBLOGS, +1),), reblog_of=status_id)
        else:
            # A retry: the first call may have died before or after counting the reblog, on the status and on the
            # booster's card. Both are counted again.
            await self._recount_quietly(status_id)
            await self._after_change(claim.id, account_id, fragment, None, reblog_of=status_id)
        await self.reblogs.sent(account_id, status_id, claim.id)

    async def unreblog(self, *, account_id: int, status_id: int) -> bytes:
        """Give a reblog back (nothing to do if there is none); the reblogged status as the account now sees it.
        The reblog is deleted as a status is, and the claim given back last, so a retry after a crash finds the
        claim and repeats the rest."""
        reader = Reader(account_id)
        original = await self._reblogged(status_id, reader)
        status_id, author = int(original["id"]), int(original["account_id"])
        reblog_id = await self.reblogs.claim_of(account_id, status_id)
        if reblog_id is None:
            # Nothing to give back, or a retry of a call that died after giving it back: counted again.
            await self._recount_quietly(status_id)
        else:
            await self._take_back(account_id, status_id, author, reblog_id)
        return await self.get(status_id, reader)

    async def _take_back(self, account_id: int, status_id: int, author: int, reblog_id: int) -> None:
        """Delete the account's reblog of a status as a status is deleted, then give the claim back and count."""
        reblog = await self.store.get(reblog_id)
        if reblog is not None and reblog.get("deleted_at") is None:
            await self.store.mark_deleted(reblog, datetime.now(UTC))
        await self.reblogs.remove_from_list(status_id, reblog_id)
        # Out of every read at once; the event takes it out of timelines, streams and the author's notifications.
        await resp.round_trip(self.redis, [tombstone_command(reblog_id),
                                           *mark_commands(account_id, status_id, Mark.REBLOG, False)])
        await self._publish(StatusDeleted(status_id=reblog_id, account_id=account_id,
                                          visibility=(reblog or {}).get("visibility") or PUBLIC,
                                          reblog_of=status_id, reblog_author=author))
        crash_point("post.unreblog.published")
        if await self.reblogs.release(account_id, status_id, reblog_id):
            STATUSES_DELETED.inc()
            await self._after_change(reblog_id, account_id, None, moved=(Moved(status_id, Tally.REBLOGS, -1),))

    async def _take_back_all(self, status_id: int, author: int) -> None:
        """After a status is deleted: every reblog of it deleted too, as Mastodon does, so that they leave their
        boosters' lists and counts and their readers' streams get a ``delete``. Best effort and bounded in time
        (``REBLOGS_TAKEN_BACK_SECONDS``): reads leave out what is left, a reblog of a deleted status."""
        try:
            async with asyncio.timeout(REBLOGS_TAKEN_BACK_SECONDS):
                while found := await self.reblogs.of_status(status_id, max_id=None, since_id=None, min_id=None,
                                                            limit=REBLOGS_TAKEN_BACK_AT_ONCE):
                    await asyncio.gather(*(self._take_back(booster, status_id, author, reblog_id)
                                           for reblog_id, booster in found))
        except Exception:
            log.warning("could not take back every reblog of deleted status %s", status_id, exc_info=True)

    # Bookmarks (kicau/bookmarks.py) -----------------------------------------------------------------------

    async def bookmark(self, *, account_id: int, status_id: int) -> bytes:
        """Bookmark a status the account may see; the status as it now sees it. Every step is repeated by a retry
        without harm, so a retry after a crash finishes what the crash left."""
        reader = Reader(account_id)
        requested = status_id
        status_id, _ = await self._marked(status_id, reader)
        claim = await self.bookmarks.claim(account_id, status_id, self.ids.next_id())
        crash_point("post.bookmark.claimed")
        await self.bookmarks.add_to_list(account_id, status_id, claim.id)
        await resp.round_trip(self.redis, mark_commands(account_id, status_id, Mark.BOOKMARK, True))
        return await self.get(requested, reader)

    async def unbookmark(self, *, account_id: int, status_id: int) -> bytes:
        """Give a bookmark back (nothing to do if there is none); the status as the account now sees it. The
        claim goes last, so a retry after a crash finds it and repeats the rest."""
        reader = Reader(account_id)
        requested = status_id
        status_id, _ = await self._marked(status_id, reader)
        bookmark_id = await self.bookmarks.claim_of(account_id, status_id)
        if bookmark_id is not None:
            await self.bookmarks.remove_from_list(account_id, bookmark_id)
            await resp.round_trip(self.redis, mark_commands(account_id, status_id, Mark.BOOKMARK, False))
            crash_point("post.unbookmark.unlisted")
            await self.bookmarks.release(account_id, status_id, bookmark_id)
        return await self.get(requested, reader)

    # Pins (kicau/pins.py) ---------------------------------------------------------------------------------

    async def pin(self, *, account_id: int, status_id: int) -> bytes:
        """Pin one of the account's own statuses (Mastodon's rules: not a reblog, not a direct one, at most
        ``MAX_PINS``); the status as it now sees it. Again: the same pin. Every step is repeated by a retry without
        harm, so a retry after a crash finishes what the crash left."""
        reader = Reader(account_id)
        await self.get(status_id, reader)  # 404 for what the account may not see
        row = await self.store.get(status_id)
        if row is None or row.get("deleted_at") is not None:
            raise ApiError(404, "Record not found")
        if row.get("reblog_of_id"):
            raise ApiError(422, "Validation failed: A boost cannot be pinned")
        if int(row["account_id"]) != account_id:
            raise ApiError(422, "Validation failed: Someone else's post cannot be pinned")
        if row.get("visibility") == DIRECT:
            raise ApiError(422, "Validation failed: Posts that are only visible to mentioned users cannot be pinned")
        if await self.pins.claim_of(account_id, status_id) is None:
            await self._room_for_a_pin(account_id)
        claim = await self.pins.claim(account_id, status_id, self.ids.next_id())
        crash_point("post.pin.claimed")
        await self.pins.add_to_list(account_id, status_id, claim.id)
        await resp.round_trip(self.redis, mark_commands(account_id, status_id, Mark.PIN, True))
        return await self.get(status_id, reader)

    async def _room_for_a_pin(self, account_id: int) -> None:
        """422 once the account pins ``MAX_PINS`` live statuses. Claims left on deleted statuses (a delete that
        died before giving its pin back) are given back here instead of counting."""
        pinned = await self.pins.claimed(account_id)
        if len(pinned) < MAX_PINS:
            return
        rows = await asyncio.gather(*(self.store.get(s) for s in pinned))
        gone = [s for s, row in zip(pinned, rows, strict=True) if row is None or row.get("deleted_at") is not None]
        for status_id in gone:
            await self._unpin(account_id, status_id)
        if len(pinned) - len(gone) >= MAX_PINS:
            raise ApiError(422, "Validation failed: You have already pinned the maximum number of posts")

    async def unpin(self, *, account_id: int, status_id: int) -> bytes:
        """Give a pin back (nothing to do if there is none); the status as the account now sees it."""
        reader = Reader(account_id)
        await self.get(status_id, reader)
        await self._unpin(account_id, status_id)
        return await self.get(status_id, reader)

    async def _unpin(self, account_id: int, status_id: int) -> None:
        """The list entry and the mark, then the claim (last, so a retry after a crash finds it and repeats)."""
        pin_id = await self.pins.claim_of(account_id, status_id)
        if pin_id is not None:
            await self.pins.remove_from_list(account_id, pin_id)
            await resp.round_trip(self.redis, mark_commands(account_id, status_id, Mark.PIN, False))
            crash_point("post.unpin.unlisted")
            await self.pins.release(account_id, status_id, pin_id)

    async def _unpin_quietly(self, account_id: int, status_id: int) -> None:
        """After a status is deleted: its pin given back (best effort: reads leave out a deleted status, and the
        next pin that finds the limit reached gives back what is left)."""
        try:
            async with asyncio.timeout(AFTER_COMMIT_SECONDS):
                await self._unpin(account_id, status_id)
        except Exception:
            log.warning("could not give back the pin of deleted status %s", status_id, exc_info=True)

    # Polls (kicau/polls.py) --------------------------------------------------------------------------------

    async def _poll_of(self, status_id: int, reader: Reader) -> tuple[polls.Definition, int, bytes]:
        """The poll of a status the reader may see, its author, and the status as the reader sees it (404: no such
        status for it, or one without a poll)."""
        shown = await self.get(status_id, reader)
        row = await self.store.get(status_id)
        poll = polls.read(row.get("poll")) if row is not None and row.get("deleted_at") is None else None
        if row is None or poll is None:
            raise ApiError(404, "Record not found")
        return poll, int(row["account_id"]), shown

    async def poll(self, *, status_id: int, reader: Reader) -> bytes:
        """Mastodon's Poll of a status the reader may see, as it sees it now (a poll's id is its status's)."""
        poll, author, _ = await self._poll_of(status_id, reader)
        return await self._poll_entity(status_id, poll, author, reader)

    async def _poll_entity(self, status_id: int, poll: polls.Definition, author: int, reader: Reader) -> bytes:
        tallies = await self.poll_votes.tallies({status_id: len(poll.options)}, reader.account_id)
        return polls.encoded(polls.entity(status_id, poll, tallies[status_id], reader=reader.account_id,
                                          author=author))

    async def publish_poll_end(self, ending: Ending) -> bool:
        """A poll ended: ``poll.ended`` with its status as anyone sees it now (its author's read of it, with the
        poll as no one in particular sees it), for its author's and voters' notifications. False: the status is
        gone (deleted, or its row never written), and no one is told."""
        try:
            poll, _, status = await self._poll_of(ending.status_id, Reader(ending.author_id))
        except ApiError as error:
            if error.status_code == 404:
                return False
            raise
        tallies = await self.poll_votes.tallies({ending.status_id: len(poll.options)}, None)
        shown = polls.with_poll(status, polls.encoded(polls.entity(ending.status_id, poll, tallies[ending.status_id])))
        await self._publish(PollEnded(status_id=ending.status_id, account_id=ending.author_id,
                                      notification_id=notification_id(ending.status_id, ending.ends_at),
                                      status_json=shown.decode()))
        return True

    async def vote(self, *, account_id: int, status_id: int, choices: Any) -> bytes:
        """The account's vote in the poll of a status it may see, once (Mastodon's 422s: its own poll, one that
        ended, an option that is not there, two for a poll of one choice, a second vote); the poll as it now sees
        it. A retry after a crash between the vote's record and its count counts it (kicau/polls.py)."""
        reader = Reader(account_id)
        poll, author, _ = await self._poll_of(status_id, reader)
        if author == account_id:
            raise ApiError(422, "Validation failed: You cannot vote in your own polls")
        if poll.expired():
            raise ApiError(422, "Validation failed: The poll has already ended")
        picked = polls.choices_of(choices, poll)
        if not await self.poll_votes.vote(status_id, account_id, picked):
            raise ApiError(422, "Validation failed: You have already voted on this poll")
        return await self._poll_entity(status_id, poll, author, reader)

    # Muted threads (kicau/thread_mutes.py) -----------------------------------------------------------------

    async def mute_thread(self, *, account_id: int, status_id: int) -> bytes:
        """Mute the thread of a status the account may see; the status as it now sees it. Again: the same mute.
        Every step is repeated by a retry without harm, so a retry after a crash finishes what the crash left."""
        reader = Reader(account_id)
        root = await self._thread_of(status_id, reader)
        await self.thread_mutes.claim(account_id, root, self.ids.next_id())
        crash_point("post.thread_mute.claimed")
        await resp.round_trip(self.redis, mark_commands(account_id, root, Mark.MUTE, True))
        return await self.get(status_id, reader)

    async def unmute_thread(self, *, account_id: int, status_id: int) -> bytes:
        """Unmute the thread of a status the account may see (nothing to do if it is not muted); the status as it
        now sees it. The claim goes last, so a retry after a crash finds it and repeats the rest."""
        reader = Reader(account_id)
        root = await self._thread_of(status_id, reader)
        mute_id = await self.thread_mutes.claim_of(account_id, root)
        if mute_id is not None:
            await resp.round_trip(self.redis, mark_commands(account_id, root, Mark.MUTE, False))
            crash_point("post.thread_unmute.unmarked")
            await self.thread_mutes.release(account_id, root, mute_id)
        return await self.get(status_id, reader)

    async def _thread_of(self, status_id: int, reader: Reader) -> int:
        """The root of the thread a mute of ``status_id`` is about, if the reader may see the status: its own, or
        for a reblog that of the status it reblogs (what a client shows)."""
        shown, _ = await self._marked(status_id, reader)
        row = await self.store.get(shown)
        if row is None or row.get("deleted_at") is not None:
            raise ApiError(404, "Record not found")
        return thread_root(row)

    async def delete(self, *, account_id: int, status_id: int) -> bytes:
        row = await self.store.get(status_id)
        # Someone else's status answers exactly like a missing one: 404, nothing changes, nothing leaks.
        if row is None or row.get("deleted_at") is not None or row["account_id"] != account_id:
            raise ApiError(404, "Record not found")
        rendered = await self.get(status_id, Reader(account_id))
        if row.get("reblog_of_id"):  # deleting a reblog gives it back, as Mastodon does
            await self.unreblog(account_id=account_id, status_id=int(row["reblog_of_id"]))
            return _with_source(rendered, row)
        await self.store.mark_deleted(row, datetime.now(UTC))
        try:
            await self._publish(StatusDeleted(status_id=status_id, account_id=account_id,
                                              visibility=row.get("visibility") or PUBLIC,
                                              mentions=[m.account_id for m in stored(row.get("mentions"))],
                                              tags=hashtags.names(row.get("text") or ""),
                                              conversation_id=int(row.get("conversation_id") or 0)))
        except BaseException:
            await self.store.mark_deleted(row, None)
            # Back in its author's list: a profile read in between kept the list without it.
            await self._forget_cached(account_id)
            raise
        STATUSES_DELETED.inc()
        await self._after_change(status_id, account_id, None, moved=_counted_in(row, -1))
        await self._take_back_all(status_id, account_id)
        await self._unpin_quietly(account_id, status_id)
        # Free again, as Mastodon's delete leaves them for "delete and redraft" (services/post/media.py), with
        # those an edit removed (held for the history, which goes with the status).
        await self.attachments.release(await self._media_ever_shown(row), status_id)
        return _with_source(rendered, row)

    async def _media_ever_shown(self, row: dict[str, Any]) -> list[int]:
        shown = dict.fromkeys(media.ids_of(row.get("media")))
        if row.get("edited_at") is not None:
            try:
                for version in await self.edits.versions(row["id"]):
                    shown.update(dict.fromkeys(media.ids_of(version.get("media"))))
            except Exception:  # the delete stands; those stay held by it
                log.warning("could not read the versions of deleted status %s", row["id"], exc_info=True)
        return list(shown)

    # Edits (services/post/edits.py) ----------------------------------------------------------------------

    async def _own_status(self, account_id: int, status_id: int) -> dict[str, Any]:
        """The account's own live status's row; anyone else's answers exactly like a missing one."""
        row = await self.store.get(status_id)
        if row is None or row.get("deleted_at") is not None or row["account_id"] != account_id:
            raise ApiError(404, "Record not found")
        return row

    async def edit(self, *, account_id: int, status_id: int, change: StatusChange) -> bytes:
        """Rewrite the account's own status, one edit of it at a time (``EDIT_WAIT_SECONDS``); the status as it
        now reads."""
        lock = self.redis.lock(keys.status_edit_lock(status_id), timeout=EDIT_LEASE_SECONDS,
                               blocking_timeout=EDIT_WAIT_SECONDS)
        if not await lock.acquire():
            raise ApiError(409, "Another edit of this status is in progress; try again")
        keeper = asyncio.create_task(_keep_lease(lock))
        try:
            return await self._edit(account_id=account_id, status_id=status_id, change=change)
        finally:
            keeper.cancel()
            with contextlib.suppress(LockError, asyncio.CancelledError):  # lapsed meanwhile: nothing to release
                await lock.release()

    async def _edit(self, *, account_id: int, status_id: int, change: StatusChange) -> bytes:
        """Rewrite the account's own status; the status as it now reads.

        Cassandra first (the row and its versions together), then the cached value dropped, then the event: a
        failure before the event is out takes the edit back, so an answered edit is durable, read everywhere and
        streamed, and a failed one left nothing. A crash after the write and before the event leaves the edit in
        Cassandra, unstreamed and perhaps cached as before: the client's retry finds nothing left to change and
        sends both again (edits are safe to repeat)."""
        row = await self._own_status(account_id, status_id)
        if row.get("reblog_of_id"):
            raise ApiError(422, "Validation failed: A reblog cannot be edited")
        if change.quoted_status_id is not None and change.quoted_status_id != row.get("quote_of_id"):
            raise ApiError(422, "Validation failed: a quote cannot be added or changed by an edit on this server")
        if change.poll is not None:
            kept = polls.read(row.get("poll"))
            named = change.poll if isinstance(change.poll, list) else None
            if kept is None or named is None or [str(o).strip() for o in named] != kept.options:
                raise ApiError(422, "Validation failed: a poll cannot be added or changed by an edit on this server")
        kept_media = tuple(media.ids_of(row.get("media")))
        media_ids = kept_media if change.media_ids is None else change.media_ids
        change = change.applied_to(row)
        validate(NewStatus(text=change.text, visibility=row.get("visibility") or PUBLIC, sensitive=change.sensitive,
                           spoiler_text=change.spoiler_text, language=change.language, media_ids=media_ids,
                           poll=polls.read(row.get("poll")) if media_ids != kept_media else None),
                 self.settings.max_characters)
        card = await self.accounts.card(account_id)
        if card is None:
            raise ApiError(401, "This method requires an authenticated user")
        # Attachments added are claimed for the status before it is rewritten (given back if the edit fails); those
        # it keeps are its own already, as it shows them; those removed stay claimed by it: its history still
        # shows them (as Mastodon keeps them).
        if any(a.id not in media_ids for a in change.media_attributes):
            raise ApiError(422, "Validation failed: media_attributes must describe attachments the status is to have")
        added = [i for i in media_ids if i not in kept_media]
        media_column = row.get("media")
        described: list[Described] = []
        if media_ids != kept_media or change.media_attributes:
            shown = {m.id: m for m in media.read(row.get("media"))}
            if added:
                claimed = await self.attachments.attach(account_id, tuple(added), status_id,
                                                        self._holder_of(account_id))
                shown.update((m.id, m) for m in claimed)
            for attributes in change.media_attributes:
                was = shown[attributes.id]
                shown[attributes.id] = attributes.applied_to(was)
                if shown[attributes.id] != was:
                    described.append((shown[attributes.id], was))
            media_column = media.stored(shown[i] for i in media_ids)
        return await self._edit_written(row, change, media_column, added, described, card)

    async def _edit_written(self, row: dict[str, Any], change: StatusChange, media_column: str | None,
                            added: list[int], described: list[Described], card: bytes) -> bytes:
        """The rest of ``_edit``: the row and its versions written, the event published (or both taken back).
        ``added``: the attachments claimed for this edit, given back if it ends with the status as it was;
        ``described``: those whose description or focal point it changes (their rows follow the edit's)."""
        progress = _EditProgress()
        try:
            return await self._rewrite(row, change, media_column, described, card, progress)
        except BaseException:
            if not progress.written:  # the status lists none of them: they are free again
                await self.attachments.release(added, row["id"])
            raise

    async def _rewrite(self, row: dict[str, Any], change: StatusChange, media_column: str | None,
                       described: list[Described], card: bytes, progress: _EditProgress) -> bytes:
        status_id, account_id = row["id"], row["account_id"]
        changed = changes_anything(row, change, media_column)
        policy = _new_quote_policy(row, change.quote_policy)
        if not changed:
            # Who may quote it, alone (kicau/quotes.py): no version, no event. Everything was checked before.
            if policy is not None:
                await self._apply_quote_policy(row, policy)
            if row.get("edited_at") is None:
                return await self.get(status_id, Reader(account_id))  # nothing to keep, nothing to stream
        version_id = self.ids.next_id()
        linking = _Relinking()
        if changed:
            mentions = await self.mentions.resolve(change.text)
            edited_at = version_time(status_id, version_id, row["created_at"])
            after = {**row, "text": change.text, "sensitive": change.sensitive, "spoiler_text": change.spoiler_text,
                     "language": change.language, "mentions": mentions, "edited_at": edited_at,
                     "media": media_column,
                     "content": quotes.kept_inline(row.get("content") or "", change.text,
                                                   text_to_html(change.text, mentions, self.settings.public_url))}
            linking = self._relinking(row, change.text)
            if linking.moved:
                after["card"] = None  # another page's (or none), fetched once the edit is out
            before_text = row.get("text") or ""
            mentioned_before = {m.account_id for m in stored(row.get("mentions"))}
            alongside, restoring = linking.edit, linking.undo
            if policy is not None:  # in the edit's batch, and its undo's
                after["quote_policy"] = policy
                alongside += (self.store.quote_policy_setting(status_id, policy),)
                restoring += (self.store.quote_policy_setting(status_id, row.get("quote_policy")),)
                linking = replace(linking, undo=restoring)
            await self.edits.write(row, after, version_id, edited_at, described, alongside)
            progress.written = True
        else:
            # A retry of an edit already written: the event again, from the version before it.
            after = row
            versions = await self.edits.versions(status_id)
            before_text = versions[-2]["text"] if len(versions) > 1 else row.get("text") or ""
            # The version before keeps its text, not its mentions: resolved again, as the edit resolved them.
            mentioned_before = {m.account_id for m in await self.mentions.resolve(before_text)}
        username = str(msgspec.json.decode(card)["username"])
        edited = self._edited_event(row, after, version_id, username, before_text, mentioned_before)
        try:
            # Marked edited before the value is dropped: a creation event applied later caches nothing.
            await resp.round_trip(self.redis, [edited_command(status_id, version_id),
                                               recount_command(status_id)])
            crash_point("post.edit.written")
            await self._publish(edited)
        except BaseException:
            if changed:
                progress.written = not await self._undo_edit(
                    row, self._edited_event(after, row, self.ids.next_id(), username, after["text"], None),
                    version_id, described, linking.undo)
            raise
        if changed:
            STATUSES_EDITED.inc()
        if linking.planned is not None:
            self.previews_planned()
        crash_point("post.edit.published")
        return await self.get(status_id, Reader(account_id))

    def _relinking(self, row: dict[str, Any], text: str) -> _Relinking:
        """What an edit of ``row`` to ``text`` does to its link preview, written with the edit (and its undo): a
        new address is planned (the row's card cleared), and a status that showed the old address's card leaves
        that page's timeline (a public one comes back to it if the edit is taken back)."""
        address = self._preview_address(text)
        old_address = self._preview_address(row.get("text") or "")
        if address == old_address:
            return _Relinking()
        edit: list[Alongside] = []
        undo: list[Alongside] = []
        if old_address is not None and row.get("card"):
            edit.append(self.linked.unlisting(old_address, row["id"]))
            if row.get("visibility") == PUBLIC:
                undo.append(self.linked.listing(old_address, row["id"]))
        if address is not None:
            edit.append(self.link_previews.planning(row["id"], address))
        return _Relinking(moved=True, planned=address, edit=tuple(edit), undo=tuple(undo))

    # Quote posts (kicau/quotes.py) ---------------------------------------------------------------------------

    async def set_quote_policy(self, *, account_id: int, status_id: int, policy: str) -> bytes:
        """``PUT /api/v1/statuses/:id/interaction_policy``: who may quote the account's own status from now on
        (quotes already made stand, as Mastodon's); the status as it now reads."""
        row = await self._own_status(account_id, status_id)
        if row.get("reblog_of_id"):
            raise ApiError(422, "Validation failed: A reblog cannot be edited")
        await self._apply_quote_policy(row, policy)
        return await self.get(status_id, Reader(account_id))

    async def _apply_quote_policy(self, row: dict[str, Any], policy: str) -> None:
        """Keep ``policy`` for the status (a followers-only or direct one is quoted by no one whatever it says), drop
        its cached value behind a new edited mark (every read renders the new ``quote_approval``), and stream it."""
        if _new_quote_policy(row, policy) is None:
            return
        await self.store.set_quote_policy(row["id"], policy)
        await self._restate({**row, "quote_policy": policy})

    async def _restate(self, row: dict[str, Any], *, recounted: Sequence[int] = ()) -> None:
        """After a change to what ``row`` (as Cassandra now has it) shows that is not an edit of its text (its
        quote revoked, who may quote it): its cached value dropped behind a new edited mark (and the counts of
        ``recounted`` read again), then a ``status.update`` to every stream its edits reach, which tells no one
        (``StatusEdited.notifies``), as Mastodon distributes such an update. Repeated by a retry, which a crash
        between the write and this needs: each is one more update of the same status."""
        version_id = self.ids.next_id()
        await resp.round_trip(self.redis, [edited_command(row["id"], version_id), recount_command(row["id"]),
                                           *(recount_command(i) for i in recounted)])
        card = await self.accounts.card(int(row["account_id"]))
        if card is None:  # its author is gone: so are its streams
            return
        text = row.get("text") or ""
        await self._publish(StatusEdited(
            status_id=row["id"], account_id=row["account_id"], version_id=version_id,
            status_json=status_fragment(row, username=str(msgspec.json.decode(card)["username"]),
                                        public_url=self.settings.public_url).decode(),
            visibility=row.get("visibility") or PUBLIC,
            mentions=sorted({m.account_id for m in stored(row.get("mentions"))}),
            tags=hashtags.names(text), tags_before=hashtags.names(text), notifies=False))

    async def revoke_quote(self, *, account_id: int, status_id: int, quote_id: int) -> bytes:
        """``POST /api/v1/statuses/:id/quotes/:quoting_status_id/revoke``: the author of ``status_id`` takes back
        the quote of it in ``quote_id``, which then shows the quote ``revoked``; the quoting status as the author
        sees it. 404 for a status it may not see or a quote that is not there; 403 for another's status."""
        reader = Reader(account_id)
        quoted = await self.store.get(status_id)
        if quoted is None or quoted.get("deleted_at") is not None or \
                await self.statuses.render_one(status_id, reader, marks=False, quoted=False) is None:
            raise ApiError(404, "Record not found")
        if quoted["account_id"] != account_id:
            raise ApiError(403, "This action is not allowed")
        quoting = await self.store.get(quote_id)
        if quoting is None or quoting.get("deleted_at") is not None or quoting.get("quote_of_id") != status_id \
                or await self.statuses.render_one(quote_id, reader, marks=False, quoted=False) is None:
            raise ApiError(404, "Record not found")
        if quotes.stands(quoting):
            await self.store.revoke_quote(quoting)
            crash_point("post.quote.revoked")
        # Its fragment changes (the quote revoked) and the quoted status counts one quote less: both read again
        # from Cassandra, where both already are, and the quote streamed as it now reads.
        await self._restate({**quoting, "quote_state": quotes.REVOKED}, recounted=(status_id,))
        return await self.get(quote_id, reader)

    def _edited_event(self, before: dict[str, Any], after: dict[str, Any], version_id: int, username: str,
                      before_text: str, mentioned_before: set[int] | None) -> StatusEdited:
        """The event of a status going from ``before`` to ``after`` (``before_text``: the text whose hashtags it
        leaves; ``mentioned_before``: whom the version before mentioned, so that those the edit adds are told, or
        None for an event that must tell no one, as the one taking an edit back)."""
        mentioned_now = [m.account_id for m in stored(after.get("mentions"))]
        added = [] if mentioned_before is None else [a for a in dict.fromkeys(mentioned_now)
                                                       if a not in mentioned_before]
        return StatusEdited(
            status_id=after["id"], account_id=after["account_id"], version_id=version_id,
            status_json=status_fragment(after, username=username, public_url=self.settings.public_url).decode(),
            visibility=after.get("visibility") or PUBLIC,
            mentions=sorted({m.account_id for m in (*stored(before.get("mentions")), *stored(after.get("mentions")))}),
            tags=hashtags.names(after.get("text") or ""), tags_before=hashtags.names(before_text),
            mentions_added=added, notifies=mentioned_before is not None,
            quoted_update_id=self.ids.next_id() if mentioned_before is not None else 0)

    async def _undo_edit(self, row: dict[str, Any], restored: StatusEdited, version_id: int,
                         described: list[Described], alongside: Sequence[Alongside] = ()) -> bool:
        """Take back an edit whose event was not acknowledged: the row and versions as they were (with the writes
        ``alongside``), the cached value dropped, and ``restored`` (the edit back to ``row``) handed to the
        producer. An event that timed out may still reach the broker (the producer retries it): the restoring one
        follows it on the author's partition, so the streams and hashtag timelines end where the status is.
        Whether Cassandra's row is as it was again."""
        taken_back = False
        try:
            await self.edits.undo(row, version_id, described, alongside)
            taken_back = True
            await resp.round_trip(self.redis, [recount_command(row["id"])])
        except Exception:
            # Both engines failing at once: the edit stays written, unstreamed; a retry of it streams it.
            log.exception("could not take back the edit of status %s", row["id"])
            return taken_back
        try:
            async with asyncio.timeout(AFTER_COMMIT_SECONDS):
                await enqueue(self.producer, self.settings.kafka_statuses_topic, restored)
        except Exception:
            log.warning("could not hand over the event restoring status %s", row["id"], exc_info=True)
        return True

    async def history(self, status_id: int, reader: Reader) -> bytes:
        """Every version of a status the reader may see, oldest first, each with its author's card."""
        await self.get(status_id, reader)
        row = await self.store.get(status_id)
        card = None if row is None else await self.accounts.card(int(row["account_id"]))
        if row is None or card is None:
            raise ApiError(404, "Record not found")
        versions = await self.edits.versions(status_id) if row.get("edited_at") is not None else []
        if not versions:
            versions = [{**row, "version_id": status_id}]
        made, public_url = row["created_at"], self.settings.public_url
        return compose_status_list([
            compose_status(status_edit_fragment(v, version_time(status_id, v["version_id"], made),
                                                media_column=version_media(v, row), public_url=public_url), card)
            for v in versions])

    async def source(self, status_id: int, reader: Reader) -> bytes:
        """The text a status was written in, for an edit form."""
        await self.get(status_id, reader)
        row = await self.store.get(status_id)
        if row is None:
            raise ApiError(404, "Record not found")
        return msgspec.json.encode({"id": str(status_id), "text": row.get("text") or "",
                                    "spoiler_text": row.get("spoiler_text") or ""})

    # Scheduled statuses (services/post/scheduled.py) ---------------------------------------------------------

    async def schedule(self, *, account_id: int, draft: NewStatus, scheduled_at: str,
                       idempotency_key: str | None = None, poll_seconds: int | None = None) -> bytes:
        """Keep a status to be posted at ``scheduled_at``: checked now as a new status is (and its time as
        Mastodon checks it), answered as a ScheduledStatus. A repeated Idempotency-Key answers the one it
        scheduled (the key's claim names the scheduled status's id, as a post's names its status's). Its poll
        (``draft.poll``, checked) lasts ``poll_seconds`` from when it is posted."""
        validate(draft, self.settings.max_characters)
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ApiError(422, "Validation failed: Idempotency-Key must be 1 to 128 characters")
        moment = parse_time(scheduled_at)
        if draft.in_reply_to_id is not None and await self.statuses.render_one(
                draft.in_reply_to_id, Reader(account_id)) is None:
            raise ApiError(422, "The status you are trying to reply to does not appear to exist.")
        if draft.quoted_status_id is not None:  # checked again when it is posted: the quote may be refused then
            quoting = await self._quoting(account_id, draft.quoted_status_id)
            draft = replace(draft, visibility=quotes.visibility_of_quote(quoting.visibility, draft.visibility))
            if draft.visibility == DIRECT:
                _check_direct_quote(quoting, draft.visibility, await self.mentions.resolve(draft.text), account_id)
        check_time(moment, datetime.now(UTC), await self.scheduled.times(account_id), self._min_lead)
        scheduled_id = self.ids.next_id()
        if idempotency_key:
            existing = await self.store.claim_idempotency_key(account_id, idempotency_key, scheduled_id)
            if existing is not None:
                found = await self.scheduled.one(account_id, existing)
                if found is None:  # published, dropped, or a post's key
                    raise ApiError(422, "Validation failed: this Idempotency-Key was already used")
                return msgspec.json.encode(found[1])
        attached: list[media.StoredMedia] = []
        try:
            if draft.media_ids:  # held by the scheduled status until it is posted
                attached = await self.attachments.attach(account_id, draft.media_ids, scheduled_id,
                                                         self._holder_of(account_id))
            scheduled = ScheduledStatus(id=str(scheduled_id), scheduled_at=iso(moment), params=Params(
                text=draft.text, visibility=draft.visibility, sensitive=draft.sensitive,
                spoiler_text=draft.spoiler_text or None, language=draft.language,
                in_reply_to_id=str(draft.in_reply_to_id) if draft.in_reply_to_id is not None else None,
                poll=None if draft.poll is None or poll_seconds is None else PollParams(
                    draft.poll.options, poll_seconds, draft.poll.multiple, draft.poll.hide_totals),
                media_ids=[str(m.id) for m in attached] or None,
                quoted_status_id=None if draft.quoted_status_id is None else str(draft.quoted_status_id),
                quote_approval_policy=draft.quote_policy),
                media_attachments=[media.entity(m, self.settings.public_url) for m in attached])
            await self.scheduled.keep(account_id, scheduled, moment)
        except BaseException:
            await self.attachments.release([m.id for m in attached], scheduled_id)
            if idempotency_key:
                await self._release_quietly(account_id, idempotency_key, scheduled_id)
            raise
        return msgspec.json.encode(scheduled)

    @property
    def _min_lead(self) -> timedelta:
        return timedelta(seconds=self.own.scheduled_min_lead_seconds)

    async def _own_scheduled(self, account_id: int, scheduled_id: int) -> tuple[datetime, ScheduledStatus]:
        found = await self.scheduled.one(account_id, scheduled_id)
        if found is None:
            raise ApiError(404, "Record not found")
        return found

    async def scheduled_status(self, *, account_id: int, scheduled_id: int) -> bytes:
        return msgspec.json.encode((await self._own_scheduled(account_id, scheduled_id))[1])

    async def scheduled_page(self, *, account_id: int, max_id: int | None, since_id: int | None,
                             min_id: int | None, limit: int) -> tuple[bytes, int | None, int | None]:
        """The account's scheduled statuses, most recently scheduled first, and the page's cursors."""
        found = await self.scheduled.page(account_id, max_id=max_id, since_id=since_id, min_id=min_id, limit=limit)
        body = b"[" + b",".join(entity.encode() for _, entity in found) + b"]"
        return body, (found[-1][0] if found else None), (found[0][0] if found else None)

    async def reschedule(self, *, account_id: int, scheduled_id: int, scheduled_at: str) -> bytes:
        """Move a scheduled status to another time (checked as a new one's)."""
        before, scheduled = await self._own_scheduled(account_id, scheduled_id)
        moment = parse_time(scheduled_at)
        waiting = await self.scheduled.times(account_id)
        if before in waiting:  # the one being moved (read apart from it: a drop may have come in between)
            waiting.remove(before)
        check_time(moment, datetime.now(UTC), waiting, self._min_lead)
        moved = msgspec.structs.replace(scheduled, scheduled_at=iso(moment))
        await self.scheduled.keep(account_id, moved, moment, before=before)
        return msgspec.json.encode(moved)

    async def unschedule(self, *, account_id: int, scheduled_id: int) -> None:
        before, scheduled = await self._own_scheduled(account_id, scheduled_id)
        await self.scheduled.drop(account_id, scheduled_id, before)
        # Free again once nothing will post them (a failure is logged: they stay held by a status that is gone,
        # and a post naming them takes them over once that is 30 s old, as from a status never written).
        await self.attachments.release([int(i) for i in scheduled.params.media_ids or ()], scheduled_id)

    async def publish_scheduled(self, account_id: int, scheduled: ScheduledStatus) -> bytes:
        """Post a scheduled status as its author, now, under the key that makes it once (``scheduled_runner``). An
        author whose login the operator disabled posts nothing: the 403 drops it, as Mastodon's worker does."""
        if (await self.standing.of(account_id)).login_refused:
            raise ApiError(403, tokens.DISABLED_LOGIN)
        params = scheduled.params
        poll = params.poll
        draft = NewStatus(text=params.text, visibility=params.visibility, sensitive=params.sensitive,
                          spoiler_text=params.spoiler_text or "", language=params.language,
                          in_reply_to_id=int(params.in_reply_to_id) if params.in_reply_to_id else None,
                          poll=None if poll is None else polls.definition(poll.options, poll.expires_in,
                                                                          poll.multiple, poll.hide_totals),
                          media_ids=tuple(int(i) for i in params.media_ids or ()),
                          quoted_status_id=int(params.quoted_status_id) if params.quoted_status_id else None,
                          quote_policy=params.quote_approval_policy)
        return await self.create(account_id=account_id, draft=draft,
                                 idempotency_key=idempotency_key(int(scheduled.id)), media_from=int(scheduled.id))
