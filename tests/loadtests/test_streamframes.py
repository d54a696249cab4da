"""The Locust streaming users' readers (loadtests/streamframes.py) on streams cut at every byte: they are fed
whatever each ``recv`` returned, and a reader that lost or merged events there would report wrong latencies."""

from __future__ import annotations

import itertools
import json

import pytest

from loadtests.streamframes import (
    CLOSE,
    PING,
    TEXT,
    SseReader,
    StreamMessage,
    StreamRefusedError,
    WebSocketReader,
    split_frames,
)

SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def chunked(*bodies: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(body), body) for body in bodies)


def status(number: int) -> str:
    return json.dumps({"id": str(number), "content": "<p>" + "é" * number + "</p>"})


SSE_EVENTS = [
    b":thump\n\n",
    f"id: 1\nevent: update\ndata: {status(1)}\n\n".encode(),
    b"event: delete\ndata: 1\n\n",
    f"event: update\r\ndata: {status(300)}\r\n\r\n".encode(),  # CRLF lines
    b"event: notification\ndata: {\"a\":\ndata: 1}\n\n",  # two data lines, joined by a newline
    b"data: no event name\n\n",
]
EXPECTED_SSE = [
    StreamMessage("update", status(1)),
    StreamMessage("delete", "1"),
    StreamMessage("update", status(300)),
    StreamMessage("notification", '{"a":\n1}'),
    StreamMessage("message", "no event name"),
]


def feed_in_pieces(reader: SseReader | WebSocketReader, stream: bytes, cuts: list[int]) -> list[StreamMessage]:
    messages: list[StreamMessage] = []
    bounds = [0, *cuts, len(stream)]
    for start, end in itertools.pairwise(bounds):
        messages += reader.feed(stream[start:end])
    return messages


def test_sse_events_come_out_whole_wherever_the_reads_cut_the_chunked_stream() -> None:
    stream = SSE_HEAD + chunked(*SSE_EVENTS) + b"0\r\n\r\n"
    for cut in range(len(stream) + 1):
        reader = SseReader()
        assert feed_in_pieces(reader, stream, [cut]) == EXPECTED_SSE, cut
        assert reader.ended
    reader = SseReader()
    assert feed_in_pieces(reader, stream, list(range(1, len(stream)))) == EXPECTED_SSE  # a byte at a time


def test_an_sse_event_split_across_http_chunks_is_joined_before_it_is_read() -> None:
    frame = SSE_EVENTS[1]
    stream = SSE_HEAD + chunked(frame[:7], frame[7:40], frame[40:]) + chunked(SSE_EVENTS[2])
    for cut in range(len(stream) + 1):
        assert feed_in_pieces(SseReader(), stream, [cut]) == EXPECTED_SSE[:2], cut


def test_a_stream_sent_without_chunked_encoding_is_read_as_it_is() -> None:
    stream = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n" + b"".join(SSE_EVENTS)
    for cut in range(0, len(stream) + 1, 7):
        assert feed_in_pieces(SseReader(), stream, [cut]) == EXPECTED_SSE, cut


def test_chunk_extensions_are_ignored_and_nothing_is_read_after_the_last_chunk() -> None:
    stream = SSE_HEAD + b"%x;name=value\r\n%b\r\n" % (len(SSE_EVENTS[2]), SSE_EVENTS[2]) + b"0\r\n\r\n" + SSE_EVENTS[1]
    reader = SseReader()
    assert reader.feed(stream) == [StreamMessage("delete", "1")]
    assert reader.ended


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\r\n{\"error\":\"The access token is invalid\"}",
    b"HTTP/1.1 429 Too Many Requests\r\n\r\n{}",
    b"SSH-2.0-OpenSSH\r\n\r\n",
])
def test_an_answer_that_is_not_a_stream_is_refused_with_what_the_server_said(answer: bytes) -> None:
    with pytest.raises(StreamRefusedError) as refused:
        SseReader().feed(answer)
    assert answer.split(b"\r\n")[0][:20].decode() in str(refused.value)


