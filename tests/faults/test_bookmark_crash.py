"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of a bookmark or
an unbookmark (kicau/bookmarks.py): after the claim, before the list and the reader's set; after the list entry
and the set member were removed, before the claim was given back. The request answers a Mastodon error, never
500; its retry, once `stack up` has restarted the service, finishes what the crash left: the status bookmarked
once, listed once and flagged (or, given back, none of these)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults


def _bookmark(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> httpx.Response:
    return http.post(f"/api/v1/statuses/{status_id}/{'unbookmark' if undo else 'bookmark'}", headers=user.auth)


def _state(http: httpx.Client, reader: User, status_id: str) -> tuple[bool, list[str]]:
    """``bookmarked`` as the reader sees the status, and the reader's bookmarks."""
    status = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth).json()
    return status["bookmarked"], [s["id"] for s in http.get("/api/v1/bookmarks", headers=reader.auth).json()]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_at", ["post.bookmark.claimed", "post.unbookmark.unlisted"])
def test_a_bookmark_retried_after_a_post_service_crash_is_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, crash_at: str,
) -> None:
    author, reader = make_user("bcr_a"), make_user("bcr_r")
    created = http.post("/api/v1/statuses", headers=author.auth, json={"status": "bookmark me"})
    assert created.status_code == 200, created.text
    status_id = created.json()["id"]
    undo = crash_at.startswith("post.unbookmark")
    if undo:
        assert _bookmark(http, reader, status_id).status_code == 200

    broken, restart_seconds = faults.crash_during("post", crash_at, lambda: _bookmark(http, reader, status_id, undo))

    retried = _bookmark(http, reader, status_id, undo)
    assert retried.status_code == 200, retried.text
    assert retried.json()["bookmarked"] is not undo
    assert _state(http, reader, status_id) == ((False, []) if undo else (True, [status_id]))
    # A repeat changes nothing; a bookmark made again after one given back is listed once.
    assert _bookmark(http, reader, status_id).status_code == 200
    assert _state(http, reader, status_id) == (True, [status_id])
    harness.figure(f"post service died at {crash_at}: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the bookmark whole")
