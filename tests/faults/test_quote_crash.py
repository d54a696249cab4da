"""A quote revoked by its quoted status's author while the post service dies (``os._exit`` at a crash point, as a
SIGKILL would end it) after Cassandra took the revoke and before the cached values were dropped
(services/post/service.py, ``revoke_quote``). The client gets a Mastodon error, never a 500; once `stack up` has
restarted the service, its retry finds the quote revoked and drops the cached values the crash left: the quoting
status shows its quote revoked, and the quoted status counts and lists it no more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kicau import keys
from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.post.test_quotes import post, read


@pytest.mark.timeout(300)
def test_a_revoke_cut_short_by_a_crash_is_finished_by_its_retry(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    author, quoter = make_user("qrc_a"), make_user("qrc_q")
    quoted = post(http, author, "quote me")
    quote = post(http, quoter, "quoting", quoted_status_id=quoted["id"])
    # Both cached as they are before the revoke (a read caches them).
    assert read(http, quote["id"], author)["quote"]["state"] == "accepted"
    assert read(http, quoted["id"], author)["quotes_count"] == 1

    path = f"/api/v1/statuses/{quoted['id']}/quotes/{quote['id']}/revoke"
    broken, restart_seconds = faults.crash_during("post", "post.quote.revoked",
                                                  lambda: http.post(path, headers=author.auth))
    retried = http.post(path, headers=author.auth)
    assert retried.status_code == 200 and retried.json()["quote"] == {"state": "revoked", "quoted_status": None}
    assert read(http, quote["id"], quoter)["quote"]["state"] == "revoked"
    assert read(http, quoted["id"], author)["quotes_count"] == 0
    assert http.get(f"/api/v1/statuses/{quoted['id']}/quotes", headers=author.auth).json() == []
    harness.figure(f"post service died at post.quote.revoked: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the quote revoked, uncounted and unlisted")


@pytest.mark.timeout(300)
def test_a_quote_kafka_does_not_take_is_rolled_back_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, stack_redis: Any,
) -> None:
    """Kafka paused while a quote is published: answered 503 and rolled back, its place among the quoted status's
    quotes with it (written beside its row): the quoted status neither counts nor lists it."""
    author, quoter = make_user("qrk_a"), make_user("qrk_q")
    quoted = post(http, author, "quote me")
    broker = harness.engine_pid("kafka")
    faults.pause(broker)
    try:
        refused = http.post("/api/v1/statuses", headers=quoter.auth,
                            json={"status": "never published", "quoted_status_id": quoted["id"]})
    finally:
        faults.resume(broker)
    assert refused.status_code == 503 and set(refused.json()) == {"error"}, refused.text
    assert http.get(f"/api/v1/statuses/{quoted['id']}/quotes", headers=author.auth).json() == []
    # Counted from Cassandra once no longer cached: the rolled-back quote's row went with it.
    stack_redis.delete(keys.status_cache(int(quoted["id"])))
    assert read(http, quoted["id"], author)["quotes_count"] == 0
    harness.figure("Kafka paused during a quote: answered 503, the quoted status counts and lists nothing")
