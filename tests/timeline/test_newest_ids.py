"""A profile's first page comes from the timeline's memory (kicau/newest_ids.py), and against the running
services every change answered to its author shows in the very next read: a post, a delete, many posts at
once. Cursor pages still read Cassandra and agree with the first page."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from kicau.settings import CommonSettings
from tests.conftest import User


def _profile(http: httpx.Client, author: User, query: str = "") -> list[str]:
    answer = http.get(f"/api/v1/accounts/{author.id}/statuses{query}")
    assert answer.status_code == 200, answer.text
    return [status["id"] for status in answer.json()]


def _pages_from(source: str) -> float:
    metrics = httpx.get(f"{CommonSettings().timeline_url}/metrics").text
    for line in metrics.splitlines():
        if line.startswith(f'kicau_account_newest_pages_total{{source="{source}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _post(http: httpx.Client, author: User, text: str) -> str:
    answer = http.post("/api/v1/statuses", headers=author.auth, data={"status": text})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def test_first_pages_come_from_memory_and_show_every_change_at_once(http: httpx.Client,
                                                                      make_user: Callable[..., User]) -> None:
    author = make_user("nid")
    assert _profile(http, author) == []
    first = _post(http, author, "first")
    assert _profile(http, author) == [first]  # the very next read, no waiting

    served_before = _pages_from("memory")
    for _ in range(5):
        assert _profile(http, author) == [first]
    assert _pages_from("memory") >= served_before + 5

    second = _post(http, author, "second")
    assert _profile(http, author) == [second, first]
    assert _profile(http, author, "?limit=1") == [second]

    assert http.delete(f"/api/v1/statuses/{second}", headers=author.auth).status_code == 200
    assert _profile(http, author) == [first]
    assert _profile(http, author) == [first]


def test_concurrent_posts_and_cursor_pages_agree_with_the_first_page(http: httpx.Client,
                                                                     make_user: Callable[..., User]) -> None:
    author = make_user("nid")
    _profile(http, author)  # an empty list kept in memory, to be proven dead by the posts below
    with ThreadPoolExecutor(8) as pool:
        posted = list(pool.map(lambda n: _post(http, author, f"concurrent {n}"), range(45)))
    newest_first = sorted(posted, key=int, reverse=True)
    assert _profile(http, author, "?limit=40") == newest_first[:40]
    assert _profile(http, author) == newest_first[:20]
    # Past the kept 40: a cursor page, read from Cassandra.
    assert _profile(http, author, f"?max_id={newest_first[39]}") == newest_first[40:]
    assert _profile(http, author, f"?since_id={newest_first[5]}&limit=40") == newest_first[:5]


def test_an_account_without_statuses_and_an_unknown_one(http: httpx.Client, make_user: Callable[..., User],
                                                        stack_redis: Any) -> None:
    quiet = make_user("nid")
    for _ in range(2):
        assert _profile(http, quiet) == []
    # Redis losing the version key (or it expiring) costs one read of Cassandra, never a stale page.
    stack_redis.delete(f"statuses:{{u:{quiet.id}}}:v")
    only = _post(http, quiet, "after the key was lost")
    assert _profile(http, quiet) == [only]
    assert http.get("/api/v1/accounts/999999999999/statuses").status_code == 404
