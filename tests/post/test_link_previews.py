"""Link previews against the running stack (services/post/link_previews.py): a status shows the card of the first
web address in its text that is not on this server, made from the page's head, once the post service fetched it
(from a page server of this test's on 127.0.0.1, which the development stack allows); a link many statuses share
is fetched once; an edit that changes the address changes the card; pages that make none (no title, not HTML,
missing, beyond the bytes read) leave the status without one; redirects are followed; reads everywhere show it.
Without the development stack's permission, pages on private addresses are never fetched (kicau/outbound.py)."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from mastodon import Mastodon

from kicau import keys
from kicau.trend_reviews import link_id
from services.post.link_previews import PageCards
from stack.services import service_env
from tests.conftest import User, eventually
from tests.graph.test_admin import admin_app, staff  # noqa: F401
from tests.timeline.test_notifications import follow

ARTICLE = """<!doctype html><html lang="id-ID"><head><meta charset="utf-8">
<title>Ignored: Open Graph's wins</title>
<meta property="og:title" content="Burung &amp; kicau   di pagi hari">
<meta property="og:description" content="Why birds sing at dawn.">
<meta property="og:site_name" content="Kabar Burung">
<meta name="author" content="Ana Hartono">
</head><body><title>not the head's</title><p>text</p></body></html>"""
PLAIN = """<html><head><title>A plain page</title><meta name="description" content="Just a title and this.">
</head><body></body></html>"""
NO_TITLE = "<html><head><meta name='description' content='no title'></head><body>x</body></html>"
PICTURED = """<html><head><title>With a picture</title>
<meta property="og:image" content="/bird.png"><meta property="og:image:alt" content="A small green bird">
</head></html>"""
VIDEO = """<html><head><title>Watch: dawn chorus</title><meta property="og:image" content="/bird.png">
<link rel="alternate" type="application/json+oembed" href="/oembed.json?for=video"></head></html>"""
OEMBED = json.dumps({
    "type": "video", "version": "1.0", "title": "Dawn chorus (full)", "author_name": "Ana",
    "provider_name": "Burung TV", "width": 560, "height": 315, "thumbnail_url": "/thumb.png",
    "html": '<iframe src="https://burung.example/embed/7" width="560" height="315" allowfullscreen onload="x()">'
            "</iframe><script>x()</script>"})
BROKEN_PICTURE = """<html><head><title>Its picture is gone</title>
<meta name="twitter:image" content="/gone.png"></head></html>"""


def png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 160, 60)).save(out, "PNG")
    return out.getvalue()


class Pages:
    """A page server on 127.0.0.1: each path's page, and how often each was asked for."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        pages = self
        routes: dict[str, tuple[int, str, bytes, dict[str, str]]] = {
            "/article": (200, "text/html; charset=utf-8", ARTICLE.encode(), {}),
            "/article-again": (200, "text/html; charset=utf-8", ARTICLE.encode(), {}),
            "/plain": (200, "text/html", PLAIN.encode(), {}),
            "/latin": (200, "text/html; charset=iso-8859-1", "<title>Caf\u00e9 cr\u00e8me</title>".encode("latin-1"),
                       {}),
            "/no-title": (200, "text/html", NO_TITLE.encode(), {}),
            "/json": (200, "application/json", b'{"title": "not a page"}', {}),
            "/missing": (404, "text/html", b"<title>Not found</title>", {}),
            "/big": (200, "text/html", b"<html><head>" + b"<!-- padding -->" * 40_000 + b"<title>Too far</title>",
                     {}),
            "/moved": (302, "text/html", b"", {"Location": "/plain"}),
            "/pictured": (200, "text/html", PICTURED.encode(), {}),
            "/pictured-too": (200, "text/html", PICTURED.encode(), {}),
            "/bird.png": (200, "image/png", png(1200, 630), {}),
            "/broken-picture": (200, "text/html", BROKEN_PICTURE.encode(), {}),
            "/video": (200, "text/html", VIDEO.encode(), {}),
            "/oembed.json": (200, "application/json", OEMBED.encode(), {}),
            "/thumb.png": (200, "image/png", png(640, 360), {}),
            "/trending": (200, "text/html", b"<title>Everyone shares this</title>", {}),
            "/few": (200, "text/html", b"<title>Four share this</title>", {}),
            "/unlisted": (200, "text/html", b"<title>Shared quietly</title>", {}),
            "/reviewed": (200, "text/html", b"<title>Staff look at this</title>", {}),
            "/loop": (302, "text/html", b"", {"Location": "/loop"}),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                pages.asked[path] += 1
                status, content_type, body, headers = routes.get(path, (404, "text/plain", b"no", {}))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        # A query no other test run uses: cards are kept by address for a day (kicau.keys.link_card).
        return f"{self.base}{path}?run={RUN}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


RUN = str(time.time_ns())


@pytest.fixture(scope="module")
def pages() -> Iterator[Pages]:
    served = Pages()
    yield served
    served.close()


def post(http: httpx.Client, user: User, text: str) -> dict[str, Any]:
    answer = http.post("/api/v1/statuses", headers=user.auth, json={"status": text})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def status(http: httpx.Client, user: User, status_id: str) -> dict[str, Any]:
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def card_of(http: httpx.Client, user: User, status_id: str) -> dict[str, Any]:
    """The status's card once it shows one."""
    found: dict[str, Any] = eventually(lambda: status(http, user, status_id)["card"], timeout=30)
    return found


