"""Reading a stream's raw bytes off the socket, for the Locust streaming users (locustfile.py).

Why by hand: the users time each update at the moment its bytes are read, so they read the socket themselves,
chunk by chunk (FastHttpSession's ``iter_lines`` buffers 1 KB and adds seconds of false latency on a quiet
stream). That leaves the framing to this module, fed whatever each ``recv`` returned, cut anywhere:

* ``SseReader``: the HTTP answer's head (refused unless 200), its body de-chunked when it is sent
  ``Transfer-Encoding: chunked`` (as uvicorn sends an SSE stream), and the Server-Sent Events in it (the
  WHATWG rules: ``event``, ``data`` lines joined by newlines, ``id``, comments skipped, LF or CRLF lines).
* ``WebSocketReader``: the upgrade answer (refused unless 101), then RFC 6455 frames: text messages
  reassembled from their fragments, each ping answered with a pong, the server's close noted. A Mastodon
  message carries its payload (the status) as a JSON string of its own.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

TEXT, CONTINUATION, CLOSE, PING = 0x1, 0x0, 0x8, 0x9
MAX_HEAD_BYTES = 64 * 1024  # an answer head larger than this is no stream's
HEX_DIGITS = b"0123456789abcdefABCDEF"


class StreamRefusedError(ConnectionError):
    """The server answered the stream's request with something else than a stream (a 401, a 429...), or sent
    what cannot be read as one (broken chunk framing, a WebSocket message that is not JSON)."""


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One event of the stream: its name (``update``, ``delete``...) and its payload as sent (for an update,
    the status's JSON)."""

    event: str
    payload: str


def _take_head(buffer: bytes, expected_status: int) -> tuple[dict[str, str], bytes] | None:
    """The answer's headers and the bytes after its head, or None while the head is still arriving. An answer
    with another status than ``expected_status`` is refused, with what the server said."""
    head, separator, rest = buffer.partition(b"\r\n\r\n")
    if not separator:
        if len(buffer) > MAX_HEAD_BYTES:
            raise StreamRefusedError(f"no end of the answer's head in {len(buffer)} bytes")
        return None
    status, headers = _status_and_headers(head)
    if status != expected_status:
        raise StreamRefusedError(f"HTTP {status}: {(head + b' ' + rest)[:200]!r}")
    return headers, rest


