"""Notifications (kicau/notifications.py) through the public API of the running system: who is notified of
mentions and new followers, paging and filtering them, one by id, dismissing and clearing, a deleted status's
mention going with it, bad input, and the ``notification`` event on the user stream."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events, status_of, warm_until_seen
from tests.timeline.test_visibility import post


def notifications(http: httpx.Client, reader: User, query: str = "") -> list[dict[str, Any]]:
    answer = http.get(f"/api/v1/notifications{query}", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def summary(found: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """(type, from account id, status id) of each notification, in order."""
    return [(n["type"], n["account"]["id"], n["status"]["id"] if "status" in n else None) for n in found]


def follow(http: httpx.Client, follower: User, followee: User) -> None:
    assert http.post(f"/api/v1/accounts/{followee.id}/follow", headers=follower.auth).status_code == 200


def accept_private_mentions(http: httpx.Client, *readers: User) -> None:
    """Mastodon's default holds back private mentions from accounts the reader does not follow; these readers take
    them from anyone (for tests of what private mentions do once let through; kicau/notification_policies.py)."""
    for reader in readers:
        answer = http.patch("/api/v2/notifications/policy", headers=reader.auth,
                            json={"for_private_mentions": "accept"})
        assert answer.status_code == 200, answer.text


def test_mentions_and_new_followers_notify(http: httpx.Client, make_user: Callable[..., User]) -> None:
    alice, bob, carol = make_user("ntf_a"), make_user("ntf_b"), make_user("ntf_c")
    accept_private_mentions(http, carol)
    follow(http, bob, alice)
    follow(http, bob, alice)  # again: a follow that is not new notifies no one
    public = post(http, alice, f"hello @{bob.username} and @{carol.username}, from @{alice.username}")
    direct = post(http, alice, f"only you, @{carol.username}", visibility="direct")
    post(http, alice, "nobody named")
    eventually(lambda: len(notifications(http, carol)) == 2)

    # Newest first; an author naming itself is not notified.
    assert summary(notifications(http, carol)) == [("mention", alice.id, direct), ("mention", alice.id, public)]
    assert summary(notifications(http, bob)) == [("mention", alice.id, public)]
    eventually(lambda: summary(notifications(http, alice)) == [("follow", bob.id, None)])

    mention = notifications(http, carol)[0]
    assert set(mention) == {"id", "type", "created_at", "group_key", "account", "status"}
    assert mention["group_key"] == f"ungrouped-{mention['id']}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", mention["created_at"])
    assert mention["account"]["username"] == alice.username
    assert mention["status"]["visibility"] == "direct"
    assert [m["id"] for m in mention["status"]["mentions"]] == [carol.id]
    followed = notifications(http, alice)[0]
    assert "status" not in followed and followed["account"]["username"] == bob.username

    # Filtered by type, and by who caused them.
    assert notifications(http, carol, "?types[]=follow") == []
    assert summary(notifications(http, carol, "?types[]=mention&types[]=favourite")) == summary(
        notifications(http, carol))
    assert notifications(http, carol, "?exclude_types[]=mention") == []
    assert notifications(http, carol, f"?account_id={bob.id}") == []
    assert len(notifications(http, carol, f"?account_id={alice.id}")) == 2

    # One by id: the reader's own only.
    one = http.get(f"/api/v1/notifications/{mention['id']}", headers=carol.auth)
    assert one.status_code == 200 and one.json() == mention
    for reader in (bob, alice):
        other = http.get(f"/api/v1/notifications/{mention['id']}", headers=reader.auth)
        assert (other.status_code, other.json()) == (404, {"error": "Record not found"})

    # The deleted status's mentions go with it.
    assert http.delete(f"/api/v1/statuses/{public}", headers=alice.auth).status_code == 200
    eventually(lambda: notifications(http, bob) == [])
    assert summary(notifications(http, carol)) == [("mention", alice.id, direct)]

    # Dismissed, then cleared.
    dismissed = http.post(f"/api/v1/notifications/{mention['id']}/dismiss", headers=carol.auth)
    assert (dismissed.status_code, dismissed.json()) == (200, {})
    assert notifications(http, carol) == []
    again = http.post(f"/api/v1/notifications/{mention['id']}/dismiss", headers=carol.auth)
    assert (again.status_code, again.json()) == (404, {"error": "Record not found"})
    assert http.post(f"/api/v1/notifications/{followed['id']}/dismiss", headers=carol.auth).status_code == 404
    assert notifications(http, alice) != []  # not carol's to dismiss
    cleared = http.post("/api/v1/notifications/clear", headers=alice.auth)
    assert (cleared.status_code, cleared.json()) == (200, {})
    assert notifications(http, alice) == []


def test_notifications_page_with_mastodons_cursors(http: httpx.Client, make_user: Callable[..., User]) -> None:
    star = make_user("ntp_s")
    fans = [make_user("ntp_f") for _ in range(5)]
    for fan in fans:
        follow(http, fan, star)
    mentions = [post(http, fans[0], f"@{star.username} {n}") for n in range(3)]
    eventually(lambda: len(notifications(http, star)) == 8)
    everything = notifications(http, star)
    ids = [n["id"] for n in everything]
    assert ids == sorted(ids, key=int, reverse=True)
    assert [n["status"]["id"] for n in everything[:3]] == mentions[::-1]

    # Walked by the Link header, three at a time.
    seen: list[str] = []
    url: str | None = "/api/v1/notifications?limit=3"
    while url:
        answer = http.get(url, headers=star.auth)
        assert answer.status_code == 200, answer.text
        seen += [n["id"] for n in answer.json()]
        found = re.search(r'<([^>]+)>; rel="next"', answer.headers.get("link", ""))
        url = found.group(1) if found and answer.json() else None
    assert seen == ids

    # since_id: the newest above it; min_id: those just above it; max_id: those below it.
    assert [n["id"] for n in notifications(http, star, f"?since_id={ids[5]}&limit=2")] == ids[:2]
    assert [n["id"] for n in notifications(http, star, f"?min_id={ids[5]}&limit=2")] == ids[3:5]
    assert [n["id"] for n in notifications(http, star, f"?max_id={ids[2]}&limit=2")] == ids[3:5]
    # A filtered page keeps its cursors going: follows only, two at a time, all five.
    follows = [n["id"] for n in everything if n["type"] == "follow"]
    assert len(follows) == 5
    page = http.get("/api/v1/notifications?types[]=follow&limit=2", headers=star.auth)
    walked = [n["id"] for n in page.json()]
    while (found := re.search(r'<([^>]+)>; rel="next"', page.headers.get("link", ""))) and page.json():
        page = http.get(found.group(1), headers=star.auth)
        walked += [n["id"] for n in page.json()]
    assert walked == follows


def test_bad_notification_requests_are_refused(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader = make_user("ntb")
    cases = [
        ("GET", "/api/v1/notifications?limit=many", 400, "limit must be an integer"),
        ("GET", "/api/v1/notifications?max_id=abc", 400, "max_id must be a status id"),
        ("GET", "/api/v1/notifications?account_id=-1", 400, "account_id must be an account id"),
        ("GET", "/api/v1/notifications?" + "&".join(["types[]=mention"] * 21), 422, None),
        ("GET", "/api/v1/notifications?types[]=" + "x" * 65, 422, None),
        ("GET", "/api/v1/notifications?exclude_types[]=a%00b", 422, None),
        ("GET", "/api/v1/notifications/not-an-id", 404, "Record not found"),
        ("GET", "/api/v1/notifications/123", 404, "Record not found"),
        ("POST", "/api/v1/notifications/99999999999999999999/dismiss", 404, "Record not found"),
    ]
    for method, path, status, error in cases:
        answer = http.request(method, path, headers=reader.auth)
        assert answer.status_code == status, (path, answer.text)
        body = answer.json()
        assert set(body) == {"error"} and (error is None or body["error"] == error), (path, body)
    for method, path in [("GET", "/api/v1/notifications"), ("POST", "/api/v1/notifications/clear")]:
        answer = http.request(method, path)
        assert (answer.status_code, set(answer.json())) == (401, {"error"})
    # Within bounds, names Kicau does not record match nothing, and an empty one is as none.
    assert notifications(http, reader, "?types[]=poll") == []
    assert notifications(http, reader, "?types[]=&limit=0") == []


def test_notifications_reach_the_user_stream(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    reader, author, fan = make_user("nts_r"), make_user("nts_a"), make_user("nts_f")
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as streamer, \
            streamer.stream("GET", "/api/v1/streaming/user", headers=reader.auth) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        warm_until_seen(gateway_url, reader, lines)  # the fanout knows of the stream
        status = post(http, author, f"hey @{reader.username}")
        follow(http, fan, reader)
        events = read_events(lines, 2)
    assert [e["event"] for e in events] == ["notification", "notification"]
    assert all("id" not in e for e in events)  # no SSE id: those are the home timeline's resume points
    # In either order: statuses and follows are events of two topics.
    mention, followed = sorted((json.loads(e["data"]) for e in events), key=lambda n: n["type"] != "mention")
    assert (mention["type"], mention["account"]["id"], mention["status"]["id"]) == ("mention", author.id, status)
    assert (followed["type"], followed["account"]["id"], "status" in followed) == ("follow", fan.id, False)
    # The same notifications as the API serves. The stream may have them a moment before the API lists them: the
    # fanout sends a batch's deliveries first and writes its records beside its timeline writes (fanout README).
    listed = [followed["id"], mention["id"]]
    assert eventually(lambda: [n["id"] for n in notifications(http, reader)] == listed or None), \
        notifications(http, reader)


def test_the_notification_stream_carries_notifications_alone(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    """``GET /api/v1/streaming/user/notification``: Mastodon's ``user:notification`` stream over SSE."""
    reader, author = make_user("ntn_r"), make_user("ntn_a")
    follow(http, reader, author)  # the author's statuses reach the reader's user stream, and not this one
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as streamer, \
            streamer.stream("GET", "/api/v1/streaming/user/notification", headers=reader.auth) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        warm_until_seen(gateway_url, author, lines, text=f"@{reader.username} warm-up")
        post(http, author, "not a notification")
        mention = post(http, author, f"@{reader.username} now")
        (event,) = read_events(lines, 1)
    assert event["event"] == "notification" and "id" not in event and status_of(event) == mention
