"""Account notes and endorsements against the running stack (kicau/account_notes.py): a private note
(``POST /api/v1/accounts/:id/note``) and featuring a followed account (``/pin``, ``/unpin``), each shown in the
Relationship to its author alone; ``GET /api/v1/endorsements`` and ``/api/v1/accounts/:id/endorsements`` paged with
Link headers; an endorsement repeated is one, and ends with the follow (an unfollow, a block); bad input is a 4xx.
Also the followers and following lists' Link headers, which share the cursor header."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from mastodon import Mastodon

from kicau.account_notes import MAX_NOTE_LENGTH
from tests.conftest import User, narrow_token
from tests.graph.test_blocks_and_mutes import change, follow, relationship


def endorsed(http: httpx.Client, path: str, reader: User | None = None, query: str = "") -> httpx.Response:
    answer = http.get(f"{path}{query}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return answer


def ids(answer: httpx.Response) -> list[str]:
    return [account["id"] for account in answer.json()]


def test_a_note_is_the_authors_alone(http: httpx.Client, make_user: Callable[..., User],
                                     app_credentials: dict[str, Any]) -> None:
    ann, bob = make_user("note_a"), make_user("note_b")
    assert relationship(http, ann, bob)["note"] == ""
    assert change(http, ann, bob, "note", comment="met at the café ☕")["note"] == "met at the café ☕"
    assert relationship(http, ann, bob)["note"] == "met at the café ☕"
    assert relationship(http, bob, ann)["note"] == ""  # the other way: no note
    # As a form too; replaced by each save; empty or absent removes it.
    answer = http.post(f"/api/v1/accounts/{bob.id}/note", headers=ann.auth, data={"comment": "second"})
    assert answer.status_code == 200 and answer.json()["note"] == "second", answer.text
    assert change(http, ann, bob, "note", comment="")["note"] == ""
    change(http, ann, bob, "note", comment="again")
    answer = http.post(f"/api/v1/accounts/{bob.id}/note", headers=ann.auth)
    assert answer.status_code == 200 and answer.json()["note"] == "", answer.text

    too_long = http.post(f"/api/v1/accounts/{bob.id}/note", headers=ann.auth,
                         json={"comment": "x" * (MAX_NOTE_LENGTH + 1)})
    assert too_long.status_code == 422 and set(too_long.json()) == {"error"}, too_long.text
    for path, code, headers in ((f"/api/v1/accounts/{bob.id}/note", 401, {}),
                                ("/api/v1/accounts/123456789/note", 404, ann.auth),
                                ("/api/v1/accounts/x/note", 404, ann.auth)):
        answer = http.post(path, headers=headers, json={"comment": "hi"})
        assert answer.status_code == code and set(answer.json()) == {"error"}, (path, answer.text)
    answer = http.post(f"/api/v1/accounts/{bob.id}/note", headers=ann.auth, json={"comment": ["a", "b"]})
    assert answer.status_code == 422 and set(answer.json()) == {"error"}, answer.text
    answer = http.post(f"/api/v1/accounts/{bob.id}/note", headers=narrow_token(http, app_credentials, ann, "read"))
    assert answer.status_code == 403 and set(answer.json()) == {"error"}, answer.text


def test_endorsements_feature_followed_accounts(gateway_url: str, http: httpx.Client,
                                                make_user: Callable[..., User]) -> None:
    ann = make_user("endorse_a")
    friends = [make_user("endorse_f") for _ in range(3)]
    stranger = make_user("endorse_s")
    refused = http.post(f"/api/v1/accounts/{stranger.id}/pin", headers=ann.auth)
    assert refused.status_code == 422 and "following" in refused.json()["error"], refused.text
    for friend in friends:
        assert follow(http, ann, friend).status_code == 200
        assert change(http, ann, friend, "pin")["endorsed"] is True
    assert change(http, ann, friends[0], "pin")["endorsed"] is True  # again: one endorsement, its place kept
    assert relationship(http, friends[0], ann)["endorsed"] is False

    mine = endorsed(http, "/api/v1/endorsements", ann)
    assert ids(mine) == [f.id for f in reversed(friends)]  # most recently endorsed first
    theirs = endorsed(http, f"/api/v1/accounts/{ann.id}/endorsements")
    assert ids(theirs) == ids(mine)
    # Paged: a Link header to the next page.
    first = endorsed(http, "/api/v1/endorsements", ann, "?limit=2")
    assert ids(first) == [friends[2].id, friends[1].id]
    rest = endorsed(http, first.links["next"]["url"].removeprefix(gateway_url), ann)
    assert ids(rest) == [friends[0].id]

    # Undone by unpin, by an unfollow and by a block.
    assert change(http, ann, friends[2], "unpin")["endorsed"] is False
    assert change(http, ann, friends[2], "unpin")["endorsed"] is False  # again: nothing changes
    assert change(http, ann, friends[1], "unfollow")["endorsed"] is False
    assert change(http, friends[0], ann, "block")["blocking"] is True  # the follow ends both ways
    assert relationship(http, ann, friends[0])["endorsed"] is False
    assert ids(endorsed(http, "/api/v1/endorsements", ann)) == []

    # Mastodon 4.4's names for the same: endorse and unendorse.
    assert follow(http, ann, stranger).status_code == 200
    assert change(http, ann, stranger, "endorse")["endorsed"] is True
    assert change(http, ann, stranger, "unendorse")["endorsed"] is False
    change(http, ann, stranger, "pin")
    client = Mastodon(access_token=ann.token, api_base_url=gateway_url, version_check_mode="none")
    assert [str(a.id) for a in client.endorsements()] == [stranger.id]
    assert client.account_relationships(stranger.id)[0].endorsed is True
    client.account_unpin(stranger.id)
    assert client.account_relationships(stranger.id)[0].endorsed is False

    for path, code, headers in (("/api/v1/endorsements", 401, {}),
                                ("/api/v1/endorsements?limit=x", 400, ann.auth),
                                ("/api/v1/accounts/123456789/endorsements", 404, {}),
                                (f"/api/v1/accounts/{ann.id}/endorsements?max_id=x", 400, {})):
        answer = http.get(path, headers=headers)
        assert answer.status_code == code and set(answer.json()) == {"error"}, (path, answer.text)
    for verb in ("pin", "unpin"):
        answer = http.post(f"/api/v1/accounts/123456789/{verb}", headers=ann.auth)
        assert answer.status_code == 404 and set(answer.json()) == {"error"}, (verb, answer.text)


def test_follow_lists_link_their_next_page(gateway_url: str, http: httpx.Client,
                                           make_user: Callable[..., User]) -> None:
    star = make_user("links_star")
    fans = [make_user("links_fan") for _ in range(3)]
    for fan in fans:
        assert follow(http, fan, star).status_code == 200
    pages: list[list[str]] = []
    url = f"/api/v1/accounts/{star.id}/followers?limit=2"
    while url:
        answer = http.get(url)
        assert answer.status_code == 200, answer.text
        pages.append([account["id"] for account in answer.json()])
        url = answer.links.get("next", {}).get("url", "").removeprefix(gateway_url)
    assert sorted(i for page in pages for i in page) == sorted(f.id for f in fans) and len(pages[0]) == 2
    following = http.get(f"/api/v1/accounts/{fans[0].id}/following?limit=1")
    assert [a["id"] for a in following.json()] == [star.id] and "next" in following.links
