"""Polls (kicau/polls.py) through the public API of the running system: posting one (JSON and form), voting once,
the counts and the reader's own votes on every read, several choices, hidden totals, a poll that ended, edits that
keep it, bad input, and the tallies rebuilt from Cassandra after Redis lost them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis

from kicau import keys, polls
from services.post.due_hours import hour_of
from tests.conftest import User, eventually
from tests.timeline.test_notifications import follow, notifications, summary


def post_poll(http: httpx.Client, author: User, options: list[str], **poll: Any) -> dict[str, Any]:
    answer = http.post("/api/v1/statuses", headers=author.auth,
                       json={"status": "which one?", "poll": {"options": options, "expires_in": 3600, **poll}})
    assert answer.status_code == 200, answer.text
    status: dict[str, Any] = answer.json()
    return status


def vote(http: httpx.Client, voter: User, poll_id: str, *choices: int | str) -> httpx.Response:
    return http.post(f"/api/v1/polls/{poll_id}/votes", headers=voter.auth, json={"choices": list(choices)})


def counts(poll: dict[str, Any]) -> list[int | None]:
    return [option["votes_count"] for option in poll["options"]]


def test_a_poll_is_posted_and_voted_in_once_and_read_everywhere(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, first, second = make_user("pol_a"), make_user("pol_f"), make_user("pol_s")
    follow(http, first, author)
    before = datetime.now(UTC)
    status = post_poll(http, author, ["tea", "coffee", "water"])
    poll = status["poll"]
    assert poll["id"] == status["id"]
    assert (poll["expired"], poll["multiple"], poll["votes_count"], poll["voters_count"]) == (False, False, 0, 0)
    assert [o["title"] for o in poll["options"]] == ["tea", "coffee", "water"] and counts(poll) == [0, 0, 0]
    # Its author counts as having voted (as on Mastodon, whose clients then show it the results).
    assert (poll["voted"], poll["own_votes"], poll["emojis"]) == (True, [], [])
    ends = datetime.fromisoformat(poll["expires_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=3595) < ends - before < timedelta(seconds=3605)

    voted = vote(http, first, poll["id"], 1)
    assert voted.status_code == 200, voted.text
    assert (counts(voted.json()), voted.json()["voted"], voted.json()["own_votes"]) == ([0, 1, 0], True, [1])
    again = vote(http, first, poll["id"], 0)
    assert again.status_code == 422 and again.json() == {"error": "Validation failed: You have already voted on "
                                                                  "this poll"}
    # A form, as Mastodon.py sends it.
    by_form = http.post(f"/api/v1/polls/{poll['id']}/votes", headers=second.auth, data={"choices[]": "0"})
    assert by_form.status_code == 200, by_form.text
    assert (counts(by_form.json()), by_form.json()["voters_count"], by_form.json()["votes_count"]) == ([1, 1, 0], 2, 2)

    # Each reader its own votes; no one signed in, no such fields.
    assert http.get(f"/api/v1/polls/{poll['id']}", headers=second.auth).json()["own_votes"] == [0]
    anonymous = http.get(f"/api/v1/polls/{poll['id']}").json()
    assert counts(anonymous) == [1, 1, 0] and "voted" not in anonymous and "own_votes" not in anonymous
    shown = http.get(f"/api/v1/statuses/{status['id']}", headers=first.auth).json()["poll"]
    assert (counts(shown), shown["own_votes"]) == ([1, 1, 0], [1])
    eventually(lambda: status["id"] in [s["id"] for s in http.get("/api/v1/timelines/home", headers=first.auth).json()])
    home = {s["id"]: s for s in http.get("/api/v1/timelines/home", headers=first.auth).json()}
    assert (counts(home[status["id"]]["poll"]), home[status["id"]]["poll"]["voted"]) == ([1, 1, 0], True)
    profile = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=second.auth).json()
    assert profile[0]["poll"]["own_votes"] == [0]

    # The author may not vote in its own poll.
    own = vote(http, author, poll["id"], 2)
    assert own.status_code == 422 and "own polls" in own.json()["error"]


def test_several_choices_and_hidden_totals(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, voter = make_user("pom_a"), make_user("pom_v")
    several = post_poll(http, author, ["a", "b", "c", "d"], multiple=True)["poll"]
    assert several["multiple"] is True
    voted = vote(http, voter, several["id"], 0, 3).json()
    assert (counts(voted), voted["votes_count"], voted["voters_count"], voted["own_votes"]) == ([1, 0, 0, 1], 2, 1,
                                                                                               [0, 3])
    hidden = post_poll(http, author, ["yes", "no"], hide_totals=True)["poll"]
    assert counts(hidden) == [None, None]
    assert counts(vote(http, voter, hidden["id"], 0).json()) == [None, None]  # until it ends, even for its voters
    assert counts(http.get(f"/api/v1/polls/{hidden['id']}", headers=author.auth).json()) == [None, None]
    assert http.get(f"/api/v1/polls/{hidden['id']}").json()["votes_count"] == 1


def test_a_poll_that_ended_shows_its_counts_and_takes_no_vote(
    http: httpx.Client, make_user: Callable[..., User], stack_cassandra: Any, stack_redis: redis.Redis,
) -> None:
    author, voter, late = make_user("poe_a"), make_user("poe_v"), make_user("poe_l")
    poll = post_poll(http, author, ["now", "later"], hide_totals=True)["poll"]
    assert vote(http, voter, poll["id"], 1).status_code == 200
    # Time passes: the poll's end moved into the past where Cassandra keeps it, its cached status dropped.
    ended = polls.Definition(["now", "later"], "2020-01-01T00:00:00.000Z", False, True)
    stack_cassandra.execute("UPDATE statuses SET poll = %s WHERE id = %s", (polls.stored(ended), int(poll["id"])))
    stack_redis.delete(keys.status_cache(int(poll["id"])))
    shown = http.get(f"/api/v1/polls/{poll['id']}", headers=voter.auth).json()
    assert (shown["expired"], counts(shown), shown["own_votes"]) == (True, [0, 1], [1])
    too_late = vote(http, late, poll["id"], 0)
    assert too_late.status_code == 422 and too_late.json()["error"] == "Validation failed: The poll has already ended"


def test_tallies_come_back_from_cassandra_when_redis_loses_them(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    author, voters = make_user("por_a"), [make_user("por_v") for _ in range(3)]
    poll = post_poll(http, author, ["x", "y"], multiple=True)["poll"]
    for number, voter in enumerate(voters):
        assert vote(http, voter, poll["id"], *([0, 1] if number == 0 else [1])).status_code == 200
    stack_redis.delete(keys.poll_tallies(int(poll["id"])))
    shown = http.get(f"/api/v1/polls/{poll['id']}", headers=voters[0].auth).json()
    assert (counts(shown), shown["voters_count"], shown["own_votes"]) == ([1, 3], 3, [0, 1])
    # And the rebuilt tallies go on counting, once per voter.
    assert vote(http, make_user("por_n"), poll["id"], 0).json()["options"][0]["votes_count"] == 2
    assert vote(http, voters[1], poll["id"], 0).status_code == 422


def test_an_edit_keeps_the_poll_and_cannot_change_it(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, voter = make_user("pod_a"), make_user("pod_v")
    status = post_poll(http, author, ["left", "right"])
    vote(http, voter, status["poll"]["id"], 0)
    for change in ({"status": "which one, really?"},
                   {"status": "which one, then?", "poll": {"options": ["left", "right"], "expires_in": 3600}}):
        edited = http.put(f"/api/v1/statuses/{status['id']}", headers=author.auth, json=change)
        assert edited.status_code == 200, edited.text
        assert counts(edited.json()["poll"]) == [1, 0]
    changed = http.put(f"/api/v1/statuses/{status['id']}", headers=author.auth,
                       json={"status": "other", "poll": {"options": ["up", "down"], "expires_in": 3600}})
    assert changed.status_code == 422 and set(changed.json()) == {"error"}


def test_bad_polls_and_votes_are_a_clear_4xx(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, stranger = make_user("pob_a"), make_user("pob_s")
    for poll, wording in [
        ({"options": ["only"], "expires_in": 3600}, "more than one item"),
        ({"options": ["a", "b", "c", "d", "e"], "expires_in": 3600}, "more than 4 items"),
        ({"options": ["same", "same"], "expires_in": 3600}, "duplicate"),
        ({"options": ["a", "b" * 51], "expires_in": 3600}, "longer than 50"),
        ({"options": ["a", " "], "expires_in": 3600}, "blank"),
        ({"options": ["a", "b"], "expires_in": 299}, "too soon"),
        ({"options": ["a", "b"], "expires_in": 2_629_747}, "too far"),
        ({"options": ["a", "b"], "expires_in": "soon"}, "seconds"),
        ({"options": "a,b", "expires_in": 3600}, "list"),
        ({"options": ["a", "b"], "expires_in": 3600, "multiple": "perhaps"}, "boolean"),
    ]:
        answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": "q", "poll": poll})
        assert answer.status_code == 422 and wording in answer.json()["error"], (poll, answer.text)
    scheduled = http.post("/api/v1/statuses", headers=author.auth, json={  # checked when scheduled, too
        "status": "later", "scheduled_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "poll": {"options": ["a", "a"], "expires_in": 3600}})
    assert scheduled.status_code == 422 and set(scheduled.json()) == {"error"}
    not_an_object = http.post("/api/v1/statuses", headers=author.auth, json={"status": "q", "poll": ["a", "b"]})
    assert not_an_object.status_code == 422
    assert http.get(f"/api/v1/accounts/{author.id}/statuses").json() == []  # nothing was posted

    hidden = http.post("/api/v1/statuses", headers=author.auth, json={
        "status": "followers only", "visibility": "private",
        "poll": {"options": ["a", "b"], "expires_in": 3600}}).json()
    public = post_poll(http, author, ["a", "b"])
    plain = http.post("/api/v1/statuses", headers=author.auth, json={"status": "no poll"}).json()
    for path, who, body, code in [
        (f"/api/v1/polls/{hidden['id']}/votes", stranger, {"choices": [0]}, 404),  # not its to see: missing to it
        (f"/api/v1/polls/{plain['id']}/votes", stranger, {"choices": [0]}, 404),  # a status without a poll
        ("/api/v1/polls/99999999999/votes", stranger, {"choices": [0]}, 404),
        ("/api/v1/polls/not-an-id/votes", stranger, {"choices": [0]}, 404),
        (f"/api/v1/polls/{public['id']}/votes", None, {"choices": [0]}, 401),
        (f"/api/v1/polls/{public['id']}/votes", stranger, {"choices": [2]}, 422),
        (f"/api/v1/polls/{public['id']}/votes", stranger, {"choices": [0, 1]}, 422),  # one choice only
        (f"/api/v1/polls/{public['id']}/votes", stranger, {"choices": []}, 422),
        (f"/api/v1/polls/{public['id']}/votes", stranger, {"choices": ["first"]}, 422),
        (f"/api/v1/polls/{public['id']}/votes", stranger, {}, 422),
    ]:
        answer = http.post(path, headers=who.auth if who else {}, json=body)
        assert answer.status_code == code, (path, body, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    assert http.get(f"/api/v1/polls/{hidden['id']}", headers=stranger.auth).status_code == 404
    assert http.get(f"/api/v1/polls/{plain['id']}").status_code == 404
    assert http.get(f"/api/v1/polls/{public['id']}").json()["voters_count"] == 0  # nothing was counted
    assert http.delete(f"/api/v1/statuses/{public['id']}", headers=author.auth).status_code == 200
    assert http.get(f"/api/v1/polls/{public['id']}").status_code == 404  # it went with its status


def end_now(http: httpx.Client, stack_cassandra: Any, stack_redis: redis.Redis, status: dict[str, Any],
            author: User) -> datetime:
    """Time passes: the poll's end moved to a second ago, where Cassandra keeps the poll and plans its end (the
    post service's runner, services/post/poll_endings.py, reads the plans every second). When it ended.

    Only once the fanout has applied the status (it is in its author's home timeline): the fanout caches the
    status as it was posted if no copy is cached (``SET NX``), and applied after the cached copy is dropped below,
    it would put back the poll's first end."""
    poll, status_id = status["poll"], int(status["id"])

    def applied() -> bool:
        answer = http.get("/api/v1/timelines/home?limit=40", headers=author.auth)
        return answer.status_code == 200 and status["id"] in [s["id"] for s in answer.json()]

    eventually(applied)
    planned = datetime.fromisoformat(poll["expires_at"].replace("Z", "+00:00"))
    now = datetime.now(UTC)
    ended_at = now.replace(microsecond=now.microsecond // 1000 * 1000) - timedelta(seconds=1)
    options = [option["title"] for option in poll["options"]]
    ended = polls.Definition(options, ended_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                             multiple=poll["multiple"])
    stack_cassandra.execute("UPDATE statuses SET poll = %s WHERE id = %s", (polls.stored(ended), status_id))
    stack_cassandra.execute("DELETE FROM poll_endings WHERE hour = %s AND ends_at = %s AND status_id = %s",
                            (hour_of(planned), planned, status_id))
    stack_redis.delete(keys.status_cache(status_id))
    stack_cassandra.execute("INSERT INTO poll_endings (hour, ends_at, status_id, author_id) VALUES (%s, %s, %s, %s)",
                            (hour_of(ended_at), ended_at, status_id, int(author.id)))
    return ended_at


def planned_ends(stack_cassandra: Any, ended_at: datetime, status_id: int) -> list[Any]:
    return list(stack_cassandra.execute("SELECT status_id FROM poll_endings WHERE hour = %s AND status_id = %s"
                                        " ALLOW FILTERING", (hour_of(ended_at), status_id)))


def test_the_end_of_a_poll_notifies_its_author_and_voters(
    http: httpx.Client, make_user: Callable[..., User], stack_cassandra: Any, stack_redis: redis.Redis,
) -> None:
    author, voter, bystander = make_user("pon_a"), make_user("pon_v"), make_user("pon_b")
    status = post_poll(http, author, ["sooner", "later"])
    poll, status_id = status["poll"], int(status["id"])
    assert vote(http, voter, poll["id"], 0).status_code == 200
    ended_at = end_now(http, stack_cassandra, stack_redis, status, author)

    expected = [("poll", author.id, status["id"])]
    def told_of_it(reader: User) -> bool:
        return summary(notifications(http, reader, "?types[]=poll")) == expected

    for reader in (author, voter):
        eventually(lambda: told_of_it(reader))  # noqa: B023 (called at once, within the loop)
    told = notifications(http, voter, "?types[]=poll")[0]
    assert told["status"]["poll"]["expired"] is True and counts(told["status"]["poll"]) == [1, 0]
    assert datetime.fromisoformat(told["created_at"].replace("Z", "+00:00")) == ended_at
    assert notifications(http, bystander, "?types[]=poll") == []
    # Published once, noticed once: the plan is gone.
    assert planned_ends(stack_cassandra, ended_at, status_id) == []
