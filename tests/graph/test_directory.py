"""The profile directory against the running stack (kicau/directory.py): ``GET /api/v1/directory`` lists the
accounts newest first (``order=new``) or by their newest status (``order=active``, the default), paged by
``offset``; a signed-in reader's blocks are left out; the newest-first index, lost with Redis, is rebuilt from
Cassandra; bad input is a 4xx."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis
from mastodon import Mastodon

from kicau import keys
from tests.conftest import User
from tests.timeline.test_visibility import post


def listed(http: httpx.Client, query: str, reader: User | None = None) -> list[str]:
    answer = http.get(f"/api/v1/directory?{query}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return [account["id"] for account in answer.json()]


def test_the_directory_lists_new_and_active_accounts(gateway_url: str, http: httpx.Client,
                                                     make_user: Callable[..., User],
                                                     stack_redis: redis.Redis) -> None:
    first, second, third = make_user("dir_a"), make_user("dir_b"), make_user("dir_c")
    assert listed(http, "order=new&limit=3") == [third.id, second.id, first.id]
    assert listed(http, "order=new&limit=1&offset=1&local=true") == [second.id]

    post(http, second, "I was here")
    post(http, first, "and I after")
    # Active: by newest status (another test's scheduled status may come in between: order, not places).
    active = listed(http, "limit=80")
    assert active.index(first.id) < active.index(second.id) and third.id not in active  # it never posted

    # A reader that blocks an account does not find it.
    assert http.post(f"/api/v1/accounts/{second.id}/block", headers=third.auth).status_code == 200
    seen = listed(http, "limit=80", third)
    assert first.id in seen and second.id not in seen

    # Lost with Redis, the newest-first index is read again from Cassandra.
    stack_redis.delete(keys.directory_new())
    assert listed(http, "order=new&limit=3") == [third.id, second.id, first.id]

    client = Mastodon(api_base_url=gateway_url, version_check_mode="none")
    assert [str(a.id) for a in client.directory(order="new", limit=3)] == [third.id, second.id, first.id]

    for query, code in (("order=old", 422), ("limit=x", 400), ("offset=-1", 400), ("local=maybe", 422)):
        answer = http.get(f"/api/v1/directory?{query}")
        assert answer.status_code == code and set(answer.json()) == {"error"}, (query, answer.text)
