"""Follow suggestions against the running stack (kicau/follow_suggestions.py): ``GET /api/v2/suggestions`` (and
v1's accounts alone) suggests the accounts those the user follows follow, the most followed first, then the most
followed accounts; never the user, an account it follows, hides or is blocked by, nor one it dismissed
(``DELETE /api/v1/suggestions/:account_id``); bad input is a 4xx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import redis
from mastodon import Mastodon

from kicau import keys
from tests.conftest import User
from tests.graph.test_blocks_and_mutes import follow


def suggested(http: httpx.Client, user: User, version: int = 2) -> list[dict[str, Any]]:
    answer = http.get(f"/api/v{version}/suggestions?limit=80", headers=user.auth)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_suggestions_come_from_friends_and_the_most_followed(gateway_url: str, http: httpx.Client,
                                                             make_user: Callable[..., User],
                                                             stack_redis: redis.Redis) -> None:
    me = make_user("sugg_me")
    friends = [make_user("sugg_f") for _ in range(2)]
    both, one, hidden, blocker = (make_user("sugg_c") for _ in range(4))
    for friend in friends:
        assert follow(http, me, friend).status_code == 200
        for candidate in (both, hidden, blocker):
            assert follow(http, friend, candidate).status_code == 200
    assert follow(http, friends[0], one).status_code == 200
    assert http.post(f"/api/v1/accounts/{hidden.id}/mute", headers=me.auth).status_code == 200
    assert http.post(f"/api/v1/accounts/{me.id}/block", headers=blocker.auth).status_code == 200

    found = suggested(http, me)
    ids = [s["account"]["id"] for s in found]
    assert ids[:2] == [both.id, one.id]  # followed by two friends, then by one
    assert found[0]["sources"][0] == "friends_of_friends" and found[0]["source"] == "past_interactions"
    assert not {me.id, hidden.id, blocker.id, *(f.id for f in friends)} & set(ids)
    assert [a["id"] for a in suggested(http, me, 1)] == ids

    # The most followed come after, from the count each follow keeps.
    assert stack_redis.zscore(keys.most_followed(), both.id) == 2
    newcomer = make_user("sugg_new")
    popular = [s for s in suggested(http, newcomer) if s["account"]["id"] == both.id]
    assert popular == [] or popular[0]["sources"] == ["most_followed"]
    assert all(s["sources"] == ["most_followed"] and s["source"] == "global" for s in suggested(http, newcomer))

    # Dismissed: never again; followed: no longer.
    assert http.delete(f"/api/v1/suggestions/{both.id}", headers=me.auth).status_code == 200
    assert follow(http, me, one).status_code == 200
    assert not {both.id, one.id} & {s["account"]["id"] for s in suggested(http, me)}

    client = Mastodon(access_token=me.token, api_base_url=gateway_url, version_check_mode="none")
    assert [str(a.id) for a in client.suggestions()] == [a["id"] for a in suggested(http, me, 1)][:40]  # 40 by default

    for method, path, code, headers in (("GET", "/api/v2/suggestions", 401, {}),
                                        ("GET", "/api/v2/suggestions?limit=x", 400, me.auth),
                                        ("DELETE", f"/api/v1/suggestions/{both.id}", 401, {}),
                                        ("DELETE", "/api/v1/suggestions/123456789", 404, me.auth)):
        answer = http.request(method, path, headers=headers)
        assert answer.status_code == code and set(answer.json()) == {"error"}, (path, answer.text)