def settled(stack_cassandra: Any, status_id: str) -> None:
    """Until the post service has dealt with the status's planned preview (shown or not, the plan is gone)."""
    def gone() -> bool:
        rows = stack_cassandra.execute("SELECT status_id FROM link_previews_due")
        return all(row["status_id"] != int(status_id) for row in rows)

    eventually(gone, timeout=30)


def test_a_status_shows_its_first_links_card(http: httpx.Client, make_user: Callable[..., User],
                                             pages: Pages, gateway_url: str) -> None:
    author, reader = make_user("lp_a"), make_user("lp_r")
    follow(http, reader, author)
    address = pages.url("/article")
    posted = post(http, author, f"Dengar: {address}. And also {pages.url('/plain')}")
    assert posted["card"] is None  # not fetched yet when the post is answered
    assert f'<a href="{address.replace("&", "&amp;")}" target="_blank"' in posted["content"]
    card = card_of(http, author, posted["id"])
    assert card == {
        "url": address, "title": "Burung & kicau di pagi hari", "description": "Why birds sing at dawn.",
        "language": "id", "type": "link", "author_name": "Ana Hartono", "author_url": "",
        "provider_name": "Kabar Burung", "provider_url": "", "html": "", "width": 0, "height": 0, "image": None,
        "image_description": "", "embed_url": "", "blurhash": None, "published_at": None,
        "authors": [{"name": "Ana Hartono", "url": "", "account": None}],
    }
    # Everywhere it is read: anyone, the follower's home timeline, the author's profile, Mastodon.py.
    assert http.get(f"/api/v1/statuses/{posted['id']}").json()["card"] == card
    in_home: dict[str, Any] = eventually(lambda: next(
        (s for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()
         if s["id"] == posted["id"] and s["card"]), None) or {})
    assert in_home["card"] == card
    profile = http.get(f"/api/v1/accounts/{author.id}/statuses").json()
    assert [s["card"] for s in profile if s["id"] == posted["id"]] == [card]
    client = Mastodon(access_token=reader.token, api_base_url=gateway_url, version_check_mode="none")
    assert client.status(posted["id"]).card.title == "Burung & kicau di pagi hari"
    # A second status with the same link shows the same card without a second fetch; its reblog shows it too.
    again = post(http, reader, f"also {address}")
    assert card_of(http, reader, again["id"]) == card
    assert pages.asked["/article"] == 1
    boosted = http.post(f"/api/v1/statuses/{posted['id']}/reblog", headers=reader.auth)
    assert boosted.status_code == 200 and boosted.json()["reblog"]["card"] == card, boosted.text
    assert boosted.json()["card"] is None


