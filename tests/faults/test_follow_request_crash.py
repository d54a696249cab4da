"""The graph service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of a follow
request (kicau/follow_requests.py): after the request is claimed, before its notification is published; after an
authorized request's follow is made, before the request ends. The call answers a Mastodon error, never 500; its
retry, once `stack up` has restarted the service, finishes what the crash left: one request, notified once; or
one follow, counted once, and no request or request notification left."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.graph.test_follow_requests import act, lock, notified, relationship, requesters


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_at", ["graph.follow_request.claimed", "graph.follow_request.authorized"])
def test_a_follow_request_retried_after_a_graph_crash_is_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, crash_at: str,
) -> None:
    owner, asker = make_user("frc_o"), make_user("frc_a")
    lock(http, owner)
    authorizing = crash_at == "graph.follow_request.authorized"
    if authorizing:
        assert act(http, asker, f"/api/v1/accounts/{owner.id}/follow")["requested"] is True
        eventually(lambda: notified(http, owner, "follow_request") == [asker.id] or None)

    def call() -> httpx.Response:
        if authorizing:
            return http.post(f"/api/v1/follow_requests/{asker.id}/authorize", headers=owner.auth)
        return http.post(f"/api/v1/accounts/{owner.id}/follow", headers=asker.auth)

    broken, restart_seconds = faults.crash_during("graph", crash_at, call)
    retried = call()
    assert retried.status_code == 200, retried.text
    now = relationship(http, asker, owner)
    if authorizing:
        assert (now["following"], now["requested"], requesters(http, owner)) == (True, False, [])
        assert http.get(f"/api/v1/accounts/{owner.id}").json()["followers_count"] == 1
        eventually(lambda: notified(http, owner, "follow_request") == [] or None)
        assert notified(http, owner, "follow") == []
    else:
        assert (now["following"], now["requested"], requesters(http, owner)) == (False, True, [asker.id])
        eventually(lambda: notified(http, owner, "follow_request") == [asker.id] or None)
    harness.figure(f"graph service died at {crash_at}: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the follow request whole")
