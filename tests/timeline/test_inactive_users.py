"""Inactive readers cost the fanout nothing: home timelines expire when unread for ``inactive_days``, the fanout
writes only into timelines that exist, and the next read rebuilds the timeline from Cassandra, exactly."""

from __future__ import annotations

import os
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