def test_an_edit_that_changes_the_link_changes_the_card(http: httpx.Client, make_user: Callable[..., User],
                                                        pages: Pages, stack_cassandra: Any) -> None:
    author = make_user("lp_e")
    posted = post(http, author, f"see {pages.url('/article-again')}")
    assert card_of(http, author, posted["id"])["provider_name"] == "Kabar Burung"
    # The same link, other words: the card stays.
    kept = http.put(f"/api/v1/statuses/{posted['id']}", headers=author.auth,
                    json={"status": f"look at {pages.url('/article-again')}"})
    assert kept.status_code == 200 and kept.json()["card"]["title"] == "Burung & kicau di pagi hari", kept.text
    # Another link: cleared at once, then the new page's.
    linked = f"/api/v1/timelines/link?url={quote(pages.url('/article-again'), safe='')}"
    assert [s["id"] for s in http.get(linked).json()] == [posted["id"]]
    moved = http.put(f"/api/v1/statuses/{posted['id']}", headers=author.auth,
                     json={"status": f"no, {pages.url('/plain')}"})
    assert moved.status_code == 200, moved.text
    assert http.get(linked).status_code == 404  # off the old page's timeline, which no status shares now
    assert moved.json()["card"] is None
    plain = eventually(lambda: (c := status(http, author, posted["id"])["card"]) and c["title"] == "A plain page"
                       and c)
    assert (plain["description"], plain["provider_name"], plain["language"]) == (
        "Just a title and this.", "127.0.0.1", None)
    # No link at all: no card, and none comes.
    bare = http.put(f"/api/v1/statuses/{posted['id']}", headers=author.auth, json={"status": "words only"})
    assert bare.status_code == 200 and bare.json()["card"] is None
    settled(stack_cassandra, posted["id"])
    assert status(http, author, posted["id"])["card"] is None


def test_pages_that_make_no_card(http: httpx.Client, make_user: Callable[..., User], pages: Pages,
                                 stack_cassandra: Any, gateway_url: str) -> None:
    author = make_user("lp_n")
    none = [post(http, author, f"link {pages.url(path)}")["id"]
            for path in ("/no-title", "/json", "/missing", "/big", "/loop", "/nowhere")]
    # A page on this server itself (Mastodon makes no card for its own pages): not even planned.
    own = post(http, author, f"my profile {gateway_url}/@{author.username}")["id"]
    unreachable = post(http, author, "dead http://127.0.0.1:9/gone")["id"]  # nothing listens on port 9
    moved = post(http, author, f"moved {pages.url('/moved')}")["id"]
    latin = post(http, author, f"latin {pages.url('/latin')}")["id"]
    for status_id in [*none, own, unreachable, moved, latin]:
        settled(stack_cassandra, status_id)
    for status_id in [*none, own, unreachable]:
        assert status(http, author, status_id)["card"] is None, status_id
    assert pages.asked["/loop"] == 4  # the first request and three redirects, then given up
    redirected = status(http, author, moved)["card"]
    assert (redirected["url"], redirected["title"]) == (pages.url("/moved"), "A plain page")
    assert status(http, author, latin)["card"]["title"] == "Caf\u00e9 cr\u00e8me"


