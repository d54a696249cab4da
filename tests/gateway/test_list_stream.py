"""Mastodon's ``list`` stream (kicau/lists.py): the statuses reaching one of the user's lists' timelines as they are
posted, their edits and their deletions; never a status of an account outside the list. Over SSE (``?list=``) and over a
WebSocket beside ``user``, each frame naming its stream as Mastodon's do (``["list", "<id>"]``); a list that is not
the user's is a 404, none named a 400."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
from websockets.sync.client import connect

from tests.conftest import User
from tests.gateway.test_hashtag_stream import frames_until_quiet, subscribe_until_delivered
from tests.gateway.test_public_stream import public_stream, warm_until_public
from tests.gateway.test_streaming import read_events, status_of, warm_until_seen
from tests.gateway.test_streaming_bounds import next_frame, post, ws_url
from tests.graph.test_lists import add, follow, make_list
from tests.timeline.test_visibility import post as visible_post


def test_a_lists_statuses_and_their_deletions_stream_to_its_owner(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    owner, member, outsider = make_user("lst_o"), make_user("lst_m"), make_user("lst_x")
    follow(http, owner, member, outsider)
    list_id = make_list(http, owner, "Streamed")["id"]
    assert add(http, owner, list_id, member).status_code == 200
    with public_stream(gateway_url, owner, f"/api/v1/streaming/list?list={list_id}") as lines:
        warm_until_seen(gateway_url, member, lines)
        post(http, outsider, "followed, but not in the list")
        post(http, owner, "the owner's own")
        shown = post(http, member, "in the list")
        (update,) = read_events(lines, 1)
        # The first event after the warm-up is the member's: neither of the others was streamed. No resume id.
        assert update["event"] == "update" and "id" not in update, update
        assert json.loads(update["data"])["id"] == shown
        # An edit of it comes as Mastodon's status.update (services/post/edits.py).
        edited = http.put(f"/api/v1/statuses/{shown}", headers=member.auth, json={"status": "in the list, edited"})
        assert edited.status_code == 200, edited.text
        (update,) = read_events(lines, 1)
        assert update["event"] == "status.update" and "id" not in update, update
        assert json.loads(update["data"])["content"] == edited.json()["content"]
        assert http.delete(f"/api/v1/statuses/{shown}", headers=member.auth).status_code == 200
        (deleted,) = read_events(lines, 1)
        assert (deleted["event"], status_of(deleted)) == ("delete", shown)


def test_a_list_beside_user_on_one_websocket(gateway_url: str, http: httpx.Client,
                                             make_user: Callable[..., User]) -> None:
    owner, member, outsider = make_user("lws_o"), make_user("lws_m"), make_user("lws_x")
    follow(http, owner, member, outsider)
    list_id = make_list(http, owner, "Beside")["id"]
    assert add(http, owner, list_id, member).status_code == 200
    with connect(ws_url(gateway_url) + f"?stream=list&list={list_id}", additional_headers=owner.auth,
                 open_timeout=10) as ws:
        warm_until_public(http, member, ws)
        subscribe_until_delivered(http, outsider, ws, "user")
        listed = post(http, member, "on both")
        home_only = post(http, outsider, "at home only")
        frames = [(f["stream"], json.loads(str(f["payload"]))["id"]) for f in frames_until_quiet(ws)]
        assert sorted(frames) == sorted([(["list", list_id], listed), (["user"], listed), (["user"], home_only)])

        # Unsubscribed from the list: its statuses come on ``user`` alone.
        ws.send(json.dumps({"type": "unsubscribe", "stream": "list", "list": list_id}))
        list(frames_until_quiet(ws))
        later = post(http, member, "after unsubscribing")
        assert [(f["stream"], json.loads(str(f["payload"]))["id"]) for f in frames_until_quiet(ws)] == [
            (["user"], later)]


def test_list_streams_refuse_bad_requests(gateway_url: str, http: httpx.Client,
                                          make_user: Callable[..., User]) -> None:
    owner, other = make_user("lsb_o"), make_user("lsb_x")
    list_id = make_list(http, owner)["id"]
    for query, status in (("", 400), ("?list=", 400), ("?list=x", 404), ("?list=123", 404)):
        answer = httpx.get(f"{gateway_url}/api/v1/streaming/list{query}", headers=owner.auth, timeout=30)
        assert answer.status_code == status and set(answer.json()) == {"error"}, (query, answer.text)
    answer = httpx.get(f"{gateway_url}/api/v1/streaming/list?list={list_id}", headers=other.auth, timeout=30)
    assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), answer.text
    answer = httpx.get(f"{gateway_url}/api/v1/streaming/list?list={list_id}", timeout=30)
    assert answer.status_code == 401, answer.text
    with connect(ws_url(gateway_url), additional_headers=other.auth, open_timeout=10) as ws:
        for message, status in (({"type": "subscribe", "stream": "list"}, 400),
                                ({"type": "subscribe", "stream": "list", "list": True}, 400),
                                ({"type": "subscribe", "stream": "list", "list": list_id}, 404)):
            ws.send(json.dumps(message))
            reply = next_frame(ws)
            assert reply["status"] == status and isinstance(reply["error"], str), reply
    with connect(ws_url(gateway_url) + f"?stream=list&list={list_id}", additional_headers=other.auth,
                 open_timeout=10) as ws:
        assert next_frame(ws) == {"error": "Record not found", "status": 404}


def updates_until(lines: Iterator[str], last: str) -> list[str]:
    """The ids of the ``update`` events read up to and with ``last``."""
    seen: list[str] = []
    while not seen or seen[-1] != last:
        (event,) = read_events(lines, 1)
        if event["event"] == "update":
            seen.append(json.loads(event["data"])["id"])
    return seen


def test_a_lists_stream_is_sent_the_replies_its_policy_shows(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    """As Mastodon pushes them, and as the list's page shows them (tests/timeline/test_list_timelines.py): a member's
    reply to the owner or to itself always; to another member under ``list``; to any account the owner follows
    under ``followed``; to no one else under ``none``; never to a stranger. A changed policy applies from the next
    status on."""
    owner, member, fellow, followed, stranger = (make_user("lrp_o"), make_user("lrp_m"), make_user("lrp_f"),
                                                 make_user("lrp_d"), make_user("lrp_s"))
    follow(http, owner, member, fellow, followed)
    list_id = make_list(http, owner, "Replies")["id"]
    assert add(http, owner, list_id, member, fellow).status_code == 200
    parents = {who.id: visible_post(http, who, f"a status of {who.username}")
               for who in (owner, member, fellow, followed, stranger)}

    def replies(policy: str) -> tuple[dict[str, str], str]:
        made = {to.username: visible_post(http, member, f"@{to.username} under {policy}",
                                          in_reply_to_id=parents[to.id])
                for to in (stranger, followed, fellow, owner, member)}
        return made, visible_post(http, member, f"marker under {policy}")

    expected = {"list": (fellow, owner, member), "followed": (followed, fellow, owner, member),
                "none": (owner, member)}
    with public_stream(gateway_url, owner, f"/api/v1/streaming/list?list={list_id}") as lines:
        warm_until_seen(gateway_url, member, lines)
        for policy in ("list", "followed", "none"):
            changed = http.put(f"/api/v1/lists/{list_id}", headers=owner.auth, json={"replies_policy": policy})
            assert changed.status_code == 200 and changed.json()["replies_policy"] == policy, changed.text
            made, marker = replies(policy)
            assert updates_until(lines, marker) == [*(made[to.username] for to in expected[policy]), marker], policy


def test_a_lists_stream_is_sent_the_edits_of_the_replies_its_policy_shows(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    """An edit's ``status.update`` goes where its status would: a member's reply to a stranger, kept off the list's
    stream, is kept off it when edited; its reply to the owner is not."""
    owner, member, stranger = make_user("lre_o"), make_user("lre_m"), make_user("lre_s")
    follow(http, owner, member)
    list_id = make_list(http, owner, "Edited replies")["id"]
    assert add(http, owner, list_id, member).status_code == 200
    to_stranger = visible_post(http, member, f"@{stranger.username} hi",
                               in_reply_to_id=visible_post(http, stranger, "a parent"))
    to_owner = visible_post(http, member, f"@{owner.username} hi", in_reply_to_id=visible_post(http, owner, "mine"))
    with public_stream(gateway_url, owner, f"/api/v1/streaming/list?list={list_id}") as lines:
        warm_until_seen(gateway_url, member, lines)
        for reply in (to_stranger, to_owner):
            answer = http.put(f"/api/v1/statuses/{reply}", headers=member.auth, json={"status": "edited"})
            assert answer.status_code == 200, answer.text
        marker = visible_post(http, member, "marker")
        seen: list[tuple[str, str]] = []
        while not seen or seen[-1] != ("update", marker):
            (event,) = read_events(lines, 1)
            seen.append((event["event"], json.loads(event["data"])["id"]))
        assert seen == [("status.update", to_owner), ("update", marker)]
