"""Link previews: the card a status shows for the first web address in its text that is not on this server
(kicau/links.py), made from the page's head (kicau/link_previews.py), as Mastodon's.

* **Planning.** A status with such an address is planned in Cassandra's ``link_previews_due`` (the hour it was
  posted, migration 0045) after its row is written and before it is published, as a poll's end is
  (services/post/poll_endings.py): a failed plan fails the post, which is rolled back, and a post service that
  dies once the status is published leaves the plan for another (or itself, restarted). An edit that changes the
  address clears the card, plans the new address and takes the status off the old page's timeline in the edit's
  own logged batch (services/post/edits.py): an edit is out with its plan or not at all, and one taken back leaves
  a plan the runner finds stale.
* **Fetching.** ``link_preview_runner`` (services/post/due_hours.py, woken as a plan is made) fetches each page,
  a few at once: ``GET`` with no cookies, at most three redirects (each checked again), ``link_preview_timeout_seconds``
  in all, only ``text/html``, no more than ``link_preview_max_bytes`` read. Only public hosts (kicau/outbound.py):
  a user could otherwise make the server request its own network. The page's picture is fetched the same way (an
  image type, whole, at most ``link_preview_picture_max_bytes``) and kept as this server's own file
  (services/post/media.py, as an upload is, held by no status): the card names the copy, so readers' clients fetch
  nothing from the page's host. One copy per picture address (``PagePictures``, for 30 days): pages that share a
  picture, and a page whose card is fetched again, name the copy already kept rather than keep another. A card, or
  that the page makes none, is kept in Redis by address (``kicau.keys.link_card``: a day, an hour for none), so a
  link many statuses share is fetched once.
* **Showing.** The card is written into the status's row only while the row still shows that address (an edit
  takes the status's edit lock; so does this, after the fetch), then the status's cached value is dropped behind a
  new edited mark (kicau/status_cards.py): every read renders it from the row with its card, and a creation event
  applied late caches nothing older. Streams are not told (Mastodon's are not either): the next read shows it.
  A page that cannot be fetched, or makes no card, leaves the status without one; the plan is removed either way.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import aiohttp
import msgspec
from cassandra.cluster import Session
from cassandra.query import PreparedStatement
from redis.asyncio import Redis

from kicau import keys, link_previews, media
from kicau.clients import execute, write_preparer
from kicau.metrics import LINK_PREVIEW_FETCH
from kicau.outbound import PublicResolver, literal_host_problem
from services.post.due_hours import DueRunner, HourProgress, hour_of

log = logging.getLogger(__name__)

MAX_REDIRECTS: Final = 3
CARD_SECONDS: Final = 86_400
NO_CARD_SECONDS: Final = 3_600
_NO_CARD: Final = b"-"
_HTML_TYPES: Final = ("text/html", "application/xhtml+xml")
_IMAGE_TYPES: Final = tuple(media.IMAGE_TYPES)
# A page's picture as this server's own file (services/post/media.py): its address, width, height and blurhash.
Kept = tuple[str, int, int, str]
# Keeps a picture under the given id; None for what is no image.
KeepPicture = Callable[[int, bytes], Awaitable[Kept | None]]
# How long a kept picture answers for its address: after that the next card that names it fetches it again (a
# page's picture may change), and the copy before stays for the cards that name it.
PICTURE_SECONDS: Final = 30 * 86_400

@dataclass(frozen=True, slots=True)
class DuePreview:
    hour: int
    due_at: datetime
    status_id: int
    url: str


class LinkPreviewStore:
    """``link_previews_due`` and its progress row, and the card in a status's row."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._plan = write("INSERT INTO link_previews_due (hour, due_at, status_id, url) VALUES (?, ?, ?, ?)")
        self._unplan = write("DELETE FROM link_previews_due WHERE hour = ? AND due_at = ? AND status_id = ?")
        self._due = session.prepare("SELECT due_at, status_id, url FROM link_previews_due WHERE hour = ?"
                                    " AND due_at <= ?")
        self._show = write("UPDATE statuses SET card = ? WHERE id = ?")
        self.progress = HourProgress(session, write_consistency, "link_previews_due_progress")

    async def plan(self, status_id: int, url: str) -> None:
        await execute(self._session, *self.planning(status_id, url))

    def planning(self, status_id: int, url: str) -> tuple[PreparedStatement, tuple[Any, ...]]:
        """``plan`` as a statement, for another store's batch (an edit's)."""
        now = datetime.now(UTC)
        return self._plan, (hour_of(now), now, status_id, url)

    async def unplan(self, due: DuePreview) -> None:
        await execute(self._session, self._unplan, (due.hour, due.due_at, due.status_id))

    async def due(self, hour: int, now: datetime) -> list[DuePreview]:
        rows = await execute(self._session, self._due, (hour, now))
        return [DuePreview(hour, row["due_at"].replace(tzinfo=UTC), int(row["status_id"]), row["url"])
                for row in rows]

    async def show(self, status_id: int, card: str) -> None:
        await execute(self._session, self._show, (card, status_id))