def test_a_card_shows_a_copy_of_the_pages_picture(http: httpx.Client, make_user: Callable[..., User],
                                                  pages: Pages, gateway_url: str, stack_cassandra: Any,
                                                  stack_redis: Any) -> None:
    """The page's picture is fetched once and served by this server (as Mastodon serves its copy): the card names
    the copy, at the preview's size, with its blurhash and the page's description of it; another page with the same
    picture, and the page's card fetched again, name that same copy."""
    author = make_user("lp_p")
    posted = post(http, author, f"look {pages.url('/pictured')}")
    card = card_of(http, author, posted["id"])
    assert card["title"] == "With a picture" and card["image_description"] == "A small green bird"
    assert card["image"].startswith(f"{gateway_url}/system/media/") and card["image"].endswith("/small.png")
    assert (card["width"], card["height"]) == (662, 347)  # 1200 x 630 brought to the preview's area, 480 x 480
    assert isinstance(card["blurhash"], str) and len(card["blurhash"]) > 6
    served = http.get(card["image"].removeprefix(gateway_url))
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content.startswith(b"\x89PNG")
    assert pages.asked["/bird.png"] == 1
    # The same picture on another page, and this page's card fetched again once its kept card is gone: one copy.
    shared = card_of(http, author, post(http, author, f"also {pages.url('/pictured-too')}")["id"])
    stack_redis.delete(keys.link_card(pages.url("/pictured")))
    again = card_of(http, author, post(http, author, f"again {pages.url('/pictured')}")["id"])
    assert pages.asked["/pictured"] == 2 and pages.asked["/pictured-too"] == 1
    assert shared["image"] == again["image"] == card["image"] and pages.asked["/bird.png"] == 1
    (kept,) = stack_cassandra.execute("SELECT media_id, address FROM page_pictures WHERE url = %s",
                                      (f"{pages.base}/bird.png",))
    assert kept["address"] == card["image"] and f"/{kept['media_id']}/" in card["image"]
    # A picture the page names but does not serve: the card without one.
    broken = post(http, author, f"look {pages.url('/broken-picture')}")
    card = card_of(http, author, broken["id"])
    assert (card["title"], card["image"], card["width"], card["blurhash"]) == ("Its picture is gone", None, 0, None)
    assert pages.asked["/gone.png"] == 1


def test_a_page_with_an_oembed_player_makes_a_video_card(http: httpx.Client, make_user: Callable[..., User],
                                                        pages: Pages, gateway_url: str) -> None:
    """The page names its oEmbed document: the card is the document's (a video, its player's frame alone, its
    size), with the document's thumbnail kept as this server's copy rather than the page's own picture."""
    author = make_user("lp_v")
    posted = post(http, author, f"listen {pages.url('/video')}")
    card = card_of(http, author, posted["id"])
    assert (card["type"], card["title"], card["author_name"], card["provider_name"]) == (
        "video", "Dawn chorus (full)", "Ana", "Burung TV")
    assert card["html"] == ('<iframe src="https://burung.example/embed/7" width="560" height="315" allowfullscreen>'
                            "</iframe>")
    assert (card["width"], card["height"]) == (560, 315)
    assert card["image"].startswith(f"{gateway_url}/system/media/") and card["image"].endswith("/small.png")
    assert pages.asked["/oembed.json"] == 1 and pages.asked["/thumb.png"] == 1
    client = Mastodon(access_token=author.token, api_base_url=gateway_url, version_check_mode="none")
    assert client.status(posted["id"]).card.type == "video"


def test_pages_many_accounts_share_trend(http: httpx.Client, make_user: Callable[..., User], pages: Pages,
                                         gateway_url: str) -> None:
    """``GET /api/v1/trends/links`` (kicau/link_trends.py): a page that five accounts' public statuses share
    trends, as its card with its history; four are too few, unlisted statuses are not counted, an account counts
    once."""
    users = [make_user("lp_t") for _ in range(6)]
    trending, few, quiet = pages.url("/trending"), pages.url("/few"), pages.url("/unlisted")
    posted = []
    for user in users:
        posted.append(post(http, user, f"everyone: {trending}")["id"])
    for user in users[:4]:
        posted.append(post(http, user, f"some: {few}")["id"])
    for user in users[:5]:
        answer = http.post("/api/v1/statuses", headers=user.auth,
                           json={"status": f"quiet: {quiet}", "visibility": "unlisted"})
        assert answer.status_code == 200, answer.text
        posted.append(answer.json()["id"])
    posted.append(post(http, users[0], f"again: {trending}")["id"])
    for status_id in posted:  # every card shown (and so counted)
        card_of(http, users[0], status_id)

    def ranked() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = http.get("/api/v1/trends/links?limit=20").json()
        return found if any(c["url"] == trending for c in found) else []

    links = eventually(ranked, timeout=60)  # each timeline process ranks again at most every 15 s
    assert few not in {c["url"] for c in links} and quiet not in {c["url"] for c in links}
    shown = next(c for c in links if c["url"] == trending)
    assert shown["title"] == "Everyone shares this" and len(shown["history"]) == 7
    assert (shown["history"][0]["uses"], shown["history"][0]["accounts"]) == ("7", "6")
    client = Mastodon(api_base_url=gateway_url, version_check_mode="none")
    assert trending in [c.url for c in client.trending_links()]

    # The statuses behind it (``/api/v1/timelines/link``): its public statuses newest first, paged by Link headers.
    sharing = [p for p in posted if "everyone" in status(http, users[0], p)["content"]
               or "again" in status(http, users[0], p)["content"]]
    assert len(sharing) == 7
    pages_read, url = [], f"/api/v1/timelines/link?url={quote(trending, safe='')}&limit=3"
    while url:
        answer = http.get(url)
        assert answer.status_code == 200, answer.text
        pages_read.append([s["id"] for s in answer.json()])
        url = answer.links.get("next", {}).get("url", "").removeprefix(gateway_url) if answer.json() else ""
    assert [i for page in pages_read for i in page] == sorted(sharing, key=int, reverse=True)
    assert [len(page) for page in pages_read][:3] == [3, 3, 1]
    # Unlisted statuses are not listed: a page only they share has no timeline; bad input is a 4xx.
    for query, code in ((f"url={quote(quiet, safe='')}", 404), ("url=", 400), ("", 400),
                        (f"url={quote(trending, safe='')}&max_id=abc", 400)):
        answer = http.get(f"/api/v1/timelines/link?{query}")
        assert answer.status_code == code and set(answer.json()) == {"error"}, (query, answer.text)


