"""Hashtags against the running stack: a status's ``tags`` and content links (kicau/hashtags.py), its hashtag
timelines (``GET /api/v1/timelines/tag/:hashtag``, kicau/tag_timeline.py) with Mastodon's cursors and ``any[]``,
``all[]``, ``none[]``, ``local``, ``remote``, ``only_media``; only public statuses, never a reblog; a deleted
status leaves them; a profile's ``tagged``; a hashtag's Tag and its recent use (kicau/tag_history.py), found by
search too; and bad input answered 4xx."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import redis
from cassandra import ConsistencyLevel
from cassandra.cluster import Session

from kicau import hashtags, keys, tag_history
from kicau.tag_timeline import TaggedStatuses, day_of
from tests.conftest import User, eventually
from tests.timeline.test_visibility import post


def tagged(http: httpx.Client, tag: str, query: str = "", reader: User | None = None) -> httpx.Response:
    answer = http.get(f"/api/v1/timelines/tag/{tag}{query}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return answer


def ids(answer: httpx.Response) -> list[str]:
    statuses: list[dict[str, Any]] = answer.json()
    return [s["id"] for s in statuses]


def fresh_tag() -> str:
    """A hashtag no other test uses (the tables outlive a test)."""
    return "t" + uuid.uuid4().hex[:12]


def test_a_status_names_its_hashtags_and_links_them(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author = make_user("tag_shape")
    tag = fresh_tag()
    answer = http.post("/api/v1/statuses", headers=author.auth,
                       json={"status": f"Hello #{tag.upper()} and #Kicau, again #kicau; not a#b nor #123"})
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["tags"] == [{"name": tag, "url": f"{status['url'].split('/@')[0]}/tags/{tag}"},
                              {"name": "kicau", "url": f"{status['url'].split('/@')[0]}/tags/kicau"}]
    content = status["content"]
    assert f'<a href="{status["tags"][0]["url"]}" class="mention hashtag" rel="tag">#<span>{tag.upper()}</span></a>' \
        in content
    assert content.count('class="mention hashtag"') == 3  # the text's spelling kept, each occurrence linked
    assert "a#b" in content and "#123" in content
    # The same status as every reader gets it.
    assert http.get(f"/api/v1/statuses/{status['id']}").json()["tags"] == status["tags"]


def test_hashtag_timeline_public_statuses_newest_first(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, reader = make_user("tag_a"), make_user("tag_r")
    tag, other = fresh_tag(), fresh_tag()
    first = post(http, author, f"one #{tag}")
    post(http, author, f"unlisted #{tag}", visibility="unlisted")
    post(http, author, f"followers only #{tag}", visibility="private")
    post(http, author, f"@{reader.username} direct #{tag}", visibility="direct")
    both = post(http, author, f"two #{tag} #{other}")
    doomed = post(http, author, f"deleted #{tag}")
    third = post(http, author, f"three #{tag.upper()}")
    only_other = post(http, author, f"just #{other}")
    assert http.delete(f"/api/v1/statuses/{doomed}", headers=author.auth).status_code == 200
    # A reblog of a tagged status is not listed again (Mastodon lists the status, not its reblogs).
    assert http.post(f"/api/v1/statuses/{first}/reblog", headers=reader.auth).status_code == 200

    newest = [third, both, first]
    assert eventually(lambda: ids(tagged(http, tag, "?limit=40")) == newest or None), ids(tagged(http, tag))
    assert ids(tagged(http, tag.upper())) == newest  # any case
    assert ids(tagged(http, f"%23{tag}")) == newest  # with its '#'
    assert ids(tagged(http, tag, "", reader)) == newest  # a user's token changes nothing
    assert ids(tagged(http, tag, "?local=true")) == newest
    assert tagged(http, tag, "?remote=true").json() == []
    assert tagged(http, tag, "?only_media=1").json() == []

    # Cursors.
    assert ids(tagged(http, tag, f"?max_id={third}")) == [both, first]
    assert ids(tagged(http, tag, f"?since_id={first}")) == [third, both]
    assert ids(tagged(http, tag, f"?min_id={first}&limit=1")) == [both]
    paged = tagged(http, tag, "?limit=1")
    assert ids(paged) == [third]
    following = re.search(r'<([^>]+)>; rel="next"', paged.headers["link"])
    assert following and f"max_id={third}" in following.group(1) and f"/timelines/tag/{tag}?" in following.group(1)
    assert ids(http.get(following.group(1))) == [both]

    # any[], all[], none[], as Mastodon reads them (with or without the brackets).
    assert eventually(lambda: ids(tagged(http, other)) == [only_other, both] or None)
    assert ids(tagged(http, tag, f"?any[]={other}")) == [only_other, third, both, first]
    assert ids(tagged(http, tag, f"?any={other}&limit=2")) == [only_other, third]
    assert ids(tagged(http, tag, f"?all[]={other}")) == [both]
    assert ids(tagged(http, tag, f"?none[]={other}")) == [third, first]
    assert tagged(http, tag, "?all[]=!!").json() == []  # no hashtag is all of those


def test_a_profile_lists_the_statuses_with_a_hashtag(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author = make_user("tag_profile")
    tag = fresh_tag()
    with_tag = post(http, author, f"with #{tag}")
    post(http, author, "without")
    private = post(http, author, f"followers only #{tag}", visibility="private")
    page = http.get(f"/api/v1/accounts/{author.id}/statuses?tagged={tag.upper()}", headers=author.auth)
    assert page.status_code == 200, page.text
    assert ids(page) == [private, with_tag]  # the author sees its own followers-only status
    assert ids(http.get(f"/api/v1/accounts/{author.id}/statuses?tagged=%23{tag}")) == [with_tag]
    assert http.get(f"/api/v1/accounts/{author.id}/statuses?tagged=!!").json() == []


def test_names_that_are_no_hashtags_have_empty_timelines(http: httpx.Client) -> None:
    for name in ("123", "a%20b", "%E2%80%8B", "x" * 101, "!!", "%25"):
        answer = http.get(f"/api/v1/timelines/tag/{name}")
        assert answer.status_code == 200 and answer.json() == [], (name, answer.text)


def test_bad_cursors_and_limits_answer_400(http: httpx.Client) -> None:
    for query in ("?max_id=abc", "?since_id=-1", "?min_id=99999999999999999999", "?limit=abc"):
        answer = http.get(f"/api/v1/timelines/tag/kicau{query}")
        assert 400 <= answer.status_code < 500 and "error" in answer.json(), (query, answer.text)


def test_pages_walk_across_days_and_skip_empty_ones(stack_cassandra: Session) -> None:
    """The store alone, on the real Cassandra: statuses on three days far apart (ids made for those days), read
    newest first and, after min_id, oldest first; the days between hold nothing and are never read."""
    store = TaggedStatuses(stack_cassandra, ConsistencyLevel.ONE)  # the stack's single node
    tag = fresh_tag()
    day_ms = 86_400_000
    base = 1_700_000_000_000
    ids_by_day = [[((base + d * 40 * day_ms + i) << 16) for i in range(3)] for d in range(3)]
    every = sorted((i for day in ids_by_day for i in day), reverse=True)
    assert len({day_of(i) for i in every}) == 3

    async def scenario() -> None:
        await store.apply([(tag, i) for i in every], [])
        assert await store.page(tag, limit=40) == every
        assert await store.page(tag, limit=4) == every[:4]
        assert await store.page(tag, max_id=every[3], limit=4) == every[4:8]
        assert await store.page(tag, since_id=every[5], limit=40) == every[:5]
        assert await store.page(tag, min_id=every[-1], limit=4) == every[-5:-1]
        assert await store.page(tag, min_id=every[-1], max_id=every[2], limit=40) == every[3:-1]
        assert await store.page(tag, max_id=every[-1], limit=40) == []
        await store.apply([], [(tag, every[0]), (tag, every[4])])
        assert await store.page(tag, limit=40) == [i for i in every if i not in (every[0], every[4])]
        assert await store.page(hashtags.normal(tag.upper()), limit=1) == [every[1]]

    asyncio.run(scenario())


def test_a_hashtag_and_its_recent_use(http: httpx.Client, make_user: Callable[..., User]) -> None:
    """``GET /api/v1/tags/:name``: 404 until a public status carries the hashtag; then Mastodon's Tag with seven
    days of history, today first, counting public statuses and their accounts."""
    ann, bob = make_user("tag_use_a"), make_user("tag_use_b")
    tag = fresh_tag()
    missing = http.get(f"/api/v1/tags/{tag}")
    assert missing.status_code == 404 and set(missing.json()) == {"error"}, missing.text
    post(http, ann, f"first #{tag}")
    post(http, ann, f"second #{tag.upper()}")
    post(http, bob, f"bob's #{tag}")
    post(http, bob, f"unlisted #{tag}", visibility="unlisted")  # on no hashtag timeline, and not counted

    def counted() -> dict[str, Any] | None:
        answer = http.get(f"/api/v1/tags/%23{tag.upper()}")
        if answer.status_code != 200:
            return None
        body: dict[str, Any] = answer.json()
        return body if sum(int(day["uses"]) for day in body["history"]) == 3 else None

    body = eventually(counted)
    assert body is not None
    assert (body["name"], body["url"].endswith(f"/tags/{tag}"), "following" in body) == (tag, True, False)
    days = [int(day["day"]) for day in body["history"]]
    assert len(days) == 7 and all(a - b == 86_400 for a, b in itertools.pairwise(days))
    assert days[0] <= time.time() < days[0] + 86_400  # today first
    used = [(day["uses"], day["accounts"]) for day in body["history"] if day["uses"] != "0"]
    # All on one day, unless the statuses straddled midnight (then an account may count on both days).
    assert used == [("3", "2")] or (len(used) == 2 and sum(int(a) for _, a in used) in (2, 3)), used
    assert http.get(f"/api/v1/tags/{tag}", headers=ann.auth).json()["following"] is False
    for name in ("123", "a%20b", "!!"):
        answer = http.get(f"/api/v1/tags/{name}")
        assert answer.status_code == 404 and set(answer.json()) == {"error"}, (name, answer.text)

    # Search finds it by name, with or without '#', alone or beside accounts.
    for query in (f"?q=%23{tag}&type=hashtags", f"?q={tag.upper()}", f"?q={tag}&type=hashtags&limit=5"):
        found = http.get(f"/api/v2/search{query}")
        assert found.status_code == 200, found.text
        assert [t["name"] for t in found.json()["hashtags"]] == [tag], query
    assert http.get(f"/api/v2/search?q={tag}&type=accounts").json()["hashtags"] == []
    assert http.get(f"/api/v2/search?q={fresh_tag()}&type=hashtags").json()["hashtags"] == []


def test_counting_a_use_again_changes_nothing(stack_redis: redis.Redis) -> None:
    """The fanout's counts survive its replays: a batch applied again after a crash counts no status twice."""
    tag = fresh_tag()
    status_id = int(time.time() * 1000) << 16
    packed = tag_history.count_commands([(tag, status_id, 7), (tag, status_id + 1, 7)])

    def run(command: bytes) -> Any:
        """One packed command (RESP: the arguments are every other line after the first two)."""
        return stack_redis.execute_command(*command.split(b"\r\n")[2::2])  # type: ignore[no-untyped-call]

    for _ in range(2):
        for command in packed:
            run(command)
    days = tag_history.history_days()
    counts = [run(command) for command in tag_history.history_commands(tag, days)]
    assert counts[:2] == [2, 1] and set(counts[2:]) == {0}
    assert 0 < stack_redis.ttl(keys.tag_uses(tag, days[0])) <= 8 * 86_400


