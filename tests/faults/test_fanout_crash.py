"""Fanout workers crash (SIGKILL) or stall past their session timeout (SIGSTOP) in the middle of a burst of
posts: every status answered 2xx still lands in the follower's home timeline exactly once, and the
consumer group's lag returns to 0. A killed worker's replacement replays what was applied but not committed;
the follower's open stream still gets each status once, its notifications hold each mention once, and the
hashtag every status carries lists each once (the first test).

The follower's timeline is materialised before the burst and never rebuilt during the test (the rebuild
counter must not move), so what is counted is what the fanout wrote. Bursts stay below the home-timeline cap
(800), so "exactly once" covers the whole burst; they are spread over several authors to stay below the
gateway's per-account request limit.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.timeline.test_notifications import accept_private_mentions

PER_AUTHOR = 100


def _world(http: httpx.Client, make_user: Callable[..., User], authors: int, prefix: str) -> tuple[list[User], User]:
    writers = [make_user(f"{prefix}a") for _ in range(authors)]
    follower = make_user(f"{prefix}f")
    for author in writers:
        harness.follow(http, follower, author)
    harness.materialise(http, follower)
    return writers, follower


def _converge(http: httpx.Client, follower: User, burst: harness.Burst, since: float,
              timeout: float = 150.0) -> tuple[harness.Tally, float, float]:
    """Wait for lag 0 and the whole burst in the follower's timeline (in Redis), then read it back through the
    API; returns the API's tally and how long lag 0 and the full timeline took after ``since``."""
    expected = burst.succeeded_ids()
    redis = harness.redis_client()
    harness.wait_for(lambda: harness.consumer_lag() == 0, timeout, "consumer lag back to 0")
    lag_at = time.monotonic() - since
    harness.wait_for(lambda: not harness.tally(expected, harness.redis_home_ids(redis, follower)).lost, 60,
                     "every 2xx status in the follower's home timeline")
    home_at = time.monotonic() - since
    return harness.tally(expected, harness.home_ids(http, follower)), lag_at, home_at


def _walked(http: httpx.Client, url: str, pick: Callable[[dict[str, Any]], str],
            headers: dict[str, str] | None = None) -> list[str]:
    """``pick`` of every item of a paged list, walked through the API's Link header."""
    found: list[str] = []
    next_url: str | None = url
    while next_url:
        answer = http.get(next_url, headers=headers or {})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += [pick(item) for item in page]
        link = re.search(r'<([^>]+)>; rel="next"', answer.headers.get("link", ""))
        next_url = link.group(1) if link and page else None
    return found


def _on_hashtag_timeline(http: httpx.Client, tag: str) -> list[str]:
    """Every status on a hashtag's timeline (kicau/tag_timeline.py)."""
    return _walked(http, f"/api/v1/timelines/tag/{tag}?limit=40", lambda s: str(s["id"]))


def _mentioned_in_notifications(http: httpx.Client, reader: User) -> list[str]:
    """The status of every mention notification the reader has."""
    return _walked(http, "/api/v1/notifications?types[]=mention&limit=80", lambda n: str(n["status"]["id"]),
                   reader.auth)