class PagePictures:
    """Pages' pictures, one copy per picture address (Cassandra ``page_pictures``, migration 0049): a card's picture
    already kept (another page's, or this page's before its card expired) is named again, not fetched and kept
    again. Two fetches that keep the same picture at once: the first written stands, the other's copy is removed."""

    def __init__(self, session: Session, write_consistency: int, *, keep: KeepPicture,
                 drop: Callable[[int], Awaitable[None]], next_id: Callable[[], int]) -> None:
        self._session = session
        self._keep = keep
        self._drop = drop
        self._next_id = next_id
        write = write_preparer(session, write_consistency)
        self._read = session.prepare("SELECT address, width, height, blurhash FROM page_pictures WHERE url = ?")
        self._claim = write("INSERT INTO page_pictures (url, media_id, address, width, height, blurhash)"
                            f" VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL {PICTURE_SECONDS}")

    async def kept(self, url: str) -> Kept | None:
        rows = await execute(self._session, self._read, (url,))
        if not rows:
            return None
        row = rows[0]
        return str(row["address"]), int(row["width"]), int(row["height"]), str(row["blurhash"])

    async def keep(self, url: str, data: bytes) -> Kept | None:
        media_id = self._next_id()
        kept = await self._keep(media_id, data)
        if kept is None:
            return None
        rows = await execute(self._session, self._claim, (url, media_id, *kept))
        if rows[0]["[applied]"]:
            return kept
        await self._drop(media_id)
        return str(rows[0]["address"]), int(rows[0]["width"]), int(rows[0]["height"]), str(rows[0]["blurhash"])


