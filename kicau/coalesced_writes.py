"""A response's head and body in one system call.

Why: uvicorn writes a response's status line and headers, then its body, each with a ``transport.write`` of its
own, and uvloop sends each at once: two ``write`` system calls per response. On loopback a send does the
receiver's share of the TCP work too, so each costs the sender far more than copying the bytes; the header
write alone was ~11% of the gateway's CPU on a home page (py-spy, bench/README.md). Every request a service
answers pays it, and a home page crosses two services.

Here the protocol tells the connection's transport when a request's headers are in: the transport then holds
the next write (the answer's head) and sends it together with the one after it (``writelines``, one ``writev``),
or alone at the end of the loop's turn if nothing follows in that turn (a stream's head). Every other write goes
straight through, so the events of an SSE or WebSocket stream, written onto the transport by the stream hub
(services/gateway/streaming.py), pay nothing for this. Bytes leave in the order they were written, never later
than the turn they were written in.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wraps a stream transport: after ``hold_next``, the next write waits for the one after it (or the end of the
    loop's turn) and both leave in one system call."""

    __slots__ = ("_armed", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._armed = False
        self._held: bytes | None = None

    def hold_next(self) -> None:
        self._armed = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif self._armed:
            self._armed = False
            self._held = bytes(data)  # the caller may reuse a bytearray once write returns
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        held, self._held = self._held, None
        self._transport.writelines((held, *chunks) if held is not None else chunks)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (len(self._held) if self._held is not None else 0)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def unwrapped(transport: Any) -> Any:
    """The transport under a ``CoalescingTransport`` that holds nothing and expects nothing to hold (a stream past
    its head), else ``transport`` as given. For the stream hub, which writes each event of a stream straight
    onto its transport: the wrapper's checks cost ~1 µs a write, paid a thousand times per status at a thousand
    streams. Bytes keep their order: once nothing is held, the wrapper writes straight through as well."""
    if isinstance(transport, CoalescingTransport) and transport._held is None and not transport._armed:
        return transport._transport
    return transport


class CoalescingHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a ``CoalescingTransport``: each request's answer head waits
    for what follows it."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._coalescing = CoalescingTransport(transport, self.loop)
        super().connection_made(self._coalescing)  # type: ignore[arg-type]

    def on_headers_complete(self) -> None:
        # httptools' callback once a request's headers are parsed, before uvicorn starts its answer (or hands the
        # connection to WebSocket, whose handshake answer is then the held write).
        self._coalescing.hold_next()
        super().on_headers_complete()
