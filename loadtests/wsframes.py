"""WebSocket frames as a stream's client reads them (RFC 6455), for the two clients that read raw sockets to
time each frame's arrival exactly: the Locust streaming users (locustfile.py) and the bench's delivery client
(bench/delivery.py). Only what a stream needs: the upgrade request, whole frames split off a buffer, and the
pong a client owes each ping."""

from __future__ import annotations

import base64
import os

TEXT, CLOSE, PING = 0x1, 0x8, 0x9


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
