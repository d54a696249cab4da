"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of a favourite
or an unfavourite (kicau/favourites.py): after the claim, before anything else; after the count moved, before the
author's notification was published; after the claim was given back, before the count moved. The request answers
a Mastodon error, never 500; its retry, once `stack up` has restarted the service, finishes what the crash left:
the favourite listed once, counted once (or not at all, given back), the author notified exactly once (or no
longer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults


def _favourite(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> httpx.Response:
    return http.post(f"/api/v1/statuses/{status_id}/{'unfavourite' if undo else 'favourite'}", headers=user.auth)


def _notified(http: httpx.Client, author: User) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/notifications?types[]=favourite", headers=author.auth)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def _state(http: httpx.Client, fan: User, status_id: str) -> tuple[int, bool, list[str], list[str]]:
    """(favourites_count, favourited) as the fan sees the status, its favourites, and who favourites it."""
    status = http.get(f"/api/v1/statuses/{status_id}", headers=fan.auth).json()
    favourites = [s["id"] for s in http.get("/api/v1/favourites", headers=fan.auth).json()]
    by = [a["id"] for a in http.get(f"/api/v1/statuses/{status_id}/favourited_by").json()]
    return status["favourites_count"], status["favourited"], favourites, by


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_at", ["post.favourite.claimed", "post.favourite.counted",
                                      "post.unfavourite.released"])
def test_a_favourite_retried_after_a_post_service_crash_is_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, crash_at: str,
) -> None:
    author, fan = make_user("fcr_a"), make_user("fcr_f")
    created = http.post("/api/v1/statuses", headers=author.auth, json={"status": "favourite me"})
    assert created.status_code == 200, created.text
    status_id = created.json()["id"]
    undo = crash_at.startswith("post.unfavourite")
    if undo:
        assert _favourite(http, fan, status_id).status_code == 200
        harness.wait_for(lambda: len(_notified(http, author)) == 1, 60, "the favourite's notification")

    broken, restart_seconds = faults.crash_during("post", crash_at, lambda: _favourite(http, fan, status_id, undo))

    retried = _favourite(http, fan, status_id, undo)
    assert retried.status_code == 200, retried.text
    if undo:
        assert _state(http, fan, status_id) == (0, False, [], [])
        harness.wait_for(lambda: _notified(http, author) == [], 60, "the favourite's notification gone")
    else:
        assert _state(http, fan, status_id) == (1, True, [status_id], [fan.id])
        harness.wait_for(lambda: len(_notified(http, author)) == 1, 60, "the favourite's notification")
        # Once: a repeat changes nothing, and the notification is not sent twice.
        assert _favourite(http, fan, status_id).status_code == 200
        assert _state(http, fan, status_id) == (1, True, [status_id], [fan.id])
        assert [n["account"]["id"] for n in _notified(http, author)] == [fan.id]
    harness.figure(f"post service died at {crash_at}: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the favourite whole (counted, listed and notified once"
                   f"{', or not at all once given back' if undo else ''})")
