"""The timeline service dies (``os._exit`` at a crash point, as a SIGKILL would end it) while accepting a
notification request (kicau/notification_policies.py): after the sender's held notifications were copied into the
account's list, before they were removed from the held ones. The request answers a Mastodon error, never 500; the
request is still there to accept again once `stack up` has restarted the service, and accepting it again leaves
each notification once in the list, none held, and each private mention in one conversation."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.timeline.test_notifications import notifications, summary
from tests.timeline.test_visibility import post


def _accept(http: httpx.Client, reader: User, sender: User) -> httpx.Response:
    return http.post(f"/api/v1/notifications/requests/{sender.id}/accept", headers=reader.auth)


def _requests(http: httpx.Client, reader: User) -> list[str]:
    return [r["id"] for r in http.get("/api/v1/notifications/requests", headers=reader.auth).json()]


@pytest.mark.timeout(300)
def test_an_accept_retried_after_a_timeline_crash_lists_each_notification_once(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    reader, stranger = make_user("rac_r"), make_user("rac_s")
    held = [post(http, stranger, f"@{reader.username} psst {n}", visibility="direct") for n in range(3)]
    eventually(lambda: http.get(f"/api/v1/notifications/requests/{stranger.id}", headers=reader.auth).json()
               .get("notifications_count") == "3" or None)

    broken, restart_seconds = faults.crash_during("timeline", "timeline.requests.copied",
                                                  lambda: _accept(http, reader, stranger))
    assert _requests(http, reader) == [stranger.id]  # still there: the copy was made, the held ones not yet gone

    retried = _accept(http, reader, stranger)
    assert retried.status_code == 200 and retried.json() == {}, retried.text
    expected = [("mention", stranger.id, status) for status in reversed(held)]
    assert summary(notifications(http, reader)) == expected
    assert summary(notifications(http, reader, "?include_filtered=true")) == expected  # none held, none twice
    assert _requests(http, reader) == []
    # Each private mention began a thread of its own: three conversations, each joined once.
    conversations = http.get("/api/v1/conversations", headers=reader.auth).json()
    assert sorted(c["last_status"]["id"] for c in conversations) == sorted(held)
    harness.figure(f"timeline service died at timeline.requests.copied: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; accepting again listed each of the 3 notifications once, none held")
