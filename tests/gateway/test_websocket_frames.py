"""The WebSocket frames the gateway writes straight onto a connection (services/gateway/streaming.py), checked
against the ``websockets`` library's own frame parser, and when a connection may be written that way at all.
The streams themselves are tested end to end in test_streaming_bounds.py (subscribe, update, delete, a reader
that never reads) and measured by the delivery bench over WebSocket."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from services.gateway.streaming import (
    USER_EVENTS,
    StreamEvent,
    Subscriptions,
    stream_key,
    websocket_sink,
    websocket_text_frame,
)


def _parse(wire: bytes) -> tuple[Frame, bytes]:
    """The first frame in ``wire`` as a client parses it, and what is left after it."""
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None, extensions=[])
    try:
        next(parser)
    except StopIteration as done:
        return done.value, bytes(reader.buffer)
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frames_parse_back_at_every_length_encoding(size: int) -> None:
    payload = bytes(ord("a") + i % 26 for i in range(size))
    frame, rest = _parse(websocket_text_frame(payload) + b"next")
    assert (frame.opcode, frame.fin, frame.rsv1, frame.data) == (Opcode.TEXT, True, False, payload)
    assert rest == b"next"


def test_an_event_frame_is_mastodons_message_encoded_once() -> None:
    event = StreamEvent("update", "123", '{"id":"123","content":"<p>hi \\u00e9</p>"}')
    wire = event.ws_wire()
    assert event.ws_wire() is wire
    frame, _ = _parse(wire)
    message = msgspec.json.decode(frame.data)
    assert message == {"stream": ["user"], "event": "update", "payload": event.data, "id": "123"}


class State(enum.Enum):
    CONNECTING = 0
    OPEN = 1
    CLOSING = 2


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.written))

    def is_closing(self) -> bool:
        return False


@dataclass
class Connection:
    state: State = State.OPEN
    extensions: list[Any] = field(default_factory=list)


@dataclass
class Protocol:
    """uvicorn's sans-I/O WebSocket protocol as the sink sees it: a transport and a connection's state."""

    conn: Connection = field(default_factory=Connection)
    transport: Transport = field(default_factory=Transport)

    async def send(self, message: Any) -> None:
        raise AssertionError("a direct sink never goes through the ASGI send")


def test_an_open_connection_without_extensions_is_written_directly_until_it_closes() -> None:
    protocol = Protocol()
    sink = websocket_sink(protocol.send, limit_bytes=1 << 20)
    assert sink is not None and sink.heartbeat is None
    event = StreamEvent("update", "1", "{}")
    assert sink.write(sink.wire(event))
    assert protocol.transport.written == [event.ws_wire()]
    protocol.conn.state = State.CLOSING
    assert sink.write(sink.wire(event))  # taken and dropped: the closing handshake has begun
    assert protocol.transport.written == [event.ws_wire()]


def test_a_full_buffer_reports_the_reader_as_too_slow() -> None:
    protocol = Protocol()
    sink = websocket_sink(protocol.send, limit_bytes=10)
    assert sink is not None
    assert sink.write(b"x" * 11)
    assert not sink.write(b"y")


@pytest.mark.parametrize("protocol", [
    Protocol(Connection(extensions=["permessage-deflate"])),  # compressed frames are per connection
    Protocol(Connection(state=State.CONNECTING)),
])
def test_no_direct_sink_for_compressed_or_unopened_connections(protocol: Protocol) -> None:
    assert websocket_sink(protocol.send, limit_bytes=1 << 20) is None


def test_no_direct_sink_under_another_server() -> None:
    async def send(message: Any) -> None:
        return None

    assert websocket_sink(send, limit_bytes=1 << 20) is None
    assert websocket_sink(None, limit_bytes=1 << 20) is None


def test_subscriptions_send_an_event_once_on_each_stream_that_carries_it() -> None:
    subscriptions = Subscriptions()
    update, notification = StreamEvent("update", "1", "{}"), StreamEvent("notification", None, '{"n":1}')
    assert subscriptions.accepts() == frozenset()  # nothing subscribed: the connection takes nothing
    assert subscriptions.add("user:notification") and not subscriptions.add("user:notification")
    assert subscriptions.accepts() == frozenset({"notification", "notifications_merged"})
    assert subscriptions.wire(update) == b""  # taken before an unsubscription: it goes out on no stream
    assert subscriptions.wire(notification) == notification.ws_wire_on("user:notification")
    assert subscriptions.add("user")
    assert subscriptions.accepts() == USER_EVENTS
    assert subscriptions.wire(update) == update.ws_wire()
    assert subscriptions.wire(notification) == (notification.ws_wire_on("user:notification")
                                                + notification.ws_wire_on("user"))
    first, rest = _parse(subscriptions.wire(notification))
    second, rest = _parse(rest)
    assert rest == b""
    assert [msgspec.json.decode(frame.data)["stream"] for frame in (first, second)] == [["user:notification"],
                                                                                      ["user"]]
    assert subscriptions.remove("user:notification") and not subscriptions.remove("user:notification")
    assert subscriptions.streams == ["user"] and subscriptions.wire(notification) == notification.ws_wire()


def test_conversations_go_out_on_the_direct_stream_alone() -> None:
    """Mastodon's ``direct`` stream carries the ``conversation`` events, which ``user`` does not."""
    subscriptions = Subscriptions()
    conversation, update = StreamEvent("conversation", None, '{"c":1}'), StreamEvent("update", "1", "{}")
    assert "conversation" not in USER_EVENTS
    assert subscriptions.add("user") and subscriptions.wire(conversation) == b""
    assert subscriptions.add("direct")
    assert subscriptions.accepts() == USER_EVENTS | {"conversation"}
    assert subscriptions.carrying(conversation) == ["direct"] and subscriptions.carrying(update) == ["user"]
    assert msgspec.json.decode(_parse(conversation.ws_wire())[0].data)["stream"] == ["direct"]
    assert subscriptions.remove("user") and subscriptions.accepts() == frozenset({"conversation"})
    assert subscriptions.wire(conversation) == conversation.ws_wire() and subscriptions.wire(update) == b""


