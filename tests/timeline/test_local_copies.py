"""The timeline service keeps statuses and account cards in process (kicau/tracked_cache.py). Against the
running services: once a reader's page is served from those copies, a change answered to anyone (a new
follower of the author, a post that bumps the author's counts, a delete) shows in the reader's very next page,
with no waiting. A copy that outlived its change would show the old card or the deleted status here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import User, eventually


def _home(http: httpx.Client, reader: User) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/timelines/home?limit=40", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    page: list[dict[str, Any]] = answer.json()
    return page


def test_changes_show_in_the_next_page_read_from_copies(http: httpx.Client, make_user: Callable[..., User],
                                                        stack_redis: Any) -> None:
    reader, author, other = make_user("lc"), make_user("lc"), make_user("lc")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    posted = http.post("/api/v1/statuses", headers=author.auth, data={"status": "first"})
    assert posted.status_code == 200, posted.text
    first = posted.json()["id"]
    eventually(lambda: [s["id"] for s in _home(http, reader)] == [first])
    for _ in range(3):  # read a few times: the page now comes from the copies
        (status,) = _home(http, reader)
        assert status["account"]["followers_count"] == 1 and status["account"]["statuses_count"] == 1
    tracked = [c for c in stack_redis.client_list() if c.get("name") == "kicau-timeline-tracked"]
    assert tracked and all(c["resp"] == "3" and "t" in c["flags"] for c in tracked)

    # The author's card changes when someone follows them: the next page has the new count.
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=other.auth).status_code == 200
    (status,) = _home(http, reader)
    assert status["account"]["followers_count"] == 2

    # A post bumps the author's statuses_count before it is answered; once the fanout has brought it to the
    # reader, both statuses carry the new card.
    second = http.post("/api/v1/statuses", headers=author.auth, data={"status": "second"}).json()["id"]

    def both() -> list[dict[str, Any]]:
        page = _home(http, reader)
        return page if [s["id"] for s in page] == [second, first] else []

    assert [s["account"]["statuses_count"] for s in eventually(both)] == [2, 2]

    # A delete, answered: the status is gone from the very next page, though its copy was served a moment ago.
    assert http.delete(f"/api/v1/statuses/{second}", headers=author.auth).status_code == 200
    assert [s["id"] for s in _home(http, reader)] == [first]
    assert http.get(f"/api/v1/statuses/{second}", headers=reader.auth).status_code == 404
