"""Property-based (Hypothesis stateful) test of the home-timeline invariant, against the running services:

    home(u) = newest-first merge of u's own live statuses and those of every account u follows (capped),

through any interleaving of posts, deletes, follows and unfollows. The fanout is asynchronous, so each check
waits for convergence; what it may never do is converge to anything else.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.conftest import User, eventually

USERS = 4


def home_ids(http: httpx.Client, user: User) -> list[str]:
    ids: list[str] = []
    url = "/api/v1/timelines/home?limit=40"
    while url:
        answer = http.get(url, headers=user.auth)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        if not page:
            break
        ids.extend(s["id"] for s in page)
        url = answer.links.get("next", {}).get("url", "")
    return ids


@pytest.mark.timeout(900)
def test_home_timeline_invariant(http: httpx.Client, make_user: Callable[..., User]) -> None:
    class HomeTimelines(RuleBasedStateMachine):
        @initialize()
        def fresh_world(self) -> None:
            # Fresh accounts per example: the model starts empty, like the real timelines of new users.
            self.users = [make_user("hs") for _ in range(USERS)]
            self.statuses: dict[int, list[str]] = {i: [] for i in range(USERS)}
            self.follows: set[tuple[int, int]] = set()
            self.counter = 0

        @rule(author=st.integers(0, USERS - 1))
        def post(self, author: int) -> None:
            self.counter += 1
            answer = http.post("/api/v1/statuses", headers=self.users[author].auth,
                               data={"status": f"property status {self.counter}"})
            assert answer.status_code == 200, answer.text
            self.statuses[author].append(answer.json()["id"])

        @precondition(lambda self: any(self.statuses.values()))
        @rule(data=st.data())
        def delete(self, data: st.DataObject) -> None:
            author = data.draw(st.sampled_from([a for a, s in self.statuses.items() if s]))
            status_id = data.draw(st.sampled_from(self.statuses[author]))
            answer = http.delete(f"/api/v1/statuses/{status_id}", headers=self.users[author].auth)
            assert answer.status_code == 200, answer.text
            self.statuses[author].remove(status_id)

        @rule(follower=st.integers(0, USERS - 1), followee=st.integers(0, USERS - 1))
        def follow(self, follower: int, followee: int) -> None:
            answer = http.post(f"/api/v1/accounts/{self.users[followee].id}/follow",
                               headers=self.users[follower].auth)
            if follower == followee:
                assert answer.status_code == 403
                return
            assert answer.status_code == 200 and answer.json()["following"] is True, answer.text
            self.follows.add((follower, followee))

        @rule(follower=st.integers(0, USERS - 1), followee=st.integers(0, USERS - 1))
        def unfollow(self, follower: int, followee: int) -> None:
            answer = http.post(f"/api/v1/accounts/{self.users[followee].id}/unfollow",
                               headers=self.users[follower].auth)
            assert answer.status_code == 200 and answer.json()["following"] is False, answer.text
            self.follows.discard((follower, followee))

        def expected(self, reader: int) -> list[str]:
            authors = {reader} | {b for a, b in self.follows if a == reader}
            return sorted((s for a in authors for s in self.statuses[a]), key=int, reverse=True)

        @invariant()
        def home_matches_model(self) -> None:
            if not hasattr(self, "users"):
                return
            for reader in range(USERS):
                want, user = self.expected(reader), self.users[reader]

                def converged(user: User = user, want: list[str] = want) -> bool:
                    return home_ids(http, user) == want

                eventually(converged, timeout=20)

    HomeTimelines.TestCase.settings = settings(
        max_examples=6, stateful_step_count=12, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    HomeTimelines.TestCase().runTest()