def test_public_timeline_events_go_out_on_the_public_streams_alone() -> None:
    subscriptions = Subscriptions()
    public = StreamEvent("update", None, "{}", public=True)
    own = StreamEvent("update", "1", "{}")
    assert subscriptions.add("public") and subscriptions.public
    assert subscriptions.accepts() == frozenset()  # none of the account's own events
    assert subscriptions.wire(public) == public.ws_wire()  # encoded once for every socket on ``public``
    assert msgspec.json.decode(_parse(public.ws_wire())[0].data)["stream"] == ["public"]
    assert subscriptions.wire(own) == b""
    assert subscriptions.add("user") and subscriptions.add("public:local")
    assert subscriptions.accepts() == USER_EVENTS
    assert subscriptions.carrying(public) == ["public", "public:local"]
    assert subscriptions.carrying(own) == ["user"]
    assert subscriptions.remove("public") and subscriptions.remove("public:local") and not subscriptions.public


def test_hashtag_streams_carry_the_public_events_of_their_hashtag() -> None:
    subscriptions = Subscriptions()
    tagged = StreamEvent("update", None, "{}", public=True, tags=("kicau", "other"))
    untagged = StreamEvent("update", None, "{}", public=True)
    assert subscriptions.add(stream_key("hashtag", "kicau")) and subscriptions.add(stream_key("hashtag:local", "x"))
    assert not subscriptions.add(stream_key("hashtag", "kicau"))
    assert subscriptions.tags == frozenset({"kicau", "x"}) and not subscriptions.public
    assert subscriptions.accepts() == frozenset()  # none of the account's own events
    assert subscriptions.carrying(tagged) == ["hashtag#kicau"] and subscriptions.carrying(untagged) == []
    assert msgspec.json.decode(_parse(subscriptions.wire(tagged))[0].data)["stream"] == ["hashtag", "kicau"]
    assert subscriptions.add("public")
    assert subscriptions.carrying(tagged) == ["hashtag#kicau", "public"]
    assert subscriptions.carrying(untagged) == ["public"]
    assert subscriptions.remove(stream_key("hashtag", "kicau")) and subscriptions.tags == frozenset({"x"})
