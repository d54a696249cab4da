"""A page's preview card (Mastodon's PreviewCard): what a status shows under its text for the first web address
in it (kicau/links.py), made from the page's ``<head>``: its Open Graph properties (``og:title``,
``og:description``, ``og:site_name``), else Twitter's card tags, else the ``<title>`` and the ``description``
meta tag; its language from ``<html lang>``, its author from ``article:author`` or the ``author`` meta tag.

A page without a title makes no card (Mastodon's rule). Only the head is read: parsing stops at ``<body>`` or
``</head>``. Texts are unescaped, whitespace runs made one space, and cut to Mastodon's lengths. The page's
picture (``og:image``, else ``twitter:image``) is named apart (``picture_of``): the post service fetches it and
serves a copy of its own, as Mastodon does, so that no reader's client fetches anything from the page's host; a
card shows it once kept (``with_picture``).

The fetching is the post service's (services/post/link_previews.py).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

MAX_TITLE: Final = 250
MAX_DESCRIPTION: Final = 400
MAX_NAME: Final = 100
_SPACES: Final = re.compile(r"\s+")
_LANGUAGE: Final = re.compile(r"[a-z]{2,3}", re.IGNORECASE)
# The tags read, each a meta tag's ``property`` or ``name``; the first of each found is kept.
_WANTED: Final = frozenset({
    "og:title", "og:description", "og:site_name", "twitter:title", "twitter:description", "description",
    "article:author", "author", "og:image", "og:image:secure_url", "og:image:url", "og:image:alt",
    "twitter:image", "twitter:image:src", "twitter:image:alt",
})
MAX_PICTURE_ADDRESS: Final = 2000


class _Head(HTMLParser):
    """The wanted meta tags, the title and the language of a page's head."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self.language = ""
        self.done = False
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
        "published_at": None,
        "authors": [{"name": author, "url": "", "account": None}] if author else [],
    }


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
    """The card showing its picture as this server keeps it (``image``: the copy's address)."""
    return {**card, "image": image, "width": width, "height": height, "blurhash": blurhash,
            "image_description": description}
