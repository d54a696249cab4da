"""Trending hashtags against the running stack (kicau/tag_trends.py): ``GET /api/v1/trends/tags`` (and Mastodon's
older ``/api/v1/trends``) ranks the hashtags public statuses use more than usual, once enough accounts used them,
as Tags with their history; ``offset`` pages with a Link header; counting again after a fanout replay changes
nothing; bad input is a 400."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import redis
import redis.asyncio
from mastodon import Mastodon

from kicau import keys, tag_trends
from kicau.tag_timeline import DAY_MS
from stack.services import service_env
from tests.conftest import User, eventually
from tests.graph.test_admin import admin_app, staff  # noqa: F401  (fixtures)
from tests.timeline.test_tag_timeline import fresh_tag
from tests.timeline.test_visibility import post


def every_trend(http: httpx.Client, path: str = "/api/v1/trends/tags") -> list[dict[str, Any]]:
    """Every trending hashtag, page by page through the Link headers."""
    found: list[dict[str, Any]] = []
    url = f"{path}?limit=20"
    while url:
        answer = http.get(url)
        assert answer.status_code == 200, answer.text
        found += answer.json()
        url = answer.links.get("next", {}).get("url", "")
    return found


def test_hashtags_enough_accounts_use_trend(gateway_url: str, http: httpx.Client,
                                            make_user: Callable[..., User]) -> None:
    users = [make_user("trend_u") for _ in range(6)]
    most, enough, too_few, unlisted = (fresh_tag() for _ in range(4))
    for user in users:
        post(http, user, f"everyone says #{most}")
    for user in users[:tag_trends.TREND_MIN_ACCOUNTS]:
        post(http, user, f"five say #{enough}")
        post(http, user, f"quietly #{unlisted}", visibility="unlisted")  # public statuses alone count
    for user in users[:tag_trends.TREND_MIN_ACCOUNTS - 1]:
        post(http, user, f"four say #{too_few}")
    post(http, users[0], f"and again #{enough}")  # an account counts once

    def ranked() -> list[str]:
        names = [t["name"] for t in every_trend(http)]
        return names if most in names and enough in names else []

    names = eventually(ranked)  # each timeline process ranks again at most every 15 s
    assert names.index(most) < names.index(enough)
    assert too_few not in names and unlisted not in names
    trend = next(t for t in every_trend(http) if t["name"] == enough)
    assert trend["url"].endswith(f"/tags/{enough}") and len(trend["history"]) == 7
    assert sum(int(day["accounts"]) for day in trend["history"]) >= tag_trends.TREND_MIN_ACCOUNTS
    assert [t["name"] for t in every_trend(http, "/api/v1/trends")] == [t["name"] for t in every_trend(http)]
    # With a user token, whether the user follows each (as every Tag).
    mine = http.get("/api/v1/trends/tags?limit=20", headers=users[0].auth).json()
    assert all(t["following"] is False for t in mine)

    # Paged by offset: one at a time, next and prev links; past the end, nothing.
    first = http.get("/api/v1/trends/tags?limit=1")
    assert len(first.json()) == 1 and "prev" not in first.links and "offset=1" in first.links["next"]["url"]
    second = http.get(first.links["next"]["url"].removeprefix(gateway_url))
    assert second.json()[0]["name"] == names[1] and "offset=0" in second.links["prev"]["url"]
    assert http.get("/api/v1/trends/tags?offset=999999999").json() == []

    client = Mastodon(api_base_url=gateway_url, version_check_mode="none")
    assert [t.name for t in client.trending_tags(limit=20)] == names[:20]


def test_trends_refuse_bad_input(http: httpx.Client) -> None:
    for query in ("limit=many", "offset=-1", "offset=x", "offset=1234567890"):
        answer = http.get(f"/api/v1/trends/tags?{query}")
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)
    answer = http.get("/api/v1/trends/tags", headers={"Authorization": "Bearer nonsense"})
    assert answer.status_code == 401 and set(answer.json()) == {"error"}, answer.text


async def _count_twice(url: str, tag: str, status_id: int) -> None:
    client = redis.asyncio.Redis.from_url(url)
    try:
        for _ in range(2):
            await tag_trends.count_uses(client, [(tag, status_id, 7), (tag, status_id + 1, 8)])
    finally:
        await client.aclose()


def test_counting_a_use_again_changes_no_score(stack_redis: redis.Redis) -> None:
    """A batch applied again after a crash raises no hashtag's score: its accounts are counted as distinct."""
    tag = fresh_tag()
    status_id = int(time.time() * 1000) << 16
    asyncio.run(_count_twice(service_env()["KICAU_REDIS_URL"], tag, status_id))
    day = int(time.time() * 1000) // DAY_MS
    assert stack_redis.zscore(keys.tag_trend_day(day), tag) == 2
    assert 0 < stack_redis.ttl(keys.tag_trend_day(day)) <= 3 * 86_400