class PageCards:
    """Pages' cards: fetched (module doc), kept in Redis by address."""

    def __init__(self, redis: Redis, *, timeout: float, max_bytes: int, allow_private: bool,
                 user_agent: str, picture_max_bytes: int = 0) -> None:
        self._redis = redis
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_bytes = max_bytes
        # Pages' pictures are shown once ``keep_pictures`` names how to keep them (none until then).
        self._pictures: PagePictures | None = None
        self._picture_max_bytes = picture_max_bytes
        self._allow_private = allow_private
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop. No cookies kept between pages; names resolved to public
        # addresses only, and connections made to those very addresses (kicau/outbound.py).
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=64, resolver=None if self._allow_private else PublicResolver())
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self._user_agent})
        return self._session

    def keep_pictures(self, pictures: PagePictures) -> None:
        """Show pages' pictures, kept by ``pictures`` (over the service's attachments, made after this)."""
        self._pictures = pictures

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def card(self, url: str) -> str | None:
        """The page's card as JSON, or None when it makes none (or could not be fetched)."""
        key = keys.link_card(url)
        kept = await self._redis.get(key)
        if kept is not None:
            text = kept.decode() if isinstance(kept, bytes) else str(kept)
            return None if text == _NO_CARD.decode() else text
        found = await self._fetched(url)
        encoded = msgspec.json.encode(found).decode() if found is not None else None
        await self._redis.set(key, encoded.encode() if encoded else _NO_CARD,
                              ex=CARD_SECONDS if encoded else NO_CARD_SECONDS)
        return encoded

    async def _fetched(self, url: str) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            page = await self._get(url, _HTML_TYPES, self._max_bytes)
            if page is None:
                return None
            text = page[0].decode(_charset(page[1]), errors="replace")
            card = link_previews.card(url, text)
            picture = link_previews.picture_of(url, text)
            oembed_url = link_previews.oembed_of(url, text)
            if oembed_url is not None:
                document = await self._oembed(oembed_url)
                card = link_previews.with_oembed(card, url, document, oembed_url)
                thumbnail = link_previews.oembed_picture(document, oembed_url)
                if thumbnail is not None:
                    picture = (thumbnail, picture[1] if picture is not None else "")
            if card is not None and picture is not None and self._pictures is not None:
                kept = await self._pictures.kept(picture[0])
                if kept is None:
                    image = await self._get(picture[0], _IMAGE_TYPES, self._picture_max_bytes)
                    kept = await self._pictures.keep(picture[0], image[0]) if image is not None else None
                if kept is not None:
                    card = link_previews.with_picture(card, *kept, description=picture[1])
            return card
        except (aiohttp.ClientError, TimeoutError, OSError, UnicodeError, ValueError) as exc:
            log.info("no preview of %s: %s", urlsplit(url).netloc, exc)
            return None
        finally:
            LINK_PREVIEW_FETCH.observe(time.perf_counter() - started)

    async def _oembed(self, url: str) -> Any:
        """The page's oEmbed document, decoded, or None (not fetched, not JSON, larger than is read)."""
        found = await self._get(url, link_previews.OEMBED_TYPES, link_previews.MAX_OEMBED_BYTES)
        if found is None:
            return None
        try:
            return msgspec.json.decode(found[0])
        except msgspec.DecodeError:
            log.info("no oEmbed document at %s", urlsplit(url).netloc)
            return None

    async def _get(self, url: str, types: tuple[str, ...], max_bytes: int) -> tuple[bytes, str | None] | None:
        """The body (its first ``max_bytes``) and charset of an answer of one of ``types``, following redirects
        each checked as the first address; None for any other answer."""
        async with asyncio.timeout(self._timeout.total):
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                problem = None if self._allow_private else literal_host_problem(current)
                if problem is not None or urlsplit(current).scheme not in ("http", "https"):
                    log.info("not fetched from %s: %s", urlsplit(url).netloc, problem or "not a web address")
                    return None
                async with self._client().get(current, allow_redirects=False) as answer:
                    if answer.status in (301, 302, 303, 307, 308) and answer.headers.get("Location"):
                        current = urljoin(current, answer.headers["Location"])
                        continue
                    if answer.status != 200 or answer.content_type not in types:
                        return None
                    chunks: list[bytes] = []
                    size = 0
                    while size < max_bytes:  # a read answers what has come, up to what is asked
                        chunk = await answer.content.read(max_bytes - size)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        size += len(chunk)
                    if types is _IMAGE_TYPES and not answer.content.at_eof():
                        return None  # a picture cut short is no picture
                    return b"".join(chunks), answer.charset
            return None


def _charset(declared: str | None) -> str:
    try:
        return codecs.lookup(declared or "utf-8").name
    except LookupError:
        return "utf-8"


# Shows one planned preview (the post service: fetch, then write the card if the status still shows the address);
# whether a card was shown.
ShowPreview = Callable[[DuePreview], Awaitable[bool]]


def link_preview_runner(store: LinkPreviewStore, show: ShowPreview, *, poll_seconds: float,
                        concurrency: int) -> DueRunner[DuePreview]:
    """Fetches planned previews as they come (module doc)."""

    async def show_and_forget(due: DuePreview) -> int:
        shown = await show(due)
        await store.unplan(due)
        return int(shown)

    return DueRunner("link previews", store, store.progress, show_and_forget, poll_seconds=poll_seconds,
                     concurrency=concurrency)
