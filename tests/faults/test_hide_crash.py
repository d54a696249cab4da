"""The graph service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of a mute or
an unmute (kicau/blocks_and_mutes.py): after the claim, before the list entry and the hider row; after those were
removed, before the claim was given back. The request answers a Mastodon error, never 500; its retry, once `stack
up` has restarted the service, finishes what the crash left: the account muted once, listed once, and its
statuses kept out of the home timeline (or, unmuted, none of these)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.timeline.test_home_invariant import home_ids


def _change(http: httpx.Client, user: User, target: User, undo: bool = False) -> httpx.Response:
    return http.post(f"/api/v1/accounts/{target.id}/{'unmute' if undo else 'mute'}", headers=user.auth)


def _state(http: httpx.Client, reader: User, target: User) -> tuple[bool, list[str]]:
    """``muting`` as the reader's Relationship says, and the ids the reader's mutes list."""
    relationship = http.get(f"/api/v1/accounts/relationships?id[]={target.id}", headers=reader.auth).json()[0]
    return relationship["muting"], [a["id"] for a in http.get("/api/v1/mutes", headers=reader.auth).json()]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_at", ["graph.hide.claimed", "graph.unhide.unlisted"])
def test_a_mute_retried_after_a_graph_crash_is_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, crash_at: str,
) -> None:
    author, reader = make_user("hc_a"), make_user("hc_r")
    undo = crash_at.startswith("graph.unhide")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    if undo:
        assert _change(http, reader, author).status_code == 200
    # Timelines of their own, so the fanout writes into them: the author's, read below, must get the status only
    # through the fanout (a missing one would be rebuilt from Cassandra, where the status is before the fanout
    # has seen it).
    assert home_ids(http, reader) == [] and home_ids(http, author) == []

    broken, restart_seconds = faults.crash_during("graph", crash_at, lambda: _change(http, reader, author, undo))

    retried = _change(http, reader, author, undo)
    assert retried.status_code == 200, retried.text
    assert retried.json()["muting"] is not undo
    assert _state(http, reader, author) == ((False, []) if undo else (True, [author.id]))
    # What the fanout reads agrees: the author's next status reaches the reader's home timeline, or does not.
    # (Statuses of one author are fanned out in order: once the later one reached the author's own timeline,
    # the earlier one has been dealt with.)
    shown = http.post("/api/v1/statuses", headers=author.auth, json={"status": "after the retry"}).json()["id"]
    eventually(lambda: shown in home_ids(http, author) or None)
    assert (shown in home_ids(http, reader)) is undo
    # A repeat changes nothing; a mute made again after an unmute is listed once.
    assert _change(http, reader, author).status_code == 200
    assert _state(http, reader, author) == (True, [author.id])
    harness.figure(f"graph service died at {crash_at}: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the mute whole")