def test_statuses_enough_accounts_favourite_or_reblog_trend(
        gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    """``GET /api/v1/trends/statuses``: a public status favourited and reblogged by five accounts trends, one with
    four does not, nor a reply, nor one with a content warning, nor one of an account staff marked sensitive; a
    reader does not see those of an account it blocks; a favourite repeated counts once."""
    author, other, marked_author = make_user("trend_sa"), make_user("trend_so"), make_user("trend_sm")
    fans = [make_user("trend_sf") for _ in range(6)]
    most = post(http, author, "liked by everyone")
    enough = post(http, other, "liked by five")
    too_few = post(http, author, "liked by four")
    reply = post(http, other, "a reply", in_reply_to_id=most)
    warned = post(http, other, "behind a warning", spoiler_text="cw")
    marked = post(http, marked_author, "liked by five, from an account staff marked sensitive")
    _, moderator = staff("trend_m", "Moderator")
    sensitized = http.post(f"/api/v1/admin/accounts/{marked_author.id}/action", headers=moderator,
                           json={"type": "sensitive", "send_email_notification": False})
    assert sensitized.status_code == 200, sensitized.text

    def engage(status: str, users: list[User], verb: str = "favourite") -> None:
        for user in users:
            answer = http.post(f"/api/v1/statuses/{status}/{verb}", headers=user.auth)
            assert answer.status_code == 200, answer.text

    engage(most, fans[:5])
    engage(most, fans[5:], "reblog")
    engage(enough, fans[:4])
    engage(enough, fans[:1])  # again: one favourite
    engage(enough, fans[4:5], "reblog")
    engage(too_few, fans[:4])
    engage(too_few, fans[:4])
    engage(reply, fans[:5])
    engage(warned, fans[:5])
    engage(marked, fans[:5])

    def trending(reader: User | None = None) -> list[str]:
        found: list[str] = []
        url = "/api/v1/trends/statuses?limit=40"
        while url:
            answer = http.get(url, headers=reader.auth if reader else {})
            assert answer.status_code == 200, answer.text
            found += [s["id"] for s in answer.json()]
            url = answer.links.get("next", {}).get("url", "").removeprefix(gateway_url)
        return found

    def ranked_both() -> list[str]:
        found = trending()
        return found if most in found and enough in found else []

    ids = eventually(ranked_both)  # each timeline process ranks again at most every 15 s
    assert ids.index(most) < ids.index(enough)
    assert too_few not in ids and reply not in ids and warned not in ids and marked not in ids
    # As each reader may see them: one that blocks the other author does not see its status.
    blocker = make_user("trend_sb")
    assert http.post(f"/api/v1/accounts/{other.id}/block", headers=blocker.auth).status_code == 200
    assert enough not in trending(blocker) and most in trending(blocker)
    client = Mastodon(api_base_url=gateway_url, version_check_mode="none")
    assert [str(s.id) for s in client.trending_statuses(limit=40)] == ids[:40]
    for query in ("limit=x", "offset=y"):
        answer = http.get(f"/api/v1/trends/statuses?{query}")
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)


def test_trending_links_paging_is_checked(gateway_url: str, http: httpx.Client) -> None:
    """``GET /api/v1/trends/links`` (Elk's and Phanpy's news tab; what trends: tests/post/test_link_previews.py):
    bad paging is a 400 as on the other trends; Mastodon.py reads it."""
    assert isinstance(Mastodon(api_base_url=gateway_url, version_check_mode="none").trending_links(), list)
    for query in ("limit=x", "offset=y"):
        answer = http.get(f"/api/v1/trends/links?{query}")
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)
