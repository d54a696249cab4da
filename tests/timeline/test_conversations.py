"""Direct conversations (kicau/conversations.py) through the public API of the running system: who gets one, the
thread and participants that make one, its last status and unread flag, paging, reading and forgetting, a deleted
status leaving it, blocks, bad input, and the ``conversation`` event on the ``direct`` stream (SSE and WebSocket),
which the ``user`` stream does not carry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from websockets.sync.client import connect

from tests.conftest import User, eventually
from tests.gateway.test_hashtag_stream import frames_until_quiet
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.gateway.test_streaming_bounds import ws_url
from tests.timeline.test_notifications import accept_private_mentions, notifications
from tests.timeline.test_visibility import post


def conversations(http: httpx.Client, reader: User, query: str = "") -> list[dict[str, Any]]:
    answer = http.get(f"/api/v1/conversations{query}", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def summary(found: list[dict[str, Any]]) -> list[tuple[str, list[str], bool]]:
    """(last status id, account ids, unread) of each conversation, in order."""
    return [(c["last_status"]["id"], [a["id"] for a in c["accounts"]], c["unread"]) for c in found]


def listed(http: httpx.Client, reader: User, count: int) -> list[dict[str, Any]]:
    """The reader's conversations once it has ``count`` of them."""
    found: list[dict[str, Any]] = []

    def check() -> bool:
        found[:] = conversations(http, reader)
        return len(found) == count

    eventually(check)
    return found


def dm(http: httpx.Client, author: User, text: str, **fields: Any) -> str:
    return post(http, author, text, visibility="direct", **fields)


def test_direct_statuses_make_conversations(http: httpx.Client, make_user: Callable[..., User]) -> None:
    alice, bob, carol = make_user("cnv_a"), make_user("cnv_b"), make_user("cnv_c")
    accept_private_mentions(http, alice, bob, carol)
    first = dm(http, alice, f"@{bob.username} psst")
    eventually(lambda: len(conversations(http, bob)) == 1)
    (to_bob,) = conversations(http, bob)
    assert set(to_bob) == {"id", "unread", "accounts", "last_status"}
    assert summary([to_bob]) == [(first, [alice.id], True)]
    assert to_bob["last_status"]["visibility"] == "direct" and to_bob["accounts"][0]["username"] == alice.username
    (of_alice,) = listed(http, alice, 1)
    # The same conversation for both, read by its author.
    assert of_alice["id"] == to_bob["id"] and summary([of_alice]) == [(first, [bob.id], False)]

    # A reply among the same accounts is the same conversation, now unread for the one who did not write it.
    reply = dm(http, bob, f"@{alice.username} hi back", in_reply_to_id=first)
    eventually(lambda: summary(conversations(http, alice)) == [(reply, [bob.id], True)])
    # Each member's conversation is its own write (kicau/conversations.py): the author's may land after alice's.
    eventually(lambda: summary(conversations(http, bob)) == [(reply, [alice.id], False)])
    assert conversations(http, alice)[0]["id"] == to_bob["id"]

    # Neither a public mention nor someone left out makes one; another thread, or other accounts, do.
    post(http, alice, f"@{bob.username} in public")
    group = dm(http, alice, f"@{bob.username} @{carol.username} all of us")
    eventually(lambda: len(conversations(http, carol)) == 1)
    assert summary(conversations(http, carol)) == [(group, sorted([alice.id, bob.id], key=int), True)]
    found = listed(http, bob, 2)
    assert [c["last_status"]["id"] for c in found] == [group, reply]  # the newest last status first
    group_id = found[0]["id"]
    assert group_id != to_bob["id"]

    # Paged by last status ids, as the Link header says.
    page = http.get("/api/v1/conversations?limit=1", headers=bob.auth)
    assert [c["id"] for c in page.json()] == [group_id]
    assert f"max_id={group}" in page.headers["link"] and f"min_id={group}" in page.headers["link"]
    assert [c["id"] for c in conversations(http, bob, f"?max_id={group}")] == [to_bob["id"]]
    assert [c["id"] for c in conversations(http, bob, f"?min_id={reply}")] == [group_id]
    assert conversations(http, bob, f"?since_id={group}") == []

    # Read: unread no more, for its reader alone.
    read = http.post(f"/api/v1/conversations/{to_bob['id']}/read", headers=alice.auth)
    assert read.status_code == 200, read.text
    assert summary([read.json()]) == [(reply, [bob.id], False)] and read.json()["id"] == to_bob["id"]
    assert summary(conversations(http, alice))[-1] == (reply, [bob.id], False)
    assert http.post(f"/api/v1/conversations/{to_bob['id']}/read", headers=alice.auth).status_code == 200  # again
    for reader, conversation_id in ((carol, to_bob["id"]), (alice, "123"), (alice, "not-an-id")):
        answer = http.post(f"/api/v1/conversations/{conversation_id}/read", headers=reader.auth)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"})

    # A deleted status leaves it: the one before is its last again, for both.
    assert http.delete(f"/api/v1/statuses/{reply}", headers=bob.auth).status_code == 200
    eventually(lambda: summary(conversations(http, bob))[-1] == (first, [alice.id], False))
    eventually(lambda: summary(conversations(http, alice))[-1][:2] == (first, [bob.id]))

    # Forgotten by one member, kept by the others; a second time, there is nothing to forget.
    forgot = http.delete(f"/api/v1/conversations/{group_id}", headers=bob.auth)
    assert (forgot.status_code, forgot.json()) == (200, {})
    assert [c["id"] for c in conversations(http, bob)] == [to_bob["id"]]
    assert [c["id"] for c in conversations(http, carol)] == [group_id]
    again = http.delete(f"/api/v1/conversations/{group_id}", headers=bob.auth)
    assert (again.status_code, again.json()) == (404, {"error": "Record not found"})
    # A new status in it brings it back.
    later = dm(http, carol, f"@{alice.username} @{bob.username} still here?", in_reply_to_id=group)
    eventually(lambda: [c["last_status"]["id"] for c in conversations(http, bob)] == [later, first])

    # Its last status deleted, a conversation of one status goes.
    assert http.delete(f"/api/v1/statuses/{first}", headers=alice.auth).status_code == 200
    eventually(lambda: [c["id"] for c in conversations(http, alice)] == [group_id])


