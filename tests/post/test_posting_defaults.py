"""Posting defaults against the running stack (kicau/posting_defaults.py): set through update_credentials (as
Mastodon.py's ``default_privacy`` and the others send them), shown in verify_credentials' ``source`` and in
``/api/v1/preferences``, taken by a new or scheduled status that does not say otherwise, and refused with a 422 that
writes nothing when they are not Mastodon's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from mastodon import Mastodon

from tests.conftest import User, eventually
from tests.timeline.test_notifications import follow


def credentials(http: httpx.Client, user: User) -> dict[str, Any]:
    answer = http.get("/api/v1/accounts/verify_credentials", headers=user.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def post(http: httpx.Client, author: User, **fields: Any) -> dict[str, Any]:
    answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": "by default", **fields})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_new_status_takes_what_its_author_set_unless_it_says(http: httpx.Client, make_user: Callable[..., User],
                                                              gateway_url: str) -> None:
    author, follower, stranger = make_user("pd_a"), make_user("pd_f"), make_user("pd_s")
    follow(http, follower, author)
    fresh = post(http, author)  # Mastodon's defaults until the author sets its own
    assert (fresh["visibility"], fresh["sensitive"], fresh["language"]) == ("public", False, None)
    assert fresh["quote_approval"]["automatic"] == ["public"]

    client = Mastodon(access_token=author.token, api_base_url=gateway_url)
    changed = client.account_update_credentials(default_privacy="private", default_sensitive=True,
                                                default_language="de", default_quote_policy="followers")
    assert (changed.source.privacy, changed.source.sensitive, changed.source.language,
            changed.source.quote_policy) == ("private", True, "de", "followers")
    assert credentials(http, author)["source"]["privacy"] == "private"
    assert client.preferences() == {
        "posting:default:visibility": "private", "posting:default:quote_policy": "followers",
        "posting:default:sensitive": True, "posting:default:language": "de",
        "reading:expand:media": "default", "reading:expand:spoilers": False}

    # Posted with none of them said: all four from the defaults (a followers-only status is quoted by no one).
    mine = post(http, author)
    assert (mine["visibility"], mine["sensitive"], mine["language"]) == ("private", True, "de")
    assert mine["quote_approval"]["automatic"] == []
    eventually(lambda: mine["id"] in [s["id"] for s in http.get("/api/v1/timelines/home",
                                                                headers=follower.auth).json()] or None)
    assert http.get(f"/api/v1/statuses/{mine['id']}", headers=stranger.auth).status_code == 404
    # Each one said wins over its default; the others still come from the defaults.
    public = post(http, author, visibility="public")
    assert (public["visibility"], public["sensitive"], public["language"]) == ("public", True, "de")
    assert public["quote_approval"]["automatic"] == ["followers"]
    said = post(http, author, visibility="unlisted", sensitive=False, language="en", quote_approval_policy="public")
    assert (said["visibility"], said["sensitive"], said["language"]) == ("unlisted", False, "en")
    assert said["quote_approval"]["automatic"] == ["public"]
    # Through Mastodon.py, which sends no visibility unless asked.
    assert client.status_post("from Mastodon.py").visibility == "private"
    # A scheduled status takes them when it is scheduled.
    when = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = http.post("/api/v1/statuses", headers=author.auth, json={"status": "later", "scheduled_at": when})
    assert scheduled.status_code == 200, scheduled.text
    assert (scheduled.json()["params"]["visibility"], scheduled.json()["params"]["language"]) == ("private", "de")

    # Changed again (a form, as toot sends it): the next status follows at once; a blank language clears it.
    again = http.patch("/api/v1/accounts/update_credentials", headers=author.auth,
                       data={"source[privacy]": "unlisted", "source[sensitive]": "false", "source[language]": ""})
    assert again.status_code == 200, again.text
    assert (again.json()["source"]["privacy"], again.json()["source"]["sensitive"],
            again.json()["source"]["language"], again.json()["source"]["quote_policy"]) == (
        "unlisted", False, None, "followers")
    later = post(http, author)
    assert (later["visibility"], later["sensitive"], later["language"]) == ("unlisted", False, None)
    # Another account's statuses keep Mastodon's defaults.
    assert post(http, follower)["visibility"] == "public"


def test_defaults_that_are_not_mastodons_are_refused_and_write_nothing(http: httpx.Client,
                                                                      make_user: Callable[..., User]) -> None:
    user = make_user("pd_b")
    before = credentials(http, user)
    for field, value, error in [
        ("source[privacy]", "direct", "source[privacy] must be public, unlisted or private"),
        ("source[privacy]", "everyone", "source[privacy] must be public, unlisted or private"),
        ("source[sensitive]", "perhaps", "source[sensitive] must be true or false"),
        ("source[language]", "xx", "source[language] is not a valid language code"),
        ("source[quote_policy]", "friends", "source[quote_policy] must be public, followers or nobody"),
    ]:
        # Beside a change that is fine on its own: neither is written.
        answer = http.patch("/api/v1/accounts/update_credentials", headers=user.auth,
                            data={"display_name": "Changed", "source[privacy]": "private", field: value})
        assert (answer.status_code, answer.json()) == (422, {"error": f"Validation failed: {error}"}), field
    nested = http.patch("/api/v1/accounts/update_credentials", headers=user.auth,
                        json={"source": {"privacy": "unlisted", "sensitive": [True]}})
    assert nested.status_code == 422 and set(nested.json()) == {"error"}, nested.text
    assert credentials(http, user) == before
    assert post(http, user)["visibility"] == "public"
