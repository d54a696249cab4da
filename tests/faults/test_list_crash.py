"""The graph service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of adding an
account to a list or taking it out (kicau/lists.py): after the membership's rows the fanout and the owner's lookups
read, before the list's own row (or, taking it out, after those were removed and before the list's own row went).
The request answers a Mastodon error, never 500; its retry, once `stack up` has restarted the service, finishes
what the crash left: the account listed once (or not at all), and the member's next status reaching the list's
timeline (or not)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_list_timelines import list_ids


def _change(http: httpx.Client, owner: User, list_id: str, member: User, undo: bool) -> httpx.Response:
    return http.request("DELETE" if undo else "POST", f"/api/v1/lists/{list_id}/accounts", headers=owner.auth,
                        json={"account_ids": [member.id]})


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_at", ["graph.list.membered", "graph.list.unmembered"])
def test_a_list_change_retried_after_a_graph_crash_is_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, crash_at: str,
) -> None:
    owner, member = make_user("lc_o"), make_user("lc_m")
    undo = crash_at == "graph.list.unmembered"
    assert http.post(f"/api/v1/accounts/{member.id}/follow", headers=owner.auth).status_code == 200
    list_id = http.post("/api/v1/lists", headers=owner.auth, json={"title": "Crash"}).json()["id"]
    if undo:
        assert _change(http, owner, list_id, member, undo=False).status_code == 200

    broken, restart_seconds = faults.crash_during("graph", crash_at, lambda: _change(http, owner, list_id, member,
                                                                                      undo))

    retried = _change(http, owner, list_id, member, undo)
    assert (retried.status_code, retried.json()) == (200, {}), retried.text
    listed = [a["id"] for a in http.get(f"/api/v1/lists/{list_id}/accounts", headers=owner.auth).json()]
    holding = [found["id"] for found in http.get(f"/api/v1/accounts/{member.id}/lists", headers=owner.auth).json()]
    assert (listed, holding) == (([], []) if undo else ([member.id], [list_id]))
    # What the fanout reads agrees: the member's next status reaches the list's timeline, or does not. (Statuses
    # of one author are fanned out in order: once the later one reached the author's own timeline, the earlier
    # one has been dealt with.)
    assert list_ids(http, owner, list_id) == []
    # The member's own home timeline read once first, so that the status reaches it only through the fanout (a
    # missing one would be rebuilt from Cassandra, where the status is before the fanout has seen it).
    assert home_ids(http, member) == []
    shown = http.post("/api/v1/statuses", headers=member.auth, json={"status": "after the retry"}).json()["id"]
    eventually(lambda: shown in home_ids(http, member) or None)
    assert (shown in list_ids(http, owner, list_id)) is not undo
    harness.figure(f"graph service died at {crash_at}: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the list whole")


@pytest.mark.timeout(300)
def test_a_replies_policy_change_retried_after_a_graph_crash_reaches_every_members_copy(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, stack_cassandra: Any,
) -> None:
    """Dead after restating the members' copies for the fanout (``member_lists``), before the list's own row: the
    list still reads as before, so the retry makes the whole change again, and every copy ends with the new
    policy (what the fanout sends the list's stream by, kicau/lists.py)."""
    owner, members = make_user("lpc_o"), [make_user("lpc_m") for _ in range(2)]
    for member in members:
        assert http.post(f"/api/v1/accounts/{member.id}/follow", headers=owner.auth).status_code == 200
    list_id = http.post("/api/v1/lists", headers=owner.auth, json={"title": "Policy"}).json()["id"]
    assert http.post(f"/api/v1/lists/{list_id}/accounts", headers=owner.auth,
                     json={"account_ids": [m.id for m in members]}).status_code == 200

    def change() -> httpx.Response:
        return http.put(f"/api/v1/lists/{list_id}", headers=owner.auth, json={"replies_policy": "none"})

    broken, restart_seconds = faults.crash_during("graph", "graph.list.members_restated", change)
    assert http.get(f"/api/v1/lists/{list_id}", headers=owner.auth).json()["replies_policy"] == "list"

    retried = change()
    assert (retried.status_code, retried.json()["replies_policy"]) == (200, "none"), retried.text
    copies = [row["replies_policy"] for member in members for row in stack_cassandra.execute(
        "SELECT replies_policy FROM member_lists WHERE member_id = %s AND list_id = %s", (int(member.id),
                                                                                         int(list_id)))]
    assert copies == ["none", "none"]
    harness.figure(f"graph service died restating a list's members: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry changed every member's copy")
