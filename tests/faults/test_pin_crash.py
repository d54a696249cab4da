"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of a pin or an
unpin (kicau/pins.py): after the claim, before the list and the author's set; after the list entry and the set
member were removed, before the claim was given back. The request answers a Mastodon error, never 500; its
retry, once `stack up` has restarted the service, finishes what the crash left: the status pinned once, listed
once and flagged (or, given back, none of these), and the limit counts it once."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults


def _pin(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> httpx.Response:
    return http.post(f"/api/v1/statuses/{status_id}/{'unpin' if undo else 'pin'}", headers=user.auth)


def _state(http: httpx.Client, author: User, status_id: str) -> tuple[bool, list[str]]:
    """``pinned`` as the author sees the status, and its profile's pinned statuses."""
    status = http.get(f"/api/v1/statuses/{status_id}", headers=author.auth).json()
    listed = http.get(f"/api/v1/accounts/{author.id}/statuses?pinned=true", headers=author.auth).json()
    return status["pinned"], [s["id"] for s in listed]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_at", ["post.pin.claimed", "post.unpin.unlisted"])
def test_a_pin_retried_after_a_post_service_crash_is_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, crash_at: str,
) -> None:
    author = make_user("pcr_a")
    created = http.post("/api/v1/statuses", headers=author.auth, json={"status": "pin me"})
    assert created.status_code == 200, created.text
    status_id = created.json()["id"]
    undo = crash_at.startswith("post.unpin")
    if undo:
        assert _pin(http, author, status_id).status_code == 200

    broken, restart_seconds = faults.crash_during("post", crash_at, lambda: _pin(http, author, status_id, undo))

    retried = _pin(http, author, status_id, undo)
    assert retried.status_code == 200, retried.text
    assert retried.json()["pinned"] is not undo
    assert _state(http, author, status_id) == ((False, []) if undo else (True, [status_id]))
    # A repeat changes nothing; a pin made again after one given back is listed once; four more fill the five.
    assert _pin(http, author, status_id).status_code == 200
    assert _state(http, author, status_id) == (True, [status_id])
    for n in range(4):
        more = http.post("/api/v1/statuses", headers=author.auth, json={"status": f"pin {n}"}).json()["id"]
        assert _pin(http, author, more).status_code == 200
    sixth = http.post("/api/v1/statuses", headers=author.auth, json={"status": "one too many"}).json()["id"]
    assert _pin(http, author, sixth).status_code == 422
    harness.figure(f"post service died at {crash_at}: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the pin whole")
