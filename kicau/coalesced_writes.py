"""A response's head and body in one system call.

Why: uvicorn writes a response's status line and headers, then its body, each with a ``transport.write`` of its
own, and uvloop sends each at once: two ``write`` system calls per response. On loopback a send does the
receiver's share of the TCP work too, so each costs the sender far more than copying the bytes; the header
write alone was ~11% of the gateway's CPU on a home page (py-spy, bench/README.md). Every request a service
answers pays it, and a home page crosses two services.

Here a connection's transport holds the first write of a loop turn and sends it together with the next one
(``writelines``, one ``writev``), or alone at the end of the turn if no other write follows. Bytes go out in the
order they were written, never later than the turn they were written in. Everything else is the transport's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wraps a stream transport: consecutive writes in one turn of the loop leave in one system call."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            if not data:
                return
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
            return
        self._held = None
        self._transport.writelines((held, data))

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


class CoalescingHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
