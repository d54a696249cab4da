"""A page's preview card (Mastodon's PreviewCard): what a status shows under its text for the first web address
in it (kicau/links.py), made from the page's ``<head>``: its Open Graph properties (``og:title``,
``og:description``, ``og:site_name``), else Twitter's card tags, else the ``<title>`` and the ``description``
meta tag; its language from ``<html lang>``, its author from ``article:author`` or the ``author`` meta tag, when
it was published from ``article:published_time``.

A page without a title makes no card (Mastodon's rule). Only the head is read: parsing stops at ``<body>`` or
``</head>``. Texts are unescaped, whitespace runs made one space, and cut to Mastodon's lengths. The page's
picture (``og:image``, else ``twitter:image``) is named apart (``picture_of``): the post service fetches it and
serves a copy of its own, as Mastodon does, so that no reader's client fetches anything from the page's host; a
card shows it once kept (``with_picture``).

**oEmbed.** A page that names its oEmbed document (``<link rel="alternate" type="application/json+oembed">``,
``oembed_of``; video and music sites do) gets the card that document describes (``with_oembed``), as Mastodon's:
its type (``video``, ``rich``, ``photo`` or ``link``), title, author, provider and size, its thumbnail as the card's
picture, and for a video or rich card the player: the document's ``html`` reduced to its one ``<iframe>`` with
only the attributes a player needs and an ``http(s)`` source (``embed_html``), so no script, style or event
handler of another site's ever reaches a reader's client. A video or rich document whose html holds no such
frame makes a plain link card.

The fetching is the post service's (services/post/link_previews.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from html import escape
from html.parser import HTMLParser
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

from kicau.entities import iso_time

MAX_TITLE: Final = 250
MAX_DESCRIPTION: Final = 400
MAX_NAME: Final = 100
_SPACES: Final = re.compile(r"\s+")
_LANGUAGE: Final = re.compile(r"[a-z]{2,3}", re.IGNORECASE)
# The tags read, each a meta tag's ``property`` or ``name``; the first of each found is kept.
_WANTED: Final = frozenset({
    "og:title", "og:description", "og:site_name", "twitter:title", "twitter:description", "description",
    "article:author", "author", "og:image", "og:image:secure_url", "og:image:url", "og:image:alt",
    "twitter:image", "twitter:image:src", "twitter:image:alt", "article:published_time", "og:published_time",
    "date",
})
MAX_PICTURE_ADDRESS: Final = 2000
OEMBED_TYPES: Final = ("application/json+oembed", "application/json", "text/json", "text/javascript")
MAX_OEMBED_BYTES: Final = 64 * 1024
# What a player's frame keeps: the attributes Mastodon's sanitiser lets through for embedded players.
_FRAME_ATTRIBUTES: Final = ("src", "width", "height", "frameborder", "allowfullscreen", "allow", "scrolling",
                            "title", "referrerpolicy", "sandbox")
MAX_PLAYER_SIZE: Final = 4096


class _Head(HTMLParser):
    """The wanted meta tags, the title and the language of a page's head."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self.language = ""
        self.done = False
        self.oembed = ""  # the address of its JSON oEmbed document, as the page names it
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        found = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.language = found.get("lang", "")
        elif tag == "meta":
            key = (found.get("property") or found.get("name") or "").strip().lower()
            if key in _WANTED and key not in self.meta and found.get("content"):
                self.meta[key] = found["content"]
        elif tag == "link" and not self.oembed:
            relations = (found.get("rel") or "").lower().split()
            if "alternate" in relations and (found.get("type") or "").lower() == "application/json+oembed":
                self.oembed = (found.get("href") or "").strip()
        elif tag == "title":
            self._in_title = True
        elif tag == "body":
            self.done = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "head":
            self.done = True

    def handle_data(self, data: str) -> None:
        if self._in_title and not self.done:
            self.title += data


def _clean(text: str, limit: int) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def head_of(page: str) -> _Head:
    head = _Head()
    try:
        head.feed(page)
        head.close()
    except AssertionError:  # html.parser's reaction to some broken markup: keep what was read
        pass
    return head


def card(url: str, page: str) -> dict[str, Any] | None:
    """The PreviewCard of the page at ``url`` (its HTML as text), or None when it has no title."""
    head = head_of(page)
    meta = head.meta
    title = _clean(meta.get("og:title") or meta.get("twitter:title") or head.title, MAX_TITLE)
    if not title:
        return None
    description = _clean(meta.get("og:description") or meta.get("twitter:description")
                         or meta.get("description") or "", MAX_DESCRIPTION)
    host = urlsplit(url).hostname or ""
    author = _clean(meta.get("article:author") or meta.get("author") or "", MAX_NAME)
    if "://" in author:
        author = ""  # an author's page, not a name
    language = _LANGUAGE.match(head.language.strip())
    published = _published(meta.get("article:published_time") or meta.get("og:published_time")
                           or meta.get("date") or "")
    return {
        "url": url,
        "title": title,
        "description": description,
        "language": language.group().lower() if language else None,
        "type": "link",
        "author_name": author,
        "author_url": "",
        "provider_name": _clean(meta.get("og:site_name") or host, MAX_NAME),
        "provider_url": "",
        "html": "",
        "width": 0,
        "height": 0,
        "image": None,
        "image_description": "",
        "embed_url": "",
        "blurhash": None,
        "published_at": published,
        "authors": [{"name": author, "url": "", "account": None}] if author else [],
    }


def _published(value: str) -> str | None:
    """When the page says it was published (an ISO 8601 date or time, as ``article:published_time`` gives it), in
    Mastodon's form (UTC, milliseconds); None for anything else. A date alone is that day's midnight, UTC."""
    value = value.strip()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    if when is None or not 1900 <= when.year <= 9999:
        return None
    return iso_time(when)


