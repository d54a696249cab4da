"""An account's statuses_count, as clients read it, is the length of its list (direct statuses left out), whatever
happened to the cached card: posts (concurrent ones too), a retried Idempotency-Key and a delete, then the card
dropped so that the count is read back from Cassandra (kicau/status_counts.py)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from kicau import keys
from tests.conftest import User


def _count(http: httpx.Client, user: User) -> int:
    return int(http.get(f"/api/v1/accounts/{user.id}").json()["statuses_count"])


def test_the_count_follows_posts_retries_and_deletes(http: httpx.Client, make_user: Callable[..., User],
                                                     stack_redis: Any) -> None:
    author = make_user("counted")

    def post(n: int) -> str:
        answer = http.post("/api/v1/statuses", json={"status": f"counted {n}"}, headers=author.auth)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        posted = list(pool.map(post, range(12)))
    headers = {**author.auth, "Idempotency-Key": "count-me-once"}
    once = [http.post("/api/v1/statuses", json={"status": "once"}, headers=headers) for _ in range(2)]
    assert once[0].json()["id"] == once[1].json()["id"]
    assert _count(http, author) == 13

    deleted = http.delete(f"/api/v1/statuses/{posted[3]}", headers=author.auth)
    assert deleted.status_code == 200, deleted.text
    assert _count(http, author) == 12

    stack_redis.delete(keys.account_cache(int(author.id)))
    assert _count(http, author) == 12
    # The card embedded in a new status carries the count too.
    assert http.post("/api/v1/statuses", json={"status": "one more"},
                     headers=author.auth).json()["account"]["statuses_count"] == 13


def test_direct_statuses_are_not_counted(http: httpx.Client, make_user: Callable[..., User],
                                         stack_redis: Any) -> None:
    """As on Mastodon: anyone may read the count, and it must not tell them of private messages."""
    author, friend = make_user("dm_count"), make_user("dm_friend")
    public = http.post("/api/v1/statuses", json={"status": "hello all"}, headers=author.auth)
    assert public.json()["account"]["statuses_count"] == 1
    direct = http.post("/api/v1/statuses", headers=author.auth,
                       json={"status": f"@{friend.username} psst", "visibility": "direct"})
    assert direct.status_code == 200, direct.text
    assert direct.json()["account"]["statuses_count"] == 1
    assert _count(http, author) == 1
    stack_redis.delete(keys.account_cache(int(author.id)))
    assert _count(http, author) == 1  # counted again from Cassandra
    # The author's profile still lists it, to the author.
    listed = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=author.auth).json()
    assert [s["id"] for s in listed] == [direct.json()["id"], public.json()["id"]]
    assert http.delete(f"/api/v1/statuses/{direct.json()['id']}", headers=author.auth).status_code == 200
    assert _count(http, author) == 1