def _status_and_headers(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise StreamRefusedError(f"not an HTTP answer: {status_line[:80]!r}")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class SseReader:
    """Server-Sent Events out of raw socket reads: ``feed`` returns the events completed by those bytes."""

    def __init__(self) -> None:
        self._raw = b""  # bytes read and not yet taken apart: the head, then chunk framing
        self._head_read = False
        self._chunked = False
        self._chunk_left = 0  # bytes of the current chunk still to come
        self._chunk_tail = 0  # bytes of the CRLF after a chunk still to come
        self._text = b""  # the body, de-chunked, not yet split into lines
        self._event = ""
        self._data: list[str] = []
        self.ended = False  # the server ended the body (the last chunk)

    def feed(self, data: bytes) -> list[StreamMessage]:
        self._raw += data
        if not self._head_read:
            taken = _take_head(self._raw, 200)
            if taken is None:
                return []
            headers, self._raw = taken
            self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            self._head_read = True
        if self._chunked:
            self._dechunk()
        else:
            self._text += self._raw
            self._raw = b""
        return self._events()

    def _dechunk(self) -> None:
        raw = self._raw
        at = 0
        while at < len(raw) and not self.ended:
            if self._chunk_left:
                taken = raw[at:at + self._chunk_left]
                self._text += taken
                self._chunk_left -= len(taken)
                at += len(taken)
                if not self._chunk_left:
                    self._chunk_tail = 2
            elif self._chunk_tail:
                skipped = min(self._chunk_tail, len(raw) - at)
                if raw[at:at + skipped] != b"\r\n"[2 - self._chunk_tail:2 - self._chunk_tail + skipped]:
                    raise StreamRefusedError("a chunk of the stream did not end with CRLF")
                self._chunk_tail -= skipped
                at += skipped
            else:
                end = raw.find(b"\r\n", at)
                if end < 0:
                    break  # the size line is still arriving
                size_field = raw[at:end].split(b";", 1)[0].strip()  # chunk extensions are ignored
                # Hex digits only: int(..., 16) would also take a sign, a 0x prefix and underscores.
                if not size_field or size_field.strip(HEX_DIGITS):
                    raise StreamRefusedError(f"not a chunk size: {size_field[:20]!r}")
                size = int(size_field, 16)
                at = end + 2
                if size == 0:
                    self.ended = True
                self._chunk_left = size
        self._raw = raw[at:]

    def _events(self) -> list[StreamMessage]:
        events: list[StreamMessage] = []
        *lines, self._text = self._text.split(b"\n")
        for raw_line in lines:
            line = raw_line[:-1] if raw_line.endswith(b"\r") else raw_line
            if not line:
                if self._data:
                    events.append(StreamMessage(self._event or "message", "\n".join(self._data)))
                self._event, self._data = "", []
                continue
            if line.startswith(b":"):
                continue  # a comment: the server's keep-alive
            name, _, value = line.decode("utf-8", errors="replace").partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
        return events


def upgrade_request(path: str, host: str, token: str) -> bytes:
    """The opening handshake for ``path``, authenticated with a bearer token; no extensions offered."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def split_frames(buffer: bytes) -> tuple[list[tuple[int, bool, bytes]], bytes]:
    """The whole frames at the head of ``buffer`` as (opcode, final, payload), and the bytes after them (a frame
    still arriving). A server's frames are not masked."""
    frames: list[tuple[int, bool, bytes]] = []
    at = 0
    while len(buffer) - at >= 2:
        first, second = buffer[at], buffer[at + 1]
        length, size = second & 0x7F, 2
        if length == 126:
            length, size = int.from_bytes(buffer[at + 2:at + 4], "big"), 4
        elif length == 127:
            length, size = int.from_bytes(buffer[at + 2:at + 10], "big"), 10
        if len(buffer) - at < size + length:
            break
        frames.append((first & 0x0F, bool(first & 0x80), buffer[at + size:at + size + length]))
        at += size + length
    return frames, buffer[at:]


def pong(payload: bytes) -> bytes:
    """The pong answering a ping with ``payload`` (at most 125 bytes), masked as a client's frames must be."""
    mask = os.urandom(4)
    return bytes((0x8A, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class WebSocketReader:
    """Mastodon's WebSocket stream messages out of raw socket reads. ``feed`` returns the messages completed by
    those bytes; what the client owes the server (pongs) waits in ``replies`` until taken."""

    def __init__(self) -> None:
        self._raw = b""
        self._upgraded = False
        self._fragments: list[bytes] | None = None  # a text message still arriving in fragments
        self.replies: list[bytes] = []
        self.closed = False  # the server sent its close frame

    def feed(self, data: bytes) -> list[StreamMessage]:
        self._raw += data
        if not self._upgraded:
            taken = _take_head(self._raw, 101)
            if taken is None:
                return []
            self._raw = taken[1]
            self._upgraded = True
        frames, self._raw = split_frames(self._raw)
        messages: list[StreamMessage] = []
        for opcode, final, payload in frames:
            if opcode == TEXT:
                self._fragments = [payload]
            elif opcode == CONTINUATION and self._fragments is not None:
                self._fragments.append(payload)
            elif opcode == PING:
                self.replies.append(pong(payload))
                continue
            elif opcode == CLOSE:
                self.closed = True
                continue
            else:
                continue  # binary frames and pongs carry nothing of the stream
            if final:
                message, self._fragments = b"".join(self._fragments), None
                messages.append(_mastodon_message(message))
        return messages

    def take_replies(self) -> list[bytes]:
        replies, self.replies = self.replies, []
        return replies


def _mastodon_message(message: bytes) -> StreamMessage:
    try:
        decoded = json.loads(message)
    except ValueError:
        raise StreamRefusedError(f"a message that is not JSON: {message[:80]!r}") from None
    if not isinstance(decoded, dict):
        raise StreamRefusedError(f"a message that is not a JSON object: {message[:80]!r}")
    payload = decoded.get("payload")
    return StreamMessage(str(decoded.get("event", "")), payload if isinstance(payload, str) else json.dumps(payload))
