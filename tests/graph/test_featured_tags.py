"""Featured hashtags against the running stack (kicau/featured_tags.py): featuring (in any case, with or without
``#``, again), the list most used first with each hashtag's count of the account's public and unlisted statuses
(no private or direct one, no reblog) and the day of the last, a deletion taken off the count, a profile's
``featured_tags`` for anyone, the suggestions (recently used, not featured), unfeaturing by id, the limit of ten,
and bad input answered 4xx."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import User, eventually, narrow_token
from tests.timeline.test_visibility import post


def fresh_tag() -> str:
    """A hashtag no other test uses (the tables outlive a test)."""
    return "fe" + uuid.uuid4().hex[:12]


def feature(http: httpx.Client, user: User, name: str) -> dict[str, Any]:
    answer = http.post("/api/v1/featured_tags", headers=user.auth, data={"name": name})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def featured(http: httpx.Client, user: User) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/featured_tags", headers=user.auth)
    assert answer.status_code == 200, answer.text
    body: list[dict[str, Any]] = answer.json()
    return body


def counts(http: httpx.Client, user: User) -> list[tuple[str, int]]:
    return [(t["name"], int(t["statuses_count"])) for t in featured(http, user)]


def test_featuring_hashtags(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, booster = make_user("feat_a"), make_user("feat_b")
    alpha, beta, gamma, delta = fresh_tag(), fresh_tag(), fresh_tag(), fresh_tag()
    first = post(http, author, f"one #{alpha}")
    post(http, author, f"two #{alpha.upper()} and #{beta}", visibility="unlisted")
    post(http, author, f"not counted: followers only #{alpha}", visibility="private")
    post(http, author, f"not counted: direct #{alpha}", visibility="direct")
    assert http.post(f"/api/v1/statuses/{first}/reblog", headers=booster.auth).status_code == 200
    post(http, author, f"used earlier #{delta}")
    last = post(http, author, f"used last #{gamma}")

    # Featured once the fanout has recorded the statuses: the author's own public and unlisted ones.
    tag = feature(http, author, f"#{alpha.upper()}")
    assert (tag["name"], tag["url"]) == (alpha, f"{tag['url'].split('/@')[0]}/@{author.username}/tagged/{alpha}")
    eventually(lambda: counts(http, author) == [(alpha, 2)] or None)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert featured(http, author)[0]["last_status_at"] == today
    assert feature(http, author, alpha)["id"] == tag["id"]  # again: the same feature
    assert feature(http, booster, alpha)["statuses_count"] == "0"  # a reblog is not the booster's use
    feature(http, author, beta)
    assert counts(http, author) == [(alpha, 2), (beta, 1)]  # most used first
    unused = feature(http, author, fresh_tag())
    assert (unused["statuses_count"], unused["last_status_at"]) == ("0", None)

    # Anyone reads a profile's featured hashtags.
    mine = featured(http, author)
    assert http.get(f"/api/v1/accounts/{author.id}/featured_tags").json() == mine

    # Suggestions: what the author used, most recently first, not featured.
    eventually(lambda: [t["name"] for t in http.get("/api/v1/featured_tags/suggestions",
                                                    headers=author.auth).json()] == [gamma, delta] or None)
    suggested = http.get("/api/v1/featured_tags/suggestions", headers=author.auth).json()
    assert suggested[0]["following"] is False and len(suggested[0]["history"]) == 7

    # A deleted status no longer counts.
    assert http.delete(f"/api/v1/statuses/{first}", headers=author.auth).status_code == 200
    eventually(lambda: dict(counts(http, author))[alpha] == 1 or None)
    assert http.delete(f"/api/v1/statuses/{last}", headers=author.auth).status_code == 200

    # Unfeatured by id, by its owner alone.
    answer = http.delete(f"/api/v1/featured_tags/{tag['id']}", headers=booster.auth)
    assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), answer.text
    answer = http.delete(f"/api/v1/featured_tags/{tag['id']}", headers=author.auth)
    assert (answer.status_code, answer.json()) == (200, {}), answer.text
    assert alpha not in dict(counts(http, author))
    answer = http.delete(f"/api/v1/featured_tags/{tag['id']}", headers=author.auth)
    assert answer.status_code == 404, answer.text
    assert alpha in [t["name"] for t in http.get("/api/v1/featured_tags/suggestions", headers=author.auth).json()]


def test_at_most_ten_featured_hashtags(http: httpx.Client, make_user: Callable[..., User]) -> None:
    user = make_user("feat_ten")
    names = [fresh_tag() for _ in range(10)]
    for name in names:
        feature(http, user, name)
    answer = http.post("/api/v1/featured_tags", headers=user.auth, json={"name": fresh_tag()})
    assert answer.status_code == 422 and set(answer.json()) == {"error"}, answer.text
    assert feature(http, user, names[3])["name"] == names[3]  # one already featured is no eleventh
    assert len(featured(http, user)) == 10
    for version in ("v1", "v2"):  # as the instance documents say
        assert http.get(f"/api/{version}/instance").json()["configuration"]["accounts"]["max_featured_tags"] == 10


def test_featured_tags_answer_bad_input_with_4xx(http: httpx.Client, make_user: Callable[..., User],
                                                 app_credentials: dict[str, Any]) -> None:
    user = make_user("feat_bad")
    for body in ({}, {"name": ""}, {"name": "123"}, {"name": "a b"}, {"name": 5}, {"name": ["x"]},
                 {"name": "x" * 301}):
        answer = http.post("/api/v1/featured_tags", headers=user.auth, json=body)
        assert answer.status_code == 422 and set(answer.json()) == {"error"}, (body, answer.text)
    assert featured(http, user) == []  # nothing written
    for path in ("/api/v1/featured_tags/abc", "/api/v1/featured_tags/1"):
        answer = http.delete(path, headers=user.auth)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), answer.text
    for path in ("/api/v1/accounts/abc/featured_tags", "/api/v1/accounts/1/featured_tags"):
        answer = http.get(path)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), answer.text
    for verb, path in (("GET", "/api/v1/featured_tags"), ("POST", "/api/v1/featured_tags"),
                       ("GET", "/api/v1/featured_tags/suggestions"), ("DELETE", "/api/v1/featured_tags/1")):
        answer = http.request(verb, path)
        assert answer.status_code == 401 and set(answer.json()) == {"error"}, (path, answer.text)
    narrow = narrow_token(http, app_credentials, user)
    for verb, path in (("GET", "/api/v1/featured_tags"), ("POST", "/api/v1/featured_tags")):
        answer = http.request(verb, path, headers=narrow)
        assert answer.status_code == 403 and set(answer.json()) == {"error"}, answer.text


def tag_as_seen(http: httpx.Client, name: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = http.get(f"/api/v1/tags/{name}", headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_featuring_a_hashtag_by_its_name(http: httpx.Client, make_user: Callable[..., User],
                                         gateway_url: str) -> None:
    """Mastodon 4.4's ``POST /api/v1/tags/:name/feature`` and ``/unfeature``: the same features as
    ``/api/v1/featured_tags`` makes, and a Tag's ``featuring`` for the reader (absent for anyone without a token)."""
    from mastodon import Mastodon

    user, other = make_user("featn_a"), make_user("featn_b")
    name = fresh_tag()
    post(http, user, f"using #{name}")
    answer = http.post(f"/api/v1/tags/{name.upper()}/feature", headers=user.auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == name and answer.json()["featuring"] is True
    assert answer.json()["following"] is False
    again = http.post(f"/api/v1/tags/%23{name}/feature", headers=user.auth)  # with "#": the same, once
    assert again.status_code == 200 and again.json()["featuring"] is True, again.text
    listed = featured(http, user)
    assert [t["name"] for t in listed] == [name]
    eventually(lambda: featured(http, user)[0]["statuses_count"] == "1")
    # As others see the account, and the Tag as the user, another account and no one see it.
    assert [t["name"] for t in http.get(f"/api/v1/accounts/{user.id}/featured_tags").json()] == [name]
    eventually(lambda: tag_as_seen(http, name, user.auth).get("featuring") is True)
    assert tag_as_seen(http, name, other.auth)["featuring"] is False
    assert "featuring" not in tag_as_seen(http, name) and "following" not in tag_as_seen(http, name)
    # Followed hashtags say whether each is featured too.
    assert http.post(f"/api/v1/tags/{name}/follow", headers=user.auth).status_code == 200
    followed = http.get("/api/v1/followed_tags", headers=user.auth).json()
    assert [(t["name"], t["following"], t["featuring"]) for t in followed] == [(name, True, True)]
    # Unfeaturing by name takes it off the profile; again, or one never featured: nothing changes.
    gone = http.post(f"/api/v1/tags/{name}/unfeature", headers=user.auth)
    assert gone.status_code == 200 and gone.json()["featuring"] is False, gone.text
    assert featured(http, user) == []
    for _ in range(2):
        answer = http.post(f"/api/v1/tags/{fresh_tag()}/unfeature", headers=user.auth)
        assert answer.status_code == 200 and answer.json()["featuring"] is False, answer.text
    assert http.post(f"/api/v1/tags/{name}/unfeature", headers=user.auth).json()["featuring"] is False
    # Mastodon.py's calls for them.
    client = Mastodon(access_token=user.token, api_base_url=gateway_url)
    assert client.tag_feature(name)["featuring"] is True
    assert [t["name"] for t in client.featured_tags()] == [name]
    assert client.tag_unfeature(name)["featuring"] is False
    assert client.featured_tags() == []


def test_featuring_by_name_answers_bad_input_with_4xx(http: httpx.Client, make_user: Callable[..., User],
                                                      app_credentials: dict[str, Any]) -> None:
    user = make_user("featn_bad")
    for bad in ("123", "a%20b", "x" * 301, "%E2%80%8B"):
        for change in ("feature", "unfeature"):
            answer = http.post(f"/api/v1/tags/{bad}/{change}", headers=user.auth)
            assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), (bad, answer.text)
    for _ in range(10):
        assert http.post(f"/api/v1/tags/{fresh_tag()}/feature", headers=user.auth).status_code == 200
    eleventh = fresh_tag()
    answer = http.post(f"/api/v1/tags/{eleventh}/feature", headers=user.auth)
    assert answer.status_code == 422 and set(answer.json()) == {"error"}, answer.text
    assert len(featured(http, user)) == 10 and eleventh not in {t["name"] for t in featured(http, user)}
    for change in ("feature", "unfeature"):
        answer = http.post(f"/api/v1/tags/{fresh_tag()}/{change}")
        assert answer.status_code == 401 and set(answer.json()) == {"error"}, answer.text
        answer = http.post(f"/api/v1/tags/{fresh_tag()}/{change}", headers=narrow_token(http, app_credentials, user))
        assert answer.status_code == 403 and set(answer.json()) == {"error"}, answer.text
