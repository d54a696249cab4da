"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of a reblog or an
unreblog (kicau/reblogs.py): after the claim, before anything else; after the reblog was published, before it was
counted and its claim marked sent; after the unreblog's event was published, before the claim was given back. The
request answers a Mastodon error, never 500; its retry, once `stack up` has restarted the service, finishes what
the crash left: one reblog, counted once, in the follower's home timeline, the author notified once (or, given
back, none of these)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kicau.crash_points import CRASH_EXIT_CODE
from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults


def _reblog(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> httpx.Response:
    return http.post(f"/api/v1/statuses/{status_id}/{'unreblog' if undo else 'reblog'}", headers=user.auth)


def _notified(http: httpx.Client, author: User) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/notifications?types[]=reblog", headers=author.auth)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def _home(http: httpx.Client, reader: User) -> list[str]:
    return [s["id"] for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()]


def _state(http: httpx.Client, booster: User, status_id: str) -> tuple[int, bool, list[str]]:
    """(reblogs_count, reblogged) as the booster sees the status, and who reblogs it."""
    status = http.get(f"/api/v1/statuses/{status_id}", headers=booster.auth).json()
    by = [a["id"] for a in http.get(f"/api/v1/statuses/{status_id}/reblogged_by").json()]
    return status["reblogs_count"], status["reblogged"], by


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_at", ["post.reblog.claimed", "post.reblog.published", "post.unreblog.published"])
def test_a_reblog_retried_after_a_post_service_crash_is_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, crash_at: str,
) -> None:
    author, booster, follower = make_user("rcr_a"), make_user("rcr_b"), make_user("rcr_f")
    assert http.post(f"/api/v1/accounts/{booster.id}/follow", headers=follower.auth).status_code == 200
    created = http.post("/api/v1/statuses", headers=author.auth, json={"status": "reblog me"})
    assert created.status_code == 200, created.text
    status_id = created.json()["id"]
    assert _state(http, booster, status_id) == (0, False, [])  # cached now: the crash must not leave it stale
    undo = crash_at.startswith("post.unreblog")
    if undo:
        assert _reblog(http, booster, status_id).status_code == 200
        harness.wait_for(lambda: len(_notified(http, author)) == 1, 60, "the reblog's notification")

    broken, restart_seconds = faults.crash_during("post", crash_at, lambda: _reblog(http, booster, status_id, undo))

    retried = _reblog(http, booster, status_id, undo)
    assert retried.status_code == 200, retried.text
    if undo:
        assert _state(http, booster, status_id) == (0, False, [])
        harness.wait_for(lambda: _home(http, follower) == [], 60, "the reblog out of the follower's home")
        harness.wait_for(lambda: _notified(http, author) == [], 60, "the reblog's notification gone")
    else:
        reblog_id = retried.json()["id"]
        assert _state(http, booster, status_id) == (1, True, [booster.id])
        harness.wait_for(lambda: _home(http, follower) == [reblog_id], 60, "the reblog in the follower's home")
        harness.wait_for(lambda: len(_notified(http, author)) == 1, 60, "the reblog's notification")
        # Once: a repeat answers the same reblog, and notifies no one again.
        assert _reblog(http, booster, status_id).json()["id"] == reblog_id
        assert _state(http, booster, status_id) == (1, True, [booster.id])
        assert [n["account"]["id"] for n in _notified(http, author)] == [booster.id]
    harness.figure(f"post service died at {crash_at}: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the reblog whole (counted, delivered and notified "
                   f"once{', or not at all once given back' if undo else ''})")


@pytest.mark.timeout(300)
def test_a_reblog_after_an_unreblog_that_died_finishes_it_and_reblogs_anew(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    """The post service dies after an unreblog's event was published, before the claim was given back; the user
    then reblogs again (rather than retrying the unreblog). The stale claim is finished as an unreblog would
    finish it, and a new reblog is made: counted once, listed once, the author notified of it once."""
    author, booster = make_user("rca_a"), make_user("rca_b")
    created = http.post("/api/v1/statuses", headers=author.auth, json={"status": "reblog me twice"})
    status_id = created.json()["id"]
    first = _reblog(http, booster, status_id)
    assert first.status_code == 200, first.text
    harness.wait_for(lambda: len(_notified(http, author)) == 1, 60, "the first reblog's notification")

    faults.kill(harness.service_pid("post"))
    crashing = faults.spawn_service("post", {"KICAU_CRASH_AT": "post.unreblog.published"})
    harness.wait_http_ready(crashing.port)
    broken = _reblog(http, booster, status_id, undo=True)
    assert broken.status_code in (502, 503) and "error" in broken.json(), broken.text
    assert crashing.proc.wait(timeout=30) == CRASH_EXIT_CODE, "the post service did not die at its crash point"

    harness.stack_up()
    again = _reblog(http, booster, status_id)
    assert again.status_code == 200, again.text
    assert again.json()["id"] != first.json()["id"]
    assert _state(http, booster, status_id) == (1, True, [booster.id])
    harness.wait_for(lambda: [n["id"] for n in _notified(http, author)] == [again.json()["id"]], 60,
                     "only the new reblog's notification")