def test_staff_reject_and_approve_trending_pages(http: httpx.Client, make_user: Callable[..., User], pages: Pages,
                                                 staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                                 ) -> None:
    """Trends review of pages (kicau/trend_reviews.py; hashtags and statuses: tests/timeline/test_trend_reviews.py):
    staff's listing shows a trending page with an id that names it; rejected, it leaves everyone's trends at once;
    approved, it comes back."""
    _, moderator = staff("lp_rm", "Moderator")
    users = [make_user("lp_r") for _ in range(5)]
    page = pages.url("/reviewed")
    for user in users:
        card_of(http, user, post(http, user, f"look: {page}")["id"])

    def public() -> set[str]:
        return {c["url"] for c in http.get("/api/v1/trends/links?limit=20").json()}

    eventually(lambda: page in public() or None, timeout=60)
    listed = [c for c in http.get("/api/v1/admin/trends/links?limit=20", headers=moderator).json() if c["url"] == page]
    assert len(listed) == 1 and (listed[0]["requires_review"], listed[0]["trendable"]) == (True, True), listed
    assert listed[0]["id"] == link_id(page) and listed[0]["title"] == "Staff look at this"
    rejected = http.post(f"/api/v1/admin/trends/links/{listed[0]['id']}/reject", headers=moderator)
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["url"], rejected.json()["requires_review"], rejected.json()["trendable"]) == \
        (page, False, False)
    assert page not in public()
    approved = http.post(f"/api/v1/admin/trends/links/{listed[0]['id']}/approve", headers=moderator)
    assert approved.status_code == 200 and approved.json()["trendable"] is True, approved.text
    assert page in public()


def test_private_addresses_are_not_fetched_outside_development(pages: Pages) -> None:
    """The same fetcher as the post service's, without the development stack's permission: a page on 127.0.0.1,
    by address or by a name that resolves to it, is never asked for (kicau/outbound.py)."""
    from redis.asyncio import Redis

    async def fetched(url: str) -> str | None:
        redis = Redis.from_url(service_env()["KICAU_REDIS_URL"])
        cards = PageCards(redis, timeout=5, max_bytes=64 * 1024, allow_private=False, user_agent="test")
        try:
            await redis.delete(keys.link_card(url))
            return await cards.card(url)
        finally:
            await cards.close()
            await redis.aclose()

    before = pages.asked["/plain"], pages.asked["/moved"]
    for url in (pages.url("/plain"), pages.url("/plain").replace("127.0.0.1", "localhost"),
                pages.url("/moved").replace("127.0.0.1", "[::ffff:127.0.0.1]")):
        assert asyncio.run(fetched(url)) is None, url
    assert (pages.asked["/plain"], pages.asked["/moved"]) == before
