"""Several statuses or accounts in one request (``GET /api/v1/statuses?id[]=``, ``GET /api/v1/accounts?id[]=``,
Mastodon 4.3's), through the public API of the running system: the order asked, each once, what the reader may
not see or what does not exist left out, the reader's own flags, Mastodon's limits, and bad input."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import User
from tests.timeline.test_favourites import favourite
from tests.timeline.test_visibility import post


def ids_of(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()]


def test_statuses_in_the_order_asked_as_their_reader_sees_them(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, stranger = make_user("mst_a"), make_user("mst_s")
    first, second = post(http, author, "first"), post(http, author, "second")
    private = post(http, author, "followers only", visibility="private")
    gone = post(http, author, "deleted")
    assert http.delete(f"/api/v1/statuses/{gone}", headers=author.auth).status_code == 200
    favourite(http, stranger, first)
    asked = {"id[]": [second, "99999999999", private, first, second, gone, "not-an-id"]}

    assert ids_of(http.get("/api/v1/statuses", params=asked, headers=stranger.auth)) == [second, first]
    assert ids_of(http.get("/api/v1/statuses", params=asked)) == [second, first]
    mine = http.get("/api/v1/statuses", params=asked, headers=author.auth)
    assert ids_of(mine) == [second, private, first]
    assert [s["favourites_count"] for s in mine.json()] == [0, 0, 1]
    theirs = http.get("/api/v1/statuses", params=asked, headers=stranger.auth).json()
    assert [s["favourited"] for s in theirs] == [False, True]  # the reader's own flags
    assert theirs[0]["account"]["id"] == author.id
    assert http.get("/api/v1/statuses").json() == []


def test_accounts_in_the_order_asked(http: httpx.Client, make_user: Callable[..., User]) -> None:
    alice, bob = make_user("mac_a"), make_user("mac_b")
    asked = {"id[]": [bob.id, "99999999999", alice.id, bob.id, "nobody"]}
    found = http.get("/api/v1/accounts", params=asked)
    assert ids_of(found) == [bob.id, alice.id]
    assert [a["username"] for a in found.json()] == [bob.username, alice.username]
    assert http.get("/api/v1/accounts").json() == []


def test_more_than_mastodons_limit_is_a_clear_4xx(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author = make_user("mlm_a")
    status = post(http, author, "one")
    for path, most, known in (("/api/v1/statuses", 20, status), ("/api/v1/accounts", 40, author.id)):
        at_most = [known, *(str(10**12 + n) for n in range(most - 1))]
        assert ids_of(http.get(path, params={"id[]": at_most})) == [known]
        too_many = http.get(path, params={"id[]": [*at_most, str(10**13)]})
        assert too_many.status_code == 422 and set(too_many.json()) == {"error"}, too_many.text
        # The same id twice is asked once.
        assert ids_of(http.get(path, params={"id[]": [*at_most, known]})) == [known]
