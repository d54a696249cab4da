"""Mastodon's ``Link`` pagination header: ``rel="next"`` first (toot only looks at the first link)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from fastapi import Request

CURSORS = ("max_id", "since_id", "min_id")


def link_header(request: Request, public_url: str, next_max_id: str | None, prev_min_id: str | None) -> str | None:
    return page_links(public_url, request.url.path, request.query_params.multi_items(), next_max_id, prev_min_id)


def page_links(public_url: str, path: str, query: Iterable[tuple[str, str]], next_max_id: str | None,
               prev_min_id: str | None) -> str | None:
    """The Link header of a page at ``path`` asked for with ``query`` (its other parameters are kept)."""
    if not next_max_id and not prev_min_id:
        return None
    # The other parameters are encoded once for both links; a cursor (digits, from the timeline service) needs
    # no quoting. Built on every page read: urlencode per link was ~4% of the gateway's CPU for a home page.
    others = [(k, v) for k, v in query if k not in CURSORS]
    kept = urlencode(others) if others else ""
    base = f"{public_url}{path}?{kept}&" if kept else f"{public_url}{path}?"
    links = []
    if next_max_id:
        links.append(f'<{base}{_cursor("max_id", next_max_id)}>; rel="next"')
    if prev_min_id:
        links.append(f'<{base}{_cursor("min_id", prev_min_id)}>; rel="prev"')
    return ", ".join(links)


def _cursor(name: str, value: str) -> str:
    return f"{name}={value}" if value.isascii() and value.isdigit() else urlencode([(name, value)])
