"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of muting or
unmuting a thread (kicau/thread_mutes.py): after the claim, before the reader's mark; after the mark was taken away,
before the claim was given back. The request answers a Mastodon error, never 500; its retry, once `stack up` has
restarted the service, finishes what the crash left: the thread muted (flag and notifications) or, unmuted, neither."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.timeline.test_notifications import notifications, summary


def _mute(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> httpx.Response:
    return http.post(f"/api/v1/statuses/{status_id}/{'unmute' if undo else 'mute'}", headers=user.auth)


def _muted(http: httpx.Client, reader: User, status_id: str) -> bool:
    return bool(http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth).json()["muted"])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_at", ["post.thread_mute.claimed", "post.thread_unmute.unmarked"])
def test_a_thread_mute_retried_after_a_post_service_crash_is_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, crash_at: str,
) -> None:
    author, replier = make_user("tmc_a"), make_user("tmc_r")
    created = http.post("/api/v1/statuses", headers=author.auth, json={"status": "a thread to mute"})
    assert created.status_code == 200, created.text
    root = created.json()["id"]
    undo = crash_at.startswith("post.thread_unmute")
    if undo:
        assert _mute(http, author, root).status_code == 200

    broken, restart_seconds = faults.crash_during("post", crash_at, lambda: _mute(http, author, root, undo))

    retried = _mute(http, author, root, undo)
    assert retried.status_code == 200, retried.text
    assert retried.json()["muted"] is not undo
    assert _muted(http, author, root) is not undo
    # What the fanout makes of it: a reply mentioning the author notifies it only if unmuted; a status outside the
    # thread, posted after it by the same account (the same key: in order), always does.
    reply = http.post("/api/v1/statuses", headers=replier.auth,
                      json={"status": f"@{author.username} in the thread", "in_reply_to_id": root}).json()["id"]
    outside = http.post("/api/v1/statuses", headers=replier.auth,
                        json={"status": f"@{author.username} outside it"}).json()["id"]
    eventually(lambda: ("mention", replier.id, outside) in summary(notifications(http, author)))
    heard = {status for _, _, status in summary(notifications(http, author))}
    assert (reply in heard) is undo
    harness.figure(f"post service died at {crash_at}: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the thread {'unmuted' if undo else 'muted'}")