@pytest.mark.timeout(420)
def test_fanout_sigkill_mid_burst_loses_and_duplicates_nothing(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], faults: Faults
) -> None:
    authors, follower = _world(http, make_user, 4, "f")
    count = PER_AUTHOR * len(authors)
    victim = harness.service_pid("fanout")
    rebuilds = harness.timeline_rebuilds()
    stream = harness.Listener(gateway_url, follower)
    stream.start()
    assert stream.opened.wait(30), "the follower's stream did not open"

    # Each status mentions the follower: its notification (kicau/notifications.py) is recorded in the same batch
    # as its timeline writes, and must come through the crash exactly once too; and each carries a hashtag of
    # its own, whose timeline (written by the fanout in Cassandra, kicau/tag_timeline.py) must hold it too.
    tag = f"crash{uuid.uuid4().hex[:10]}"
    burst = harness.Burst(gateway_url, authors, count, threads=4, text=f"fanout crash @{follower.username} #{tag}")
    try:
        burst.wait_progress(count // 2)
        killed_at_posts = burst.done
        faults.kill(victim)
        killed_at = time.monotonic()
        restart_seconds = harness.stack_up()
        burst.wait()
    finally:
        burst.stop()

    assert burst.codes() == {200: count}, f"posting does not depend on the fanout: {burst.codes()}"
    result, lag_at, home_at = _converge(http, follower, burst, killed_at)
    rebuilt = harness.timeline_rebuilds() - rebuilds
    expected = burst.succeeded_ids()
    harness.wait_for(lambda: set(expected) <= set(stream.updates), 60, "every 2xx status on the follower's stream")
    time.sleep(1.0)  # anything replayed twice would follow at once
    stream.closing.set()
    on_stream = harness.tally(expected, stream.updates)
    notified = harness.tally(expected, _mentioned_in_notifications(http, follower))
    tagged = harness.tally(expected, _on_hashtag_timeline(http, tag))
    harness.figure(
        f"fanout SIGKILL at {killed_at_posts} of {count} posts: {result}; on the follower's stream: {on_stream}; "
        f"in the follower's notifications: {notified}; on the hashtag's timeline: {tagged}; "
        f"restarted in {restart_seconds:.1f}s, "
        f"consumer lag 0 {lag_at:.1f}s and the whole burst in the follower's timeline {home_at:.1f}s after the "
        f"kill (the burst itself ended {(burst.finished or killed_at) - killed_at:.1f}s after it); "
        f"timeline rebuilds {rebuilt:.0f}"
    )
    assert not result.lost and not result.duplicated and not result.unexpected, result
    assert not on_stream.lost and not on_stream.duplicated and not on_stream.unexpected, on_stream
    assert not notified.lost and not notified.duplicated and not notified.unexpected, notified
    assert not tagged.lost and not tagged.duplicated and not tagged.unexpected, tagged
    assert rebuilt == 0, "the follower's timeline was rebuilt: the fanout's writes were not what got counted"


def _conversations_of(http: httpx.Client, reader: User) -> list[str]:
    """The last status of every conversation the reader has (kicau/conversations.py)."""
    return _walked(http, "/api/v1/conversations?limit=40", lambda c: str(c["last_status"]["id"]), reader.auth)


@pytest.mark.timeout(300)
def test_fanout_sigkill_mid_burst_of_direct_statuses_keeps_each_conversation_once(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], faults: Faults
) -> None:
    """Direct statuses to one account, each beginning a conversation of its own: the conversations the fanout
    writes (a read and a logged batch each, kicau/conversations.py) come through its crash and replay each once,
    for the mentioned account and for the author, unread for the one and read for the other."""
    writers = [make_user("dca") for _ in range(2)]
    reader = make_user("dcr")
    accept_private_mentions(http, reader)  # it follows neither writer (kicau/notification_policies.py)
    count = 120
    victim = harness.service_pid("fanout")
    burst = harness.Burst(gateway_url, writers, count, threads=4, text=f"direct crash @{reader.username}",
                          visibility="direct")
    try:
        burst.wait_progress(count // 2)
        killed_at_posts = burst.done
        faults.kill(victim)
        restart_seconds = harness.stack_up()
        burst.wait()
    finally:
        burst.stop()
    assert burst.codes() == {200: count}, burst.codes()
    expected = burst.succeeded_ids()
    harness.wait_for(lambda: harness.consumer_lag() == 0, 150, "consumer lag back to 0")
    harness.wait_for(lambda: not harness.tally(expected, _conversations_of(http, reader)).lost, 60,
                     "every 2xx direct status in a conversation of the reader's")
    received = harness.tally(expected, _conversations_of(http, reader))
    written = harness.tally(expected, [s for w in writers for s in _conversations_of(http, w)])
    harness.figure(f"fanout SIGKILL at {killed_at_posts} of {count} direct posts (restarted in "
                   f"{restart_seconds:.1f}s): the reader's conversations {received}, the authors' {written}")
    assert not received.lost and not received.duplicated and not received.unexpected, received
    assert not written.lost and not written.duplicated and not written.unexpected, written
    unread = {c["unread"] for c in http.get("/api/v1/conversations?limit=40", headers=reader.auth).json()}
    assert unread == {True}
    assert {c["unread"] for c in http.get("/api/v1/conversations?limit=40", headers=writers[0].auth).json()} == {
        False}


@pytest.mark.timeout(480)
def test_two_fanout_workers_one_stalled_past_session_timeout_one_killed(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], faults: Faults
) -> None:
    authors, follower = _world(http, make_user, 5, "g")
    count = PER_AUTHOR * len(authors)
    first = harness.service_pid("fanout")
    second = faults.spawn_fanout()
    harness.wait_http_ready(second.port)
    harness.wait_for(lambda: harness.group_members() == 2, 60, "two members in the fanout's group")
    rebuilds = harness.timeline_rebuilds()

    burst = harness.Burst(gateway_url, authors, count, threads=4, text="two workers")
    try:
        burst.wait_progress(count // 5)
        paused_at_posts = burst.done
        faults.pause(second.pid)
        paused_at = time.monotonic()
        # Past the session timeout (10 s): the group evicts the stalled member and the first takes over its
        # partitions; resumed, the stalled one is a zombie of an old generation that must rejoin, not die.
        time.sleep(14)
        faults.resume(second.pid)
        burst.wait_progress(count * 3 // 4)
        killed_at_posts = burst.done
        faults.kill(first)
        # The survivor takes the dead member's partitions after the session timeout; the stack restarts it.
        restart_seconds = harness.stack_up()
        burst.wait()
    finally:
        burst.stop()

    assert burst.codes() == {200: count}, burst.codes()
    result, lag_at, home_at = _converge(http, follower, burst, paused_at)
    rebuilt = harness.timeline_rebuilds() - rebuilds
    alive = second.alive()
    harness.figure(
        f"two fanout workers, one SIGSTOPped 14 s at {paused_at_posts} and the other SIGKILLed at "
        f"{killed_at_posts} of {count} posts (restarted in {restart_seconds:.1f}s): {result}; lag 0 "
        f"{lag_at:.1f}s and the whole burst in the timeline {home_at:.1f}s after the pause began; stalled worker "
        f"alive afterwards: {alive}; timeline rebuilds {rebuilt:.0f}"
    )
    assert not result.lost and not result.duplicated and not result.unexpected, result
    assert rebuilt == 0, "the follower's timeline was rebuilt: the fanout's writes were not what got counted"
    assert alive, f"the stalled fanout worker died when it came back (see {second.log})"
