"""Mastodon's ``hashtag`` and ``hashtag:local`` streams (kicau/tag_timeline.py): the public statuses carrying a
hashtag as they are posted, and their deletions; never one without it, nor an unlisted, followers-only or direct
one. Over SSE (``?tag=``) and over a WebSocket, where a socket may follow several hashtags beside ``public`` and
``user``, each frame naming its stream as Mastodon's do (``["hashtag", "<name>"]``); bad requests get 400."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import User
from tests.gateway.test_public_stream import public_stream, warm_until_public
from tests.gateway.test_streaming import read_events, status_of, warm_until_seen
from tests.gateway.test_streaming_bounds import next_frame, post, ws_url


def fresh_tag() -> str:
    return "st" + uuid.uuid4().hex[:12]


@pytest.mark.parametrize("path", ["/api/v1/streaming/hashtag", "/api/v1/streaming/hashtag/local"])
def test_a_hashtags_statuses_and_their_deletions_stream(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], path: str
) -> None:
    author, stranger = make_user("hst_a"), make_user("hst_s")  # the stranger follows no one
    tag = fresh_tag()
    with public_stream(gateway_url, stranger, f"{path}?tag=%23{tag.upper()}") as lines:
        warm_until_seen(gateway_url, author, lines, text=f"warm-up #{tag}")
        post(http, author, "public, without the hashtag")
        post(http, author, f"public, another hashtag #{fresh_tag()}")
        for visibility in ("unlisted", "private", "direct"):
            answer = http.post("/api/v1/statuses", headers=author.auth,
                               json={"status": f"not public: {visibility} #{tag}", "visibility": visibility})
            assert answer.status_code == 200, answer.text
        shown = post(http, author, f"public, with #{tag.upper()}")
        (update,) = read_events(lines, 1)
        # The first event after the warm-up is the tagged public status: none of the others was streamed.
        assert update["event"] == "update" and "id" not in update, update
        status = json.loads(update["data"])
        assert (status["id"], status["tags"][0]["name"]) == (shown, tag)
        assert http.delete(f"/api/v1/statuses/{shown}", headers=author.auth).status_code == 200
        (deleted,) = read_events(lines, 1)
        assert (deleted["event"], status_of(deleted)) == ("delete", shown)


def test_hashtag_streams_refuse_bad_requests(gateway_url: str, make_user: Callable[..., User]) -> None:
    reader = make_user("hst_bad")
    for query in ("", "?tag=", "?tag=123", "?tag=a%20b", "?tag=%23"):
        answer = httpx.get(f"{gateway_url}/api/v1/streaming/hashtag{query}", headers=reader.auth, timeout=30)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)
    answer = httpx.get(f"{gateway_url}/api/v1/streaming/hashtag?tag=kicau", timeout=30)
    assert answer.status_code == 401 and set(answer.json()) == {"error"}, answer.text
    with connect(ws_url(gateway_url), additional_headers=reader.auth, open_timeout=10) as ws:
        for message in ({"type": "subscribe", "stream": "hashtag"}, {"type": "subscribe", "stream": "hashtag",
                                                                       "tag": "!!"},
                        {"type": "subscribe", "stream": "hashtag:local", "tag": 5}):
            ws.send(json.dumps(message))
            reply = next_frame(ws)
            assert reply["status"] == 400 and isinstance(reply["error"], str), reply
    with connect(ws_url(gateway_url) + "?stream=hashtag", additional_headers=reader.auth, open_timeout=10) as ws:
        assert next_frame(ws) == {"error": "No tag for stream provided", "status": 400}


def warm_until_tagged(http: httpx.Client, author: User, ws: ClientConnection, tag: str) -> None:
    """Post with ``tag`` until the socket's hashtag subscription (registered asynchronously) delivers."""
    warm_until_public(http, author, ws, text=f"warm-up #{tag}")


def frames_until_quiet(ws: ClientConnection) -> Iterator[dict[str, object]]:
    with contextlib.suppress(TimeoutError):
        while True:
            yield next_frame(ws, timeout=1.5)


def subscribe_until_delivered(http: httpx.Client, author: User, ws: ClientConnection, stream: str) -> None:
    """Subscribe the socket to ``stream`` (registered asynchronously) and post as ``author`` until a marker arrives
    on it, reading past everything that came meanwhile."""
    ws.send(json.dumps({"type": "subscribe", "stream": stream}))
    for _ in range(60):
        marker = post(http, author, f"{stream} marker")
        if any(f["stream"] == [stream] and json.loads(str(f["payload"]))["id"] == marker
               for f in frames_until_quiet(ws)):
            return
    raise AssertionError(f"the {stream} subscription delivered nothing")


def test_several_hashtags_beside_public_on_one_websocket(gateway_url: str, http: httpx.Client,
                                                         make_user: Callable[..., User]) -> None:
    author, reader = make_user("hws_a"), make_user("hws_r")
    one, two = fresh_tag(), fresh_tag()
    with connect(ws_url(gateway_url) + f"?stream=hashtag&tag={one}", additional_headers=reader.auth,
                 open_timeout=10) as ws:
        warm_until_tagged(http, author, ws, one)
        ws.send(json.dumps({"type": "subscribe", "stream": "hashtag:local", "tag": f"#{two.upper()}"}))
        ws.send(json.dumps({"type": "subscribe", "stream": "hashtag", "tag": one}))  # a repeat changes nothing
        warm_until_tagged(http, author, ws, two)

        both = post(http, author, f"#{one} and #{two}")
        only_two = post(http, author, f"just #{two}")
        post(http, author, "neither")
        frames = [(f["stream"], json.loads(str(f["payload"]))["id"]) for f in frames_until_quiet(ws)]
        assert sorted(frames) == sorted([(["hashtag", one], both), (["hashtag:local", two], both),
                                         (["hashtag:local", two], only_two)]), frames

        # Beside public: a tagged status comes on each stream that carries it, an untagged one on public alone.
        subscribe_until_delivered(http, author, ws, "public")
        tagged = post(http, author, f"#{one}, public")
        untagged = post(http, author, "untagged, public")
        frames = [(f["stream"], json.loads(str(f["payload"]))["id"]) for f in frames_until_quiet(ws)]
        assert sorted(frames) == sorted([(["hashtag", one], tagged), (["public"], tagged), (["public"], untagged)])

        # Unsubscribed from one hashtag and from public: the other hashtag goes on alone, deletions included.
        ws.send(json.dumps({"type": "unsubscribe", "stream": "hashtag", "tag": one}))
        ws.send(json.dumps({"type": "unsubscribe", "stream": "public"}))
        list(frames_until_quiet(ws))
        later = post(http, author, f"#{one} #{two} later")
        assert http.delete(f"/api/v1/statuses/{later}", headers=author.auth).status_code == 200
        last = list(frames_until_quiet(ws))
        assert [(f["stream"], f["event"]) for f in last] == [(["hashtag:local", two], "update"),
                                                             (["hashtag:local", two], "delete")]
        assert json.loads(str(last[0]["payload"]))["id"] == later and last[1]["payload"] == later
