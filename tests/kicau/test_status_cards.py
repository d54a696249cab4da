"""Hydrating a page (kicau/status_cards.py) on the real stack: statuses posted through the API, one deleted
(a tombstone in the cache), one evicted from the cache (loaded back from Cassandra), one unknown. The page as
one JSON array (``render_array``, spliced in place) must be exactly the list of ``render``'s statuses, in the
order asked, without the deleted and unknown ones, each embedding its own author's card."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from kicau import keys
from kicau.account_cards import AccountCards
from kicau.entities import compose_status_list
from kicau.ids import id_from_ms
from kicau.status_cards import UNWRITTEN_GRACE_SECONDS, StatusCards
from kicau.visibility import ANONYMOUS
from stack.services import service_env
from tests.conftest import User

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))


@pytest.fixture
async def cards(stack_cassandra: Any) -> AsyncIterator[StatusCards]:
    redis = Redis(port=REDIS_PORT)
    public_url = service_env().get("KICAU_PUBLIC_URL", "http://127.0.0.1:8080")
    try:
        yield StatusCards(redis, stack_cassandra, AccountCards(redis, stack_cassandra, public_url), public_url)
    finally:
        await redis.aclose()


def _post(http: httpx.Client, user: User, text: str) -> int:
    answer = http.post("/api/v1/statuses", headers=user.auth, json={"status": text})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["id"])


@pytest.fixture
def posted(http: httpx.Client, make_user: Callable[..., User]) -> tuple[list[int], User, User]:
    """Four statuses of two authors through the API, the second deleted."""
    alice, bob = make_user("cards_a"), make_user("cards_b")
    ids = [_post(http, alice, "one"), _post(http, bob, "two"), _post(http, alice, "three"), _post(http, bob, "four")]
    assert http.delete(f"/api/v1/statuses/{ids[1]}", headers=bob.auth).status_code == 200
    return ids, alice, bob


async def test_a_page_array_is_the_rendered_statuses_in_order(
        posted: tuple[list[int], User, User], cards: StatusCards) -> None:
    ids, alice, bob = posted
    deleted, evicted = ids[1], ids[2]
    redis = Redis(port=REDIS_PORT)
    try:
        await redis.delete(keys.status_cache(evicted))
    finally:
        await redis.aclose()
    unknown = ids[-1] + 12345
    asked = [ids[3], unknown, ids[2], ids[1], ids[0]]

    for _ in range(2):  # the second time, the authors are known and their cards come with the statuses
        rendered = await cards.render(asked, ANONYMOUS)
        array = await cards.render_array(asked, ANONYMOUS)
        assert array == compose_status_list(rendered)
        page = msgspec.json.decode(array)
        assert [int(s["id"]) for s in page] == [ids[3], ids[2], ids[0]]
        assert [s["account"]["id"] for s in page] == [bob.id, alice.id, alice.id]
        assert [s["content"] for s in page] == ["<p>four</p>", "<p>three</p>", "<p>one</p>"]

    assert await cards.render_array([], ANONYMOUS) == b"[]"
    assert await cards.render_array([deleted, unknown], ANONYMOUS) == b"[]"


async def test_a_young_status_with_no_row_yet_is_left_out_but_not_tombstoned(
        http: httpx.Client, make_user: Callable[..., User], cards: StatusCards, stack_cassandra: Any) -> None:
    """A status's row and its list entry land in one batch, in no order (services/post/store.py): a reader that
    finds an id younger than the grace period and no row leaves it out without caching a tombstone, so the
    status shows once its row lands. An id older than that with no row is cached as a tombstone."""
    author = make_user("cards_young")
    template = _post(http, author, "the row as it lands")
    row = stack_cassandra.execute("SELECT * FROM statuses WHERE id = %s", (template,)).one()
    young = template + 7  # the same millisecond, another sequence: no row yet
    old = id_from_ms(int((time.time() - 2 * UNWRITTEN_GRACE_SECONDS) * 1000)) + 7
    redis = Redis(port=REDIS_PORT)
    try:
        await redis.delete(keys.status_cache(young), keys.status_cache(old))
        assert await cards.render([young, old], ANONYMOUS) == []
        assert await redis.get(keys.status_cache(young)) is None
        assert await redis.get(keys.status_cache(old)) == b""

        columns = [name for name in row if name != "id"]
        stack_cassandra.execute(
            f"INSERT INTO statuses (id, {', '.join(columns)}) VALUES (%s{', %s' * len(columns)})",
            (young, *(row[name] for name in columns)))
        (shown,) = [msgspec.json.decode(status) for status in await cards.render([young], ANONYMOUS)]
        assert int(shown["id"]) == young and shown["content"] == "<p>the row as it lands</p>"
        assert await redis.get(keys.status_cache(young)) not in (None, b"")
    finally:
        await redis.delete(keys.status_cache(young), keys.status_cache(old))
        await redis.aclose()


async def test_a_load_an_edit_overtakes_caches_nothing(http: httpx.Client, gateway_url: str,
                                                       make_user: Callable[..., User], cards: StatusCards,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that misses the cache loads the status from Cassandra; an edit written, marked and dropped between
    that load and the reader's cache write must not leave the version the reader read in the cache."""
    author = make_user("cards_e")
    status_id = _post(http, author, "as posted")
    redis = Redis(port=REDIS_PORT)
    client = httpx.AsyncClient(base_url=gateway_url, timeout=30)
    try:
        await redis.delete(keys.status_cache(status_id))  # evicted: the next read loads it
        load = cards._load

        async def load_then_edited(wanted: int) -> Any:
            row = await load(wanted)  # the version as posted
            answer = await client.put(f"/api/v1/statuses/{status_id}", headers=author.auth,
                                      json={"status": "as edited"})
            assert answer.status_code == 200, answer.text
            await redis.delete(keys.status_cache(status_id))  # the edit's answer cached it again: as if it had not
            return row

        monkeypatch.setattr(cards, "_load", load_then_edited)
        page = await cards.render_array([status_id], ANONYMOUS)
        assert b"as posted" in page  # this answer was read before the edit: it shows the version before
        assert await redis.get(keys.status_cache(status_id)) is None  # and leaves nothing cached
        shown = (await client.get(f"/api/v1/statuses/{status_id}", headers=author.auth)).json()
        assert shown["content"] == "<p>as edited</p>"
    finally:
        await redis.aclose()
        await client.aclose()
