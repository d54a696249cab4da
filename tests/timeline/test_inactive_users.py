"""Inactive readers cost the fanout nothing: home timelines expire when unread for ``inactive_days``, the fanout
writes only into timelines that exist, and the next read rebuilds the timeline from Cassandra, exactly."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from kicau import keys
from kicau.settings import CommonSettings
from tests.conftest import User, eventually
from tests.timeline.test_home_invariant import home_ids


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis(port=int(os.environ.get("KICAU_REDIS_PORT", "6379")))
    yield client
    client.close()


def test_expired_timeline_is_skipped_then_rebuilt(
    http: httpx.Client, make_user: Callable[..., User], redis_client: redis.Redis
) -> None:
    author, active, inactive = make_user("ia"), make_user("iact"), make_user("iin")
    for reader in (active, inactive):
        assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    first = http.post("/api/v1/statuses", headers=author.auth, data={"status": "before"}).json()["id"]
    for reader in (active, inactive):
        eventually(lambda r=reader: home_ids(http, r) == [first])  # type: ignore[misc]

    # Reading sets the expiry that makes an unread timeline go away on its own.
    ttl = redis_client.ttl(keys.home_feed(int(active.id)))
    inactive_seconds = CommonSettings().inactive_days * 86400
    assert 0 < ttl <= inactive_seconds

    # The inactive reader's timeline expires (simulated by removing it now).
    redis_client.delete(keys.home_feed(int(inactive.id)))
    later = [http.post("/api/v1/statuses", headers=author.auth, data={"status": f"after {n}"}).json()["id"]
             for n in range(3)]
    eventually(lambda: home_ids(http, active) == [*reversed(later), first])
    # The fanout skipped the expired timeline entirely: no key was created for the inactive reader.
    assert not redis_client.exists(keys.home_feed(int(inactive.id)))
    # Their next read rebuilds it from Cassandra, with everything they missed.
    assert home_ids(http, inactive) == [*reversed(later), first]
    assert redis_client.exists(keys.home_feed(int(inactive.id)))


def test_a_status_posted_while_a_home_timeline_is_rebuilt_is_not_lost(
    http: httpx.Client, make_user: Callable[..., User], redis_client: redis.Redis
) -> None:
    """A status fanned out while a read rebuilds its reader's lost timeline: the fanout's push, made while the
    rebuild reads Cassandra or between its read and its write, lands in the timeline the rebuild made pending
    and is merged with what it read (kicau/feeds.py, ``_BEGIN_REBUILD``). For a home timeline the window was
    narrow before that (the post service writes the record before the event exists), and this test did not
    catch it in three runs without the pending timeline; tests/kicau/test_feed_lists.py makes the interleaving
    exact, and the public timeline's test (wider window) caught it in every run."""
    author, reader = make_user("hrace_a"), make_user("hrace_r")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    posted: list[str] = []
    for attempt in range(8):
        redis_client.delete(keys.home_feed(int(reader.id)))
        poster = threading.Thread(target=lambda n=attempt: posted.append(
            http.post("/api/v1/statuses", headers=author.auth, data={"status": f"raced {n}"}).json()["id"]))
        poster.start()
        for _ in range(4):  # reads (each counted by the reader's rate limit) before, during and after the fanout
            home_ids(http, reader)
            time.sleep(0.004 * attempt)
        poster.join()
        newest_first = posted[::-1]

        def all_there(want: list[str] = newest_first) -> bool:
            return home_ids(http, reader)[:len(want)] == want

        assert eventually(all_there, timeout=10.0, interval=0.5), (attempt, newest_first, home_ids(http, reader))
