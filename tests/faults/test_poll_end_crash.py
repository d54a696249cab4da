"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) between publishing a poll's end
(``poll.ended``, services/post/poll_endings.py) and removing its plan from Cassandra. The post service that comes
back finds the end still planned and publishes it again; the event carries the same notification id, so the
author and the voter are each told once, and the plan is gone afterwards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from kicau.crash_points import CRASH_EXIT_CODE
from services.post.due_hours import hour_of
from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.timeline.test_notifications import notifications, summary
from tests.timeline.test_polls import end_now, planned_ends, post_poll, vote


def _no_other_end_due_soon(stack_cassandra: Any, status_id: int, seconds: float = 90.0) -> None:
    """Wait until no other poll's end is due within ``seconds`` (those due by then published by the stack's post
    service): the armed post service dies at the first end it publishes, and an earlier test's poll ending just as
    it starts (a 600-second poll posted ten minutes before, in CI at 12:57Z on 2026-12-05) killed it before it was
    ever ready."""
    def quiet() -> bool:
        now = datetime.now(UTC)
        soon = now + timedelta(seconds=seconds)
        due = [row for hour in sorted({hour_of(now - timedelta(hours=1)), hour_of(now), hour_of(soon)})
               for row in stack_cassandra.execute(
                   "SELECT status_id FROM poll_endings WHERE hour = %s AND ends_at <= %s", (hour, soon))]
        return all(int(row["status_id"]) == status_id for row in due)
    harness.wait_for(quiet, seconds + 60, "other polls' ends due soon to be published")


@pytest.mark.timeout(400)
def test_a_poll_end_published_before_a_crash_notifies_once(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, stack_cassandra: Any,
    stack_redis: redis.Redis,
) -> None:
    author, voter = make_user("pec_a"), make_user("pec_v")
    status = post_poll(http, author, ["now", "never"])
    assert vote(http, voter, status["poll"]["id"], 1).status_code == 200

    # The only post service running is one armed to die right after it publishes an end: this poll's.
    _no_other_end_due_soon(stack_cassandra, int(status["id"]))
    faults.kill(harness.service_pid("post"))
    crashing = faults.spawn_service("post", {"KICAU_CRASH_AT": "post.poll_end.published"})
    harness.wait_http_ready(crashing.port)
    ended_at = end_now(http, stack_cassandra, stack_redis, status, author)
    assert crashing.proc.wait(timeout=60) == CRASH_EXIT_CODE, "the post service did not die after publishing"
    assert planned_ends(stack_cassandra, ended_at, int(status["id"])) != []  # published, not yet forgotten

    restart_seconds = harness.stack_up()
    eventually(lambda: planned_ends(stack_cassandra, ended_at, int(status["id"])) == [] or None, timeout=60)
    expected = [("poll", author.id, status["id"])]
    for reader in (author, voter):
        eventually(lambda: summary(notifications(http, reader, "?types[]=poll")) == expected)  # noqa: B023
    # Both publications reached the fanout (the second after the restart): still one notification each.
    harness.wait_for(lambda: harness.consumer_lag() == 0, 60, "the fanout to take up the second publication")
    for reader in (author, voter):
        assert summary(notifications(http, reader, "?types[]=poll")) == expected
    harness.figure(f"post service died at post.poll_end.published: restarted in {restart_seconds:.1f}s; the end "
                   "published again, author and voter told once each")
