"""Mastodon's ``Link`` pagination header: ``rel="next"`` first (toot only looks at the first link)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request

CURSORS = ("max_id", "since_id", "min_id")


def link_header(request: Request, public_url: str, next_max_id: str | None, prev_min_id: str | None) -> str | None:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in CURSORS]
    base = f"{public_url}{request.url.path}"
    links = []
    if next_max_id:
        links.append(f'<{base}?{urlencode([*kept, ("max_id", next_max_id)])}>; rel="next"')
    if prev_min_id:
        links.append(f'<{base}?{urlencode([*kept, ("min_id", prev_min_id)])}>; rel="prev"')
    return ", ".join(links) or None