def test_broken_chunk_framing_is_refused_not_read_as_events() -> None:
    for size_line in (b"zz", b"-5", b"0x10", b"1_0", b""):
        with pytest.raises(StreamRefusedError, match="chunk size"):
            SseReader().feed(SSE_HEAD + size_line + b"\r\n")
    with pytest.raises(StreamRefusedError, match="CRLF"):
        SseReader().feed(SSE_HEAD + b"3\r\nabcXY")


def ws_frame(opcode: int, payload: bytes, *, final: bool = True) -> bytes:
    first = (0x80 if final else 0) | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 1 << 16:
        return bytes((first, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first, 127)) + size.to_bytes(8, "big") + payload


def mastodon_message(event: str, payload: str) -> bytes:
    return json.dumps({"stream": ["user"], "event": event, "payload": payload}).encode()


WS_HEAD = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Accept: x\r\n\r\n")


def test_websocket_messages_come_out_whole_wherever_the_reads_cut_and_pings_are_answered() -> None:
    long_message = mastodon_message("update", status(40_000))  # the 8-byte length form
    fragmented = mastodon_message("update", status(2))
    stream = WS_HEAD + b"".join([
        ws_frame(TEXT, mastodon_message("update", status(1))),  # the 1-byte length form
        ws_frame(TEXT, mastodon_message("update", status(100))),  # the 2-byte length form
        ws_frame(TEXT, long_message),
        ws_frame(TEXT, fragmented[:10], final=False),
        ws_frame(PING, b"are you there"),  # control frames may come between a message's fragments
        ws_frame(0x0, fragmented[10:30], final=False),
        ws_frame(0x0, fragmented[30:]),
        ws_frame(TEXT, mastodon_message("delete", "7")),
        ws_frame(CLOSE, b"\x03\xe8"),
    ])
    expected = [StreamMessage("update", status(1)), StreamMessage("update", status(100)),
                StreamMessage("update", status(40_000)), StreamMessage("update", status(2)),
                StreamMessage("delete", "7")]
    for cut in [*range(0, 400), *range(len(stream) - 400, len(stream) + 1)]:
        reader = WebSocketReader()
        assert feed_in_pieces(reader, stream, [cut]) == expected, cut
        assert reader.closed
        (pong,) = reader.take_replies()
        assert pong[0] == 0x8A and pong[1] == 0x80 | len(b"are you there")  # a masked pong, as a client sends
        mask = pong[2:6]
        assert bytes(b ^ mask[i % 4] for i, b in enumerate(pong[6:])) == b"are you there"
        assert reader.take_replies() == []


def test_a_refused_upgrade_is_reported_with_its_status() -> None:
    with pytest.raises(StreamRefusedError, match="403"):
        WebSocketReader().feed(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")


def test_split_frames_leaves_a_frame_still_arriving_in_the_buffer() -> None:
    frame = ws_frame(TEXT, b"x" * 300)
    frames, rest = split_frames(frame + frame[:3])
    assert frames == [(TEXT, True, b"x" * 300)] and rest == frame[:3]


def test_an_answer_head_that_never_ends_is_refused_rather_than_buffered_for_good() -> None:
    reader = SseReader()
    assert reader.feed(b"HTTP/1.1 200 OK\r\nx-filler: " + b"a" * 60_000) == []  # still arriving: wait
    with pytest.raises(StreamRefusedError, match="no end of the answer's head"):
        reader.feed(b"a" * 10_000)


@pytest.mark.parametrize("message", [b"not json", b"[1, 2]"])
def test_a_websocket_message_that_is_not_a_json_object_is_unreadable_not_an_event(message: bytes) -> None:
    with pytest.raises(StreamRefusedError, match="not"):
        WebSocketReader().feed(WS_HEAD + ws_frame(TEXT, message))
