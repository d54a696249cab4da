"""The Kafka broker is killed (SIGKILL) in the middle of a burst of posts and restarted.

A client that retries every 503 with the same Idempotency-Key ends up with exactly one status per key; every
status answered 2xx reaches the follower's home timeline exactly once; while the broker is down a post
answers 503 within the publish timeout (5 s) plus a margin, never 500 and never a hang.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from services.post.settings import PostSettings
from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults

COUNT = 240
OUTAGE_SECONDS = 8
# The publish timeout plus what the rest of a post costs on a loaded two-core machine.
MARGIN_SECONDS = 4.0


@pytest.mark.timeout(420)
def test_kafka_sigkill_mid_burst_every_key_yields_exactly_one_status(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], faults: Faults
) -> None:
    authors, follower = [make_user("ka") for _ in range(3)], make_user("kf")
    for author in authors:
        harness.follow(http, follower, author)
    harness.materialise(http, follower)
    broker = harness.engine_pid("kafka")
    publish_timeout = PostSettings().publish_timeout_seconds
    rebuilds = harness.timeline_rebuilds()

    burst = harness.Burst(gateway_url, authors, COUNT, threads=4, retry_for=180, text="kafka crash")
    try:
        burst.wait_progress(COUNT // 4)
        killed_at_posts = burst.done
        faults.kill(broker)
        killed_at = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        restart_seconds = harness.stack_up()
        back_at = time.monotonic()
        burst.wait(timeout=240)
    finally:
        burst.stop()

    attempts = list(burst.attempts())
    codes = Counter(a.code for a in attempts)
    failed = [a for a in attempts if a.code != 200]
    slowest = max((a.seconds for a in failed), default=0.0)
    during = [a for a in attempts if killed_at <= a.at <= back_at + 1]
    assert set(codes) <= {200, 503}, f"only 200 or 503 may answer a post during a broker outage: {codes}, " \
                                     f"e.g. {[a.error for a in failed if a.code != 503][:3]}"
    assert codes[503] > 0, "no post met the outage; the test proved nothing"
    assert slowest <= publish_timeout + MARGIN_SECONDS, f"a failed post took {slowest:.1f}s"
    unfinished = [p.marker for p in burst.posts if not p.succeeded]
    assert not unfinished, f"{len(unfinished)} posts never succeeded on retry: {unfinished[:5]}"

    # Exactly one status per key in the record (Cassandra, through the author's statuses)...
    statuses = [s for author in authors for s in harness.account_statuses(http, author.id)]
    wanted = {p.marker for p in burst.posts}
    record = harness.tally(wanted, [m for m in (harness.marker_of(s["content"]) for s in statuses) if m])
    # ...and in the follower's home timeline, by id and by content (a status whose event was published but
    # whose request was answered 503 and rolled back must not show up next to its retry).
    expected = burst.succeeded_ids()
    redis = harness.redis_client()
    harness.wait_for(lambda: not harness.tally(expected, harness.redis_home_ids(redis, follower)).lost, 120,
                     "every 2xx status in the follower's home timeline")
    home = harness.home_statuses(http, follower)
    rebuilt = harness.timeline_rebuilds() - rebuilds
    by_id = harness.tally(expected, [s["id"] for s in home])
    by_marker = harness.tally(wanted, [m for m in (harness.marker_of(s["content"]) for s in home) if m])
    retried = sum(1 for p in burst.posts if len(p.attempts) > 1)
    harness.figure(
        f"Kafka SIGKILL at {killed_at_posts} of {COUNT} posts, back {back_at - killed_at:.1f}s later (stack up "
        f"{restart_seconds:.1f}s): {codes[503]} answers 503 (slowest {slowest:.1f}s, limit "
        f"{publish_timeout + MARGIN_SECONDS:.0f}s), {len(during)} attempts during the outage, {retried} keys "
        f"retried; record: {record}; home by id: {by_id}; home by key: {by_marker}; timeline rebuilds {rebuilt:.0f}"
    )
    assert not record.lost and not record.duplicated and not record.unexpected, f"record: {record}"
    assert not by_id.lost and not by_id.duplicated and not by_id.unexpected, f"home by id: {by_id}"
    assert not by_marker.lost and not by_marker.duplicated, f"home by key: {by_marker}"
    assert rebuilt == 0, "the follower's timeline was rebuilt: the fanout's writes were not what got counted"
