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
    kept = [(k, v) for k, v in query if k not in CURSORS]
    base = f"{public_url}{path}"
    links = []
    if next_max_id:
        links.append(f'<{base}?{urlencode([*kept, ("max_id", next_max_id)])}>; rel="next"')
    if prev_min_id:
        links.append(f'<{base}?{urlencode([*kept, ("min_id", prev_min_id)])}>; rel="prev"')
    return ", ".join(links) or None