def test_conversations_with_oneself_and_with_blockers(http: httpx.Client, make_user: Callable[..., User]) -> None:
    dana, erin = make_user("cnv_d"), make_user("cnv_e")
    note = dm(http, dana, "a note to myself")
    # Written to no one else: the conversation shows its author, as Mastodon's.
    eventually(lambda: summary(conversations(http, dana)) == [(note, [dana.id], False)])

    assert http.post(f"/api/v1/accounts/{dana.id}/block", headers=erin.auth).status_code == 200
    blocked = dm(http, dana, f"@{erin.username} can you hear me?")
    eventually(lambda: [c["last_status"]["id"] for c in conversations(http, dana)] == [blocked, note])
    # Not notified, no conversation: the blocker never hears of it.
    assert notifications(http, erin) == [] and conversations(http, erin) == []


def test_conversation_requests_refuse_bad_input(http: httpx.Client, make_user: Callable[..., User],
                                                app_credentials: dict[str, Any]) -> None:
    from tests.conftest import narrow_token

    frank = make_user("cnv_f")
    assert http.get("/api/v1/conversations").status_code == 401
    for query in ("?limit=abc", "?max_id=abc", "?since_id=-1"):
        answer = http.get(f"/api/v1/conversations{query}", headers=frank.auth)
        assert answer.status_code == 400 and "error" in answer.json(), (query, answer.text)
    assert http.get("/api/v1/conversations?limit=1000", headers=frank.auth).status_code == 200  # clamped
    reader_only = narrow_token(http, app_credentials, frank, scope="read:statuses")
    assert http.get("/api/v1/conversations", headers=reader_only).status_code == 200
    for method, path in (("POST", "/api/v1/conversations/1/read"), ("DELETE", "/api/v1/conversations/1")):
        answer = http.request(method, path, headers=reader_only)
        assert answer.status_code == 403 and "error" in answer.json(), answer.text


def test_conversations_reach_the_direct_stream(gateway_url: str, http: httpx.Client,
                                               make_user: Callable[..., User]) -> None:
    reader, author = make_user("cns_r"), make_user("cns_a")
    accept_private_mentions(http, reader)
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as streamer, \
            streamer.stream("GET", "/api/v1/streaming/direct", headers=reader.auth) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        warm_until_seen(gateway_url, author, lines, text=f"@{reader.username} warm-up", visibility="direct")
        post(http, author, f"@{reader.username} in public")  # a mention, not a conversation
        status = dm(http, author, f"@{reader.username} on the direct stream")
        (event,) = read_events(lines, 1)
    assert event["event"] == "conversation" and "id" not in event  # no SSE id: nothing to resume
    conversation = json.loads(event["data"])
    assert summary([conversation]) == [(status, [author.id], True)]
    # The conversation the API lists.
    # (Each warm-up status began a thread, and so a conversation, of its own.)
    eventually(lambda: conversations(http, reader)[0]["last_status"]["id"] == status)
    served = conversations(http, reader)[0]
    assert served["id"] == conversation["id"] and served["accounts"] == conversation["accounts"]
    assert served["last_status"]["id"] == status


def test_direct_beside_user_on_one_websocket(gateway_url: str, http: httpx.Client,
                                             make_user: Callable[..., User]) -> None:
    """On a socket subscribed to both, a direct status arrives on ``user`` as an update (it is in the reader's home
    timeline: the reader follows its author) and on ``direct`` as a conversation; on ``user`` alone, once."""
    reader, author = make_user("cnw_r"), make_user("cnw_a")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    with connect(ws_url(gateway_url) + "?stream=direct", additional_headers=reader.auth, open_timeout=10) as ws:
        for _ in range(60):
            marker = dm(http, author, f"@{reader.username} marker")
            if any(f["stream"] == ["direct"] and json.loads(str(f["payload"]))["last_status"]["id"] == marker
                   for f in frames_until_quiet(ws)):
                break
        else:
            raise AssertionError("the direct subscription delivered nothing")
        ws.send(json.dumps({"type": "subscribe", "stream": "user"}))
        for _ in range(60):
            marker = post(http, author, "user marker")
            if any(f["stream"] == ["user"] and f["event"] == "update"
                   and json.loads(str(f["payload"]))["id"] == marker for f in frames_until_quiet(ws)):
                break
        else:
            raise AssertionError("the user subscription delivered nothing")
        status = dm(http, author, f"@{reader.username} on both")
        frames = [(f["stream"], f["event"]) for f in frames_until_quiet(ws)
                  if f["event"] in ("update", "conversation")]
        assert sorted(frames) == [(["direct"], "conversation"), (["user"], "update")]

        ws.send(json.dumps({"type": "unsubscribe", "stream": "direct"}))
        list(frames_until_quiet(ws))
        later = dm(http, author, f"@{reader.username} on user alone")
        alone = [(f["stream"], f["event"], json.loads(str(f["payload"]))["id"]) for f in frames_until_quiet(ws)
                 if f["event"] in ("update", "conversation")]
        assert alone == [(["user"], "update", later)], status
