"""Mastodon's media streams (``public:media``, ``public:local:media``; over SSE
``/api/v1/streaming/public?only_media=true``): the public statuses with attachments as they are posted, and the
deletions, never a status without; and the remote streams (``public:remote``, ``public:remote:media``), valid and
quiet, as Kicau knows no other server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import User
from tests.gateway.test_public_stream import public_stream, warm_until_public
from tests.gateway.test_streaming import read_events
from tests.gateway.test_streaming_bounds import next_frame, post, ws_url
from tests.post.test_media import uploaded


def post_pictured(http: httpx.Client, author: User, text: str) -> str:
    answer = http.post("/api/v1/statuses", headers=author.auth,
                       json={"status": text, "media_ids": [uploaded(http, author)["id"]]})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


@pytest.mark.parametrize("path", ["/api/v1/streaming/public?only_media=true",
                                  "/api/v1/streaming/public/local?only_media=1"])
def test_the_media_stream_carries_statuses_with_attachments_alone(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], path: str
) -> None:
    author, reader = make_user("mst_a"), make_user("mst_r")
    plain: list[str] = []
    pictured: list[str] = []
    done = threading.Event()

    def keep_posting() -> None:  # until the stream, registered asynchronously, has shown one
        with httpx.Client(base_url=gateway_url, timeout=30) as poster:
            while not done.is_set():
                plain.append(post(poster, author, "words alone"))
                pictured.append(post_pictured(poster, author, "a picture"))
                done.wait(0.3)

    with public_stream(gateway_url, reader, path) as lines:
        thread = threading.Thread(target=keep_posting, daemon=True)
        thread.start()
        try:
            (first,) = read_events(lines, 1)
        finally:
            done.set()
            thread.join(timeout=30)
        assert first["event"] == "update" and json.loads(first["data"])["id"] in pictured
        last = pictured[-1]
        assert http.delete(f"/api/v1/statuses/{last}", headers=author.auth).status_code == 200
        deadline = time.monotonic() + 30
        while True:
            (event,) = read_events(lines, 1)
            if event["event"] == "delete" and event["data"] == last:
                break
            if event["event"] == "update":
                shown = json.loads(event["data"])
                assert shown["id"] in pictured and shown["media_attachments"], shown
            assert time.monotonic() < deadline, "the deletion never came"


def test_media_and_remote_streams_on_one_websocket(gateway_url: str, http: httpx.Client,
                                                   make_user: Callable[..., User]) -> None:
    author, reader = make_user("mws_a"), make_user("mws_r")
    with connect(ws_url(gateway_url), additional_headers=reader.auth, open_timeout=10) as ws:
        for stream in ("public:remote", "public:remote:media", "public:media"):
            ws.send(json.dumps({"type": "subscribe", "stream": stream}))
        warm_until_public(http, author, ws, poster=lambda text: post_pictured(http, author, text))
        post(http, author, "words alone")
        shown = post_pictured(http, author, "a picture")
        frame = next_frame(ws)
        assert frame["stream"] == ["public:media"] and frame["event"] == "update"
        assert isinstance(frame["payload"], str) and json.loads(frame["payload"])["id"] == shown
        with pytest.raises(TimeoutError):  # nothing else: not the words, nothing on the remote streams
            next_frame(ws, timeout=1.5)


def test_the_remote_stream_is_quiet_over_sse(gateway_url: str, make_user: Callable[..., User]) -> None:
    reader = make_user("mrs_r")
    for path in ("/api/v1/streaming/public/remote", "/api/v1/streaming/public/remote?only_media=true"):
        with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as client, \
                client.stream("GET", path, headers=reader.auth) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
    assert httpx.get(f"{gateway_url}/api/v1/streaming/public/remote", timeout=30).status_code == 401
