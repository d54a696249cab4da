"""Notification policies and requests (kicau/notification_policies.py) through the public API of the running system:
Mastodon's defaults hold back private mentions from strangers, a request gathers a sender's, accepting it moves
them into the list and lets the sender through from then on, dismissing deletes them; a changed policy filters or
drops other kinds; bad input is a 4xx with a Mastodon error."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from kicau.web import ACCOUNT_HEADER
from tests.conftest import User, eventually
from tests.faults import harness
from tests.gateway.test_hashtag_stream import frames_until_quiet
from tests.gateway.test_streaming_bounds import ws_url
from tests.timeline.test_notifications import follow, notifications, summary
from tests.timeline.test_visibility import post


def policy(http: httpx.Client, reader: User) -> dict[str, Any]:
    answer = http.get("/api/v2/notifications/policy", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def requests(http: httpx.Client, reader: User, query: str = "") -> list[dict[str, Any]]:
    answer = http.get(f"/api/v1/notifications/requests{query}", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def fanout_caught_up() -> None:
    """Every event published so far is applied (what a policy dropped left nothing to wait for)."""
    harness.wait_for(lambda: harness.consumer_lag() == 0, 60, "the fanout to catch up")


def test_a_private_mention_from_a_stranger_waits_in_a_request_until_accepted(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    reader, stranger = make_user("npo_r"), make_user("npo_s")
    assert policy(http, reader) == {
        "for_not_following": "accept", "for_not_followers": "accept", "for_new_accounts": "accept",
        "for_private_mentions": "filter", "for_limited_accounts": "filter",
        "summary": {"pending_requests_count": 0, "pending_notifications_count": 0}}
    held = post(http, stranger, f"psst @{reader.username}", visibility="direct")
    public = post(http, stranger, f"hello @{reader.username}")  # a public mention is let through
    eventually(lambda: summary(notifications(http, reader)) == [("mention", stranger.id, public)] or None)

    assert policy(http, reader)["summary"] == {"pending_requests_count": 1, "pending_notifications_count": 1}
    [request] = requests(http, reader)
    assert (request["id"], request["account"]["id"], request["notifications_count"]) == (
        stranger.id, stranger.id, "1")
    assert request["last_status"]["id"] == held and request["last_status"]["visibility"] == "direct"
    assert request["created_at"] == request["updated_at"]
    assert http.get(f"/api/v1/notifications/requests/{stranger.id}", headers=reader.auth).json() == request
    # Held back from the list and its unread count, shown when asked for, and in the sender's own list.
    expected = [("mention", stranger.id, public), ("mention", stranger.id, held)]  # newest first
    assert summary(notifications(http, reader, "?include_filtered=true")) == expected
    assert summary(notifications(http, reader, f"?account_id={stranger.id}")) == expected
    assert http.get("/api/v1/notifications/unread_count", headers=reader.auth).json() == {"count": 1}
    # Nor does it make a conversation for the reader (Mastodon's notify service adds it to none).
    assert http.get("/api/v1/conversations", headers=reader.auth).json() == []
    grouped = http.get("/api/v2/notifications?include_filtered=true", headers=reader.auth).json()
    assert len(grouped["notification_groups"]) == 2
    # Mastodon 4.2's view of the same policy.
    assert http.get("/api/v1/notifications/policy", headers=reader.auth).json() == {
        "filter_not_following": False, "filter_not_followers": False, "filter_new_accounts": False,
        "filter_private_mentions": True, "summary": {"pending_requests_count": 1, "pending_notifications_count": 1}}

    accepted = http.post(f"/api/v1/notifications/requests/{stranger.id}/accept", headers=reader.auth)
    assert accepted.status_code == 200 and accepted.json() == {}, accepted.text
    assert summary(notifications(http, reader)) == expected  # with the id it would have had
    assert requests(http, reader) == []
    assert policy(http, reader)["summary"] == {"pending_requests_count": 0, "pending_notifications_count": 0}
    assert http.get("/api/v1/notifications/requests/merged", headers=reader.auth).json() == {"merged": True}
    # And the private mention joined the reader's conversations, unread, as it would have (Mastodon's unfilter).
    [conversation] = http.get("/api/v1/conversations", headers=reader.auth).json()
    assert (conversation["last_status"]["id"], conversation["unread"]) == (held, True)
    assert [a["id"] for a in conversation["accounts"]] == [stranger.id]
    # The sender is let through from now on.
    later = post(http, stranger, f"again, @{reader.username}", visibility="direct")
    eventually(lambda: summary(notifications(http, reader))[0] == ("mention", stranger.id, later) or None)
    assert requests(http, reader) == []


def notified_until_delivered(http: httpx.Client, friend: User, reader: User, ws: ClientConnection) -> None:
    """Mention the reader as ``friend`` until a mention reaches the socket's notification stream (registered
    asynchronously), reading past everything that came meanwhile."""
    for _ in range(60):
        marker = post(http, friend, f"@{reader.username} marker")
        if any(f["event"] == "notification" and json.loads(str(f["payload"]))["status"]["id"] == marker
               for f in frames_until_quiet(ws)):
            return
    raise AssertionError("the notification stream delivered nothing")


def test_a_held_notification_is_never_streamed_and_an_accepted_request_is_told(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    reader, friend, stranger = make_user("nps_r"), make_user("nps_f"), make_user("nps_s")
    with connect(ws_url(gateway_url) + "?stream=user:notification", additional_headers=reader.auth,
                 open_timeout=10) as ws:
        notified_until_delivered(http, friend, reader, ws)
        held = post(http, stranger, f"@{reader.username} psst", visibility="direct")
        after = post(http, friend, f"@{reader.username} after it")
        eventually(lambda: [r["last_status"]["id"] for r in requests(http, reader)] == [held] or None)
        frames = [(f["event"], json.loads(str(f["payload"]))["status"]["id"]) for f in frames_until_quiet(ws)]
        assert frames == [("notification", after)]  # the held one never came
        assert http.post(f"/api/v1/notifications/requests/{stranger.id}/accept",
                         headers=reader.auth).status_code == 200
        told = [(f["stream"], f["event"], f["payload"]) for f in frames_until_quiet(ws)]
        assert told == [(["user:notification"], "notifications_merged", "1")]


def test_a_merge_made_while_the_gateways_channel_was_down_is_told_once_it_is_back(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: Any,
) -> None:
    """``notifications_merged`` reaches a gateway on its Redis channel: one published while the channel is down
    never arrives. Once it is back, the gateway reads when each account streaming there last merged requests, and
    tells the streams that were not told since. The loss is made sure of as in tests/timeline/test_filters.py:
    the gateway stopped (SIGSTOP), its channel closed by Redis, the request accepted through the timeline service
    itself meanwhile."""
    reader, friend, stranger = make_user("npl_r"), make_user("npl_f"), make_user("npl_s")
    gateway = harness.service_pid("gateway")
    accept = f"http://127.0.0.1:{harness.service_port('timeline')}/internal/notifications/requests/accept"
    with connect(ws_url(gateway_url) + "?stream=user:notification", additional_headers=reader.auth,
                 open_timeout=10) as ws:
        notified_until_delivered(http, friend, reader, ws)
        held = post(http, stranger, f"@{reader.username} psst", visibility="direct")
        eventually(lambda: [r["last_status"]["id"] for r in requests(http, reader)] == [held] or None)
        assert list(frames_until_quiet(ws)) == []
        os.kill(gateway, signal.SIGSTOP)
        try:
            assert stack_redis.client_kill_filter(_type="pubsub") >= 1
            answer = httpx.post(accept, params={"ids": stranger.id}, headers={ACCOUNT_HEADER: reader.id}, timeout=10)
            assert answer.status_code == 200, answer.text
        finally:
            os.kill(gateway, signal.SIGCONT)
        told: list[tuple[str, object]] = []

        def merged_told() -> bool:
            told.extend((str(f["event"]), f["payload"]) for f in frames_until_quiet(ws))
            return ("notifications_merged", "1") in told

        eventually(merged_told, timeout=20)
        # Once, and beside it at most the merged notification itself, read again after the loss.
        assert told.count(("notifications_merged", "1")) == 1, told
        assert all(event == "notification" for event, _ in told if event != "notifications_merged"), told


def test_private_mentions_from_followed_accounts_or_answering_the_reader_are_accepted(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    reader, friend, stranger = make_user("npa_r"), make_user("npa_f"), make_user("npa_s")
    follow(http, reader, friend)
    asked = post(http, reader, f"@{stranger.username} what do you think?", visibility="direct")
    answer = post(http, stranger, f"@{reader.username} this", visibility="direct", in_reply_to_id=asked)
    from_friend = post(http, friend, f"@{reader.username} hi", visibility="direct")
    eventually(lambda: sorted(summary(notifications(http, reader))) == sorted(
        [("mention", stranger.id, answer), ("mention", friend.id, from_friend)]) or None)
    assert requests(http, reader) == []
    # The reader's first private mention was from a stranger to the stranger: its own default policy held it.
    [request] = requests(http, stranger)
    assert (request["id"], request["last_status"]["id"]) == (reader.id, asked)


def test_a_changed_policy_filters_or_drops_other_kinds_and_a_dismissed_request_is_gone(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    reader, stranger, follower, friend = (make_user("npc_r"), make_user("npc_s"), make_user("npc_f"),
                                          make_user("npc_g"))
    follow(http, reader, friend)
    changed = http.patch("/api/v2/notifications/policy", headers=reader.auth,
                         json={"for_not_following": "drop", "for_not_followers": "filter"})
    assert changed.status_code == 200, changed.text
    assert {k: v for k, v in changed.json().items() if k != "summary"} == {
        "for_not_following": "drop", "for_not_followers": "filter", "for_new_accounts": "accept",
        "for_private_mentions": "filter", "for_limited_accounts": "filter"}
    mine = post(http, reader, "something to favourite")
    # Dropped: a stranger's favourite (not followed: a drop wins over the filter of a non-follower).
    assert http.post(f"/api/v1/statuses/{mine}/favourite", headers=stranger.auth).status_code == 200
    # Filtered: the followed friend's favourite (it does not follow the reader) and a new follower the reader
    # follows back (following for less than three days).
    assert http.post(f"/api/v1/statuses/{mine}/favourite", headers=friend.auth).status_code == 200
    follow(http, reader, follower)
    follow(http, follower, reader)
    fanout_caught_up()
    assert notifications(http, reader) == []
    held = summary(notifications(http, reader, "?include_filtered=true"))
    assert sorted(held) == sorted([("favourite", friend.id, mine), ("follow", follower.id, None)])
    assert requests(http, reader) == []  # only mentions (and quotes) make requests
    # Mastodon's summary sums its requests' counts: held notifications outside any request count for nothing.
    assert policy(http, reader)["summary"] == {"pending_requests_count": 0, "pending_notifications_count": 0}
    assert notifications(http, reader, f"?account_id={stranger.id}") == []  # dropped: never recorded

    # The friend's private mention makes a request (it does not follow the reader); dismissed in bulk, its
    # held notifications are deleted.
    psst = post(http, friend, f"@{reader.username} psst", visibility="direct")
    eventually(lambda: [r["last_status"]["id"] for r in requests(http, reader)] == [psst] or None)
    # Its count is the held mentions and quotes alone; the held favourite goes with it all the same.
    assert requests(http, reader)[0]["notifications_count"] == "1"
    assert policy(http, reader)["summary"] == {"pending_requests_count": 1, "pending_notifications_count": 1}
    dismissed = http.post("/api/v1/notifications/requests/dismiss", headers=reader.auth,
                          data={"id[]": [friend.id, "12345"]})
    assert dismissed.status_code == 200, dismissed.text
    assert requests(http, reader) == []
    assert summary(notifications(http, reader, "?include_filtered=true")) == [("follow", follower.id, None)]
    # Accepted back to everything: the next favourite from the stranger notifies.
    assert http.patch("/api/v2/notifications/policy", headers=reader.auth,
                      data={"for_not_following": "accept", "for_not_followers": "accept"}).status_code == 200
    assert http.post(f"/api/v1/statuses/{mine}/unfavourite", headers=stranger.auth).status_code == 200
    assert http.post(f"/api/v1/statuses/{mine}/favourite", headers=stranger.auth).status_code == 200
    eventually(lambda: summary(notifications(http, reader)) == [("favourite", stranger.id, mine)] or None)


def test_a_strangers_quote_is_held_in_a_request_as_a_mention_is(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    """Mastodon 4.5 filters a quote as it filters a mention, and a held quote makes a request of its own."""
    reader, stranger = make_user("npq_r"), make_user("npq_s")
    assert http.patch("/api/v2/notifications/policy", headers=reader.auth,
                      json={"for_not_following": "filter"}).status_code == 200
    mine = post(http, reader, "worth quoting")
    quote = post(http, stranger, "quoting you", quoted_status_id=mine)
    eventually(lambda: [r["last_status"]["id"] for r in requests(http, reader)] == [quote] or None)
    assert notifications(http, reader) == []
    assert summary(notifications(http, reader, "?include_filtered=true")) == [("quote", stranger.id, quote)]
    assert requests(http, reader)[0]["notifications_count"] == "1"
    assert policy(http, reader)["summary"] == {"pending_requests_count": 1, "pending_notifications_count": 1}
    accepted = http.post(f"/api/v1/notifications/requests/{stranger.id}/accept", headers=reader.auth)
    assert accepted.status_code == 200, accepted.text
    eventually(lambda: summary(notifications(http, reader)) == [("quote", stranger.id, quote)] or None)
    assert requests(http, reader) == []


def test_bad_input_is_refused_with_a_mastodon_error(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader = make_user("npb_r")
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("PATCH", "/api/v2/notifications/policy", {"for_new_accounts": "maybe"}, 422),
        ("PATCH", "/api/v2/notifications/policy", {"for_not_following": ["drop"]}, 422),
        ("PUT", "/api/v1/notifications/policy", {"filter_new_accounts": "perhaps"}, 422),
        ("POST", "/api/v1/notifications/requests/accept", {"id[]": [str(n) for n in range(101)]}, 422),
        ("POST", "/api/v1/notifications/requests/dismiss", {"id[]": ["not-an-id"]}, 400),
    ]
    for method, path, body, code in cases:
        answer = http.request(method, path, headers=reader.auth, json=body)
        assert answer.status_code == code, (path, body, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    for path, code in [("/api/v1/notifications/requests/12345/accept", 404),
                       ("/api/v1/notifications/requests/nope/dismiss", 404)]:
        answer = http.post(path, headers=reader.auth)
        assert answer.status_code == code and set(answer.json()) == {"error"}, answer.text
    assert http.get("/api/v1/notifications/requests/12345", headers=reader.auth).status_code == 404
    assert http.get("/api/v2/notifications/policy").status_code == 401
    assert http.get("/api/v1/notifications/requests?limit=x", headers=reader.auth).status_code == 400
    # Nothing was changed by the refused requests.
    assert policy(http, reader)["for_new_accounts"] == "accept"