def test_search_suggests_the_hashtags_a_query_begins(http: httpx.Client, make_user: Callable[..., User],
                                                     stack_redis: redis.Redis) -> None:
    """``GET /api/v2/search`` suggests the hashtags whose names begin with the query, the one it names first, as
    Mastodon does; the index of names, lost with Redis, is rebuilt from Cassandra on the next search."""
    author = make_user("tag_sugg")
    stem = fresh_tag()
    for name in (f"{stem}b", stem, f"{stem}a", f"{stem}_c"):
        post(http, author, f"suggest #{name}")
    want = [stem, f"{stem}_c", f"{stem}a", f"{stem}b"]  # the query's own first, then by name

    def suggested(query: str) -> list[str]:
        answer = http.get(f"/api/v2/search?{query}")
        assert answer.status_code == 200, answer.text
        return [tag["name"] for tag in answer.json()["hashtags"]]

    assert eventually(lambda: suggested(f"q={stem}&type=hashtags") == want or None), suggested(f"q={stem}")
    assert suggested(f"q=%23{stem.upper()}") == want
    assert suggested(f"q={stem}&type=hashtags&limit=2") == want[:2]
    assert suggested(f"q={stem}a") == [f"{stem}a"]
    assert suggested("q=%21%21&type=hashtags") == []  # nothing a hashtag's name can begin with
    stack_redis.delete(keys.tag_names())
    assert suggested(f"q={stem}&type=hashtags") == want