def picture_of(url: str, page: str) -> tuple[str, str] | None:
    """The address of the page's picture (made absolute against the page's) and its description, or None."""
    meta = head_of(page).meta
    named = next((meta[key] for key in ("og:image:secure_url", "og:image", "og:image:url", "twitter:image",
                                        "twitter:image:src") if meta.get(key, "").strip()), "").strip()
    address = urljoin(url, named) if named else ""
    if not address or len(address) > MAX_PICTURE_ADDRESS or urlsplit(address).scheme not in ("http", "https"):
        return None
    return address, _clean(meta.get("og:image:alt") or meta.get("twitter:image:alt") or "", MAX_DESCRIPTION)


def with_picture(card: dict[str, Any], image: str, width: int, height: int, blurhash: str,
                 description: str) -> dict[str, Any]:
    """The card showing its picture as this server keeps it (``image``: the copy's address). A player's card
    keeps the player's size, as its document gave it."""
    if card.get("html") and card.get("width") and card.get("height"):
        width, height = card["width"], card["height"]
    return {**card, "image": image, "width": width, "height": height, "blurhash": blurhash,
            "image_description": description}


def oembed_of(url: str, page: str) -> str | None:
    """The absolute address of the page's JSON oEmbed document, or None."""
    named = head_of(page).oembed
    address = urljoin(url, named) if named else ""
    if not address or len(address) > MAX_PICTURE_ADDRESS or urlsplit(address).scheme not in ("http", "https"):
        return None
    return address


class _Frame(HTMLParser):
    """The first ``<iframe>`` of a piece of HTML, its attributes as given."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attributes: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "iframe" and self.attributes is None:
            self.attributes = {name.lower(): value or "" for name, value in attrs}


def embed_html(html: str) -> str:
    """An oEmbed document's ``html`` as a reader's client may show it: its first ``<iframe>`` alone, with an http(s)
    ``src`` and only a player's attributes (``_FRAME_ATTRIBUTES``), each escaped; "" when there is no such frame."""
    frame = _Frame()
    try:
        frame.feed(html)
        frame.close()
    except AssertionError:
        return ""
    found = frame.attributes
    if found is None:
        return ""
    source = found.get("src", "").strip()
    if urlsplit(source).scheme not in ("http", "https") or len(source) > MAX_PICTURE_ADDRESS:
        return ""
    kept: dict[str, str] = {"src": source}
    kept.update((name, found[name]) for name in _FRAME_ATTRIBUTES[1:] if name in found)
    for size in ("width", "height"):
        if size in kept and not _is_size(kept[size]):
            del kept[size]
    written = " ".join(f'{name}="{escape(value, quote=True)}"' if value or name != "allowfullscreen"
                       else name for name, value in kept.items())
    return f"<iframe {written}></iframe>"


def _is_size(value: str) -> bool:
    return value.isdigit() and 0 < int(value) <= MAX_PLAYER_SIZE


def _size(value: Any) -> int:
    """An oEmbed width or height (a number, or digits): 0 when it is neither or out of bounds."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float) and 0 < value <= MAX_PLAYER_SIZE:
        return int(value)
    return int(value) if isinstance(value, str) and _is_size(value) else 0


def _text(document: dict[str, Any], key: str, limit: int) -> str:
    value = document.get(key)
    return _clean(value, limit) if isinstance(value, str) else ""


def _address(document: dict[str, Any], key: str, base: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        return ""
    address = urljoin(base, value.strip())
    ok = urlsplit(address).scheme in ("http", "https") and len(address) <= MAX_PICTURE_ADDRESS
    return address if ok else ""


def with_oembed(card: dict[str, Any] | None, url: str, document: Any, oembed_url: str) -> dict[str, Any] | None:
    """The card the page's oEmbed ``document`` (decoded JSON, fetched from ``oembed_url``) describes, over the card
    of the page's head (None: the page has no title); None when neither makes one."""
    if not isinstance(document, dict):
        return card
    kind = document.get("type")
    html = embed_html(document["html"]) if kind in ("video", "rich") and isinstance(document.get("html"), str) \
        else ""
    if kind in ("video", "rich") and not html:
        kind = "link"
    if kind not in ("video", "rich", "photo", "link"):
        return card
    title = _text(document, "title", MAX_TITLE) or (card["title"] if card is not None else "")
    if not title:
        return None
    base: dict[str, Any] = card if card is not None else {
        "url": url, "description": "", "language": None, "image": None, "image_description": "", "blurhash": None,
        "published_at": None, "author_url": "", "provider_url": "", "embed_url": "", "authors": []}
    author = _text(document, "author_name", MAX_NAME) or (card["author_name"] if card is not None else "")
    author_url = _address(document, "author_url", oembed_url)
    made = {
        **base,
        "title": title,
        "type": kind,
        "html": html,
        "width": _size(document.get("width")),
        "height": _size(document.get("height")),
        "author_name": author,
        "author_url": author_url or base.get("author_url", ""),
        "provider_name": _text(document, "provider_name", MAX_NAME)
        or (card["provider_name"] if card is not None else urlsplit(url).hostname or ""),
        "provider_url": _address(document, "provider_url", oembed_url) or base.get("provider_url", ""),
        "embed_url": _address(document, "url", oembed_url) if kind == "photo" else "",
        "authors": [{"name": author, "url": author_url, "account": None}] if author else [],
    }
    return made


def oembed_picture(document: Any, oembed_url: str) -> str | None:
    """The picture an oEmbed document names for its card: its thumbnail, or a photo's own address."""
    if not isinstance(document, dict):
        return None
    address = _address(document, "thumbnail_url", oembed_url)
    if not address and document.get("type") == "photo":
        address = _address(document, "url", oembed_url)
    return address or None
