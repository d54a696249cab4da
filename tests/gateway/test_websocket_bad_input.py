"""What a WebSocket client's malformed messages get, on the stack's gateway: Mastodon's error frame for each, and the
socket kept for the next; a binary message (the protocol is JSON text) closes it with 1003, as Mastodon's streaming
server does. A message that was not JSON used to drop the socket without a word, and a binary one failed the route."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import User, eventually


@pytest.fixture
def socket(gateway_url: str, make_user: Callable[..., User]) -> Iterator[ClientConnection]:
    user = make_user("wsbad")
    url = gateway_url.replace("http://", "ws://") + f"/api/v1/streaming?access_token={user.token}"
    with connect(url, open_timeout=10) as ws:
        yield ws


def error_frame(ws: ClientConnection) -> dict[str, object]:
    frame = json.loads(ws.recv(timeout=10))
    assert isinstance(frame, dict) and set(frame) == {"error", "status"}, frame
    return frame


@pytest.mark.parametrize("message, error", [
    ("{not json", "Message is not JSON"),
    ("", "Message is not JSON"),
    ('{"type": "subscribe", "stream": "user"', "Message is not JSON"),
    ("[1, 2]", "Unknown message type"),
    ("null", "Unknown message type"),
    ('"subscribe"', "Unknown message type"),
    ('{"type": "listen", "stream": "user"}', "Unknown message type"),
    ('{"type": "subscribe", "stream": 5}', "Unknown stream type: 5"),
    ('{"type": "subscribe", "stream": "nowhere"}', "Unknown stream type: nowhere"),
    ('{"type": "subscribe", "stream": "hashtag"}', None),
    ('{"type": "subscribe", "stream": "list", "list": {"id": 1}}', None),
    ('{"type": "subscribe", "stream": "public", "last_event_id": "1"}', None),
])
def test_a_malformed_message_gets_an_error_frame_and_the_socket_stays(
        socket: ClientConnection, message: str, error: str | None) -> None:
    socket.send(message)
    frame = error_frame(socket)
    assert frame["status"] in (400, 404)
    if error is not None:
        assert frame["error"] == error
    # Still open and still answering: the next malformed message gets its frame too.
    socket.send("{still not json")
    assert error_frame(socket) == {"error": "Message is not JSON", "status": 400}


def test_a_binary_message_closes_the_socket_with_1003(socket: ClientConnection, gateway_url: str) -> None:
    before = websockets_open(gateway_url)
    socket.send(json.dumps({"type": "subscribe", "stream": "user"}))
    eventually(lambda: websockets_open(gateway_url) == before + 1, timeout=10)
    socket.send(b'{"type": "unsubscribe", "stream": "user"}')
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    # Its stream is given back with it.
    eventually(lambda: websockets_open(gateway_url) == before, timeout=10)


def websockets_open(gateway_url: str) -> float:
    text = httpx.get(f"{gateway_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('kicau_streams_open{transport="websocket"}'))
