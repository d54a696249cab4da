"""Mastodon's ``public`` and ``public:local`` streams (kicau/public_timeline.py): every public status as it is
posted and its deletion, to anyone holding a user token, never an unlisted, followers-only or direct status; over
SSE and over a WebSocket, where they sit beside ``user`` on one socket, each frame naming its stream."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import User
from tests.gateway.test_streaming import read_events, status_of, warm_until_seen
from tests.gateway.test_streaming_bounds import follow, next_frame, post, ws_url


@contextlib.contextmanager
def public_stream(gateway_url: str, reader: User, path: str) -> Iterator[Iterator[str]]:
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as client, \
            client.stream("GET", path, headers=reader.auth) as stream:
        assert stream.status_code == 200
        yield stream.iter_lines()


@pytest.mark.parametrize("path", ["/api/v1/streaming/public", "/api/v1/streaming/public/local"])
def test_public_statuses_and_their_deletions_stream_to_anyone(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], path: str
) -> None:
    author, stranger = make_user("pst_a"), make_user("pst_s")  # the stranger follows no one
    with public_stream(gateway_url, stranger, path) as lines:
        warm_until_seen(gateway_url, author, lines)
        for visibility in ("unlisted", "private", "direct"):
            answer = http.post("/api/v1/statuses", headers=author.auth,
                               json={"status": f"not public: {visibility}", "visibility": visibility})
            assert answer.status_code == 200, answer.text
        shown = post(http, author, "public, on the stream")
        (update,) = read_events(lines, 1)
        # The first event after the warm-up is the public status: none of the others was streamed.
        assert update["event"] == "update" and "id" not in update, update
        status = json.loads(update["data"])
        assert (status["id"], status["visibility"], status["account"]["id"]) == (shown, "public", author.id)
        assert http.delete(f"/api/v1/statuses/{shown}", headers=author.auth).status_code == 200
        (deleted,) = read_events(lines, 1)
        assert (deleted["event"], deleted["data"], "id" in deleted) == ("delete", shown, False)
        assert status_of(deleted) == shown


def test_public_streams_need_a_user_token(gateway_url: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = httpx.get(f"{gateway_url}/api/v1/streaming/public", headers=headers, timeout=30)
        assert answer.status_code == 401 and set(answer.json()) == {"error"}, answer.text


def test_public_beside_user_on_one_websocket(gateway_url: str, http: httpx.Client,
                                             make_user: Callable[..., User]) -> None:
    author, reader = make_user("pws_a"), make_user("pws_r")
    follow(http, reader, author)
    with connect(ws_url(gateway_url), additional_headers=reader.auth, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "subscribe", "stream": "public:local"}))
        warm_until_public(http, author, ws)
        ws.send(json.dumps({"type": "subscribe", "stream": "user"}))
        # Once the user stream delivers, both subscriptions hold: a public status of a followed account arrives
        # on each, an unlisted one on ``user`` alone.
        on_user = False
        for _ in range(60):
            marker = post(http, author, "marker")
            with contextlib.suppress(TimeoutError):
                while not on_user:
                    frame = next_frame(ws, timeout=0.5)
                    on_user = frame["stream"] == ["user"] and frame.get("id") == marker
            if on_user:
                break
        assert on_user, "the user subscription delivered nothing"
        with contextlib.suppress(TimeoutError):
            while True:
                next_frame(ws, timeout=1)
        both = post(http, author, "public, on both")
        frames = sorted([next_frame(ws), next_frame(ws)], key=lambda f: str(f["stream"]))
        assert [(f["stream"], f["event"]) for f in frames] == [(["public:local"], "update"), (["user"], "update")]
        assert "id" not in frames[0] and frames[1]["id"] == both
        assert json.loads(str(frames[0]["payload"]))["id"] == both == json.loads(str(frames[1]["payload"]))["id"]
        answer = http.post("/api/v1/statuses", headers=author.auth,
                           json={"status": "unlisted", "visibility": "unlisted"})
        assert answer.status_code == 200
        frame = next_frame(ws)
        assert (frame["stream"], json.loads(str(frame["payload"]))["id"]) == (["user"], answer.json()["id"])
        with pytest.raises(TimeoutError):
            next_frame(ws, timeout=1)
        # Unsubscribed from the public timeline: the user stream goes on alone.
        ws.send(json.dumps({"type": "unsubscribe", "stream": "public:local"}))
        next_public = post(http, author, "after unsubscribing")
        while True:
            frame = next_frame(ws)
            if json.loads(str(frame["payload"]))["id"] == next_public:
                break
        assert frame["stream"] == ["user"]
        with pytest.raises(TimeoutError):
            next_frame(ws, timeout=1)


def warm_until_public(http: httpx.Client, author: User, ws: object, text: str = "warm-up",
                      poster: Callable[[str], object] | None = None) -> None:
    """Post ``text`` (with ``poster``, if given: a status the subscription takes) until the public subscription
    (or a hashtag's, for a text that carries the hashtag), registered asynchronously, delivers, then read past what
    came."""
    from websockets.sync.client import ClientConnection

    assert isinstance(ws, ClientConnection)
    for _ in range(100):
        if poster is not None:
            poster(text)
        else:
            post(http, author, text)
        try:
            next_frame(ws, timeout=0.5)
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError(f"the subscription delivered none of the posts of {text!r}")
    with contextlib.suppress(TimeoutError):
        while True:
            next_frame(ws, timeout=1)
