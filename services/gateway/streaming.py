"""The stream hub of one gateway process: its connections, their bounded queues, and its Redis channel.

The fanout publishes each status once per gateway, naming the recipients connected there; the hub hands the
event to those recipients' connections. Each connection has a bounded queue: a reader that falls behind
overflows its own queue and is disconnected with a final event, and nobody else waits for it.

An SSE connection served by uvicorn is written *directly*: once its backlog is out, the hub writes each event's
chunk onto the connection's transport in the same loop that receives the delivery, with no task to wake, no
timer to re-arm and no middleware ``send`` wrappers per event. With a thousand streams following one author
that is the difference between ~100 ms and ~15 ms from the first stream written to the last (see
``bench/README.md``). The bounded queue of such a connection is its transport's write buffer, bounded in bytes;
a reader that lets it grow past the bound is cut off as above. A WebSocket is written the same way once it is
open, with each event's frame encoded once for every connection (the server never compresses frames, so they
are the same bytes for all). Under a server whose transport cannot be reached, connections keep the queue and
a writer task each.

Direct writes go out in *rounds*: the events dispatched in one turn of the loop are held per connection and
written at the start of the next turn, all of a connection's in one ``write``. Most of a write's cost is its
system call (on loopback the send does the receiver's TCP work too: ~40% of the gateway's time at 25 statuses a
second to a thousand streams, py-spy), so when deliveries arrive faster than the streams can be written, the
Redis channel's buffer fills up, the next turn reads several deliveries at once, and each stream is written once
for all of them: the cost per event falls exactly when the gateway falls behind, instead of the backlog growing
for good. A lone delivery waits no longer than the rest of its own turn. A round times what it wrote in blocks of
``TIMING_BLOCK`` streams (``DeliveryTally``): one clock read and one histogram observation per event a block.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec
from redis.asyncio import Redis

from kicau import announcements, clients, ids, keys, media, resp, tokens
from kicau.announcements import decode_change as decode_announcement_change
from kicau.coalesced_writes import unwrapped
from kicau.filters import CHANGED_PAYLOAD as FILTERS_CHANGED_PAYLOAD
from kicau.filters import HOME as HOME_CONTEXT
from kicau.filters import NO_FILTERS, ReaderFilters, searchable_text, with_results
from kicau.filters import PUBLIC as PUBLIC_CONTEXT
from kicau.filters import decode as decode_filters
from kicau.follow_options import FollowOptions
from kicau.lists import Membership, showing_reply
from kicau.metrics import (
    DELIVERY_LATENCY,
    OPEN_STREAMS,
    PUBSUB_RECONNECTIONS,
    STREAM_DELIVERIES_REPEATED,
    STREAM_GAP_EVENTS,
    STREAM_GAP_READS,
)
from kicau.presence import HEARTBEAT_SECONDS, PUBLIC_LISTENERS, GatewayPresence
from kicau.stream_events import StreamDelivery, decode_delivery
from kicau.web import ApiError

log = logging.getLogger(__name__)

STREAM_LEASE_SECONDS = 60
# Reads (an account's home timeline, its notifications) in flight at once after a channel loss, for the streams
# here: a gateway holding thousands of streams must not send the timeline service thousands of reads at once.
GAP_READS_IN_FLIGHT = 16
HIDES_CHANNEL = keys.HIDES_CHANNEL.encode()
FILTERS_CHANNEL = keys.FILTERS_CHANNEL.encode()
ANNOUNCEMENTS_CHANNEL = keys.ANNOUNCEMENTS_CHANNEL.encode()
NOTIFICATIONS_MERGED_CHANNEL = keys.NOTIFICATIONS_MERGED_CHANNEL.encode()
SESSIONS_ENDED_CHANNEL = keys.SESSIONS_ENDED_CHANNEL.encode()
# Mastodon's event and payload when notification requests were merged into an account's notifications.
MERGED_EVENT: Final = "notifications_merged"
MERGED_PAYLOAD = "1"
# The events a reader's filters apply to on its streams: statuses (Mastodon's streaming server filters these).
_FILTERED_EVENTS = frozenset({"update", "status.update"})


class _Matched:
    """One status event as each reader's filters leave it: its status read once, for the first reader with
    filters; the event made again for a reader a filter warns of, or None for one a filter hides it from."""

    __slots__ = ("_event", "_ids", "_text")

    def __init__(self, event: StreamEvent) -> None:
        self._event = event
        self._ids: tuple[int, ...] | None = None
        self._text = ""

    def for_reader(self, filtering: dict[int, ReaderFilters] | None, account_id: int,
                   context: str) -> StreamEvent | None:
        found = filtering.get(account_id) if filtering else None
        active = found.in_context(context) if found is not None else None
        if active is None:
            return self._event
        if self._ids is None:
            try:
                status = msgspec.json.decode(self._event.data)
                proper = status.get("reblog") or status
                self._ids = tuple(int(s["id"]) for s in (status, proper) if s.get("id")) or (0,)
                self._text = searchable_text(proper.get("content") or "", proper.get("spoiler_text") or "")
            except (msgspec.DecodeError, AttributeError, TypeError, ValueError):
                self._ids = ()
        hide, results = active.results(self._ids, self._text)
        if hide:
            return None
        if results is None:
            return self._event
        event = self._event
        return StreamEvent(event.name, event.event_id, with_results(event.data.encode(), results).decode(),
                           event.accepted_at, event.public, event.tags, event.list_id, event.media,
                           status_id=event.status_id)
# Deliveries (event kind, status id, public or not) a gateway remembers having dispatched, to drop a second copy:
# the fanout publishes again what it had applied but not committed when it crashed or retried a batch (up to its
# commit interval, 0.5 s), and a stream must not show a status twice. Minutes of statuses at any rate seen here, ~1 MB.
RECENT_DELIVERIES = 10_000
# Waits between tries to read an account's filters or hides while the service holding them is away (the last
# repeated until it answers or the account's last stream here closes).
RELOAD_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
# A write round reads the clock once per this many connections written, for the delivery latency of all of them.
TIMING_BLOCK = 32


def _chunked(body: bytes) -> bytes:
    """``body`` as one HTTP/1.1 chunk (``Transfer-Encoding: chunked``), for writing straight onto a transport."""
    return b"%x\r\n%b\r\n" % (len(body), body)


HEARTBEAT_CHUNK = _chunked(b":thump\n")


def websocket_text_frame(payload: bytes) -> bytes:
    """A final text frame (FIN, opcode 1) carrying ``payload``, unmasked as a server's frames are."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


# Scope key under which the gateway application keeps the server's own ``send`` (before middleware wraps it).
SERVER_SEND_KEY = "kicau.server_send"


# Mastodon's stream names: the user's timeline and notifications, its notifications alone, and its direct
# conversations (kicau/conversations.py); the public timeline (kicau/public_timeline.py), which is also the local one
# here (Kicau does not federate).
USER_STREAM = "user"
NOTIFICATION_STREAM = "user:notification"
DIRECT_STREAM = "direct"
PUBLIC_STREAM = "public"
PUBLIC_STREAMS = frozenset({PUBLIC_STREAM, "public:local"})
# The public timeline's statuses with attachments (kicau/media.py), and the deletions of public statuses (which do
# not say whether they had any: a client drops an id it never showed).
PUBLIC_MEDIA_STREAMS = frozenset({"public:media", "public:local:media"})
# Other servers' public statuses: Kicau does not federate, so these streams are valid and carry nothing but their
# heartbeats, as Mastodon's do on a server that knows no other.
QUIET_STREAMS = frozenset({"public:remote", "public:remote:media"})
# Kicau's own: the client should reload its home timeline, or reconnect with Last-Event-ID (which replays it),
# because the stream may have missed events (routes/streaming.py; ``StreamHub._channel_restored``).
REFETCH_EVENT = "kicau.refetch"
# The kinds of the user's own events each of its streams carries: ``conversation`` on ``direct`` alone, as on
# Mastodon. (The public streams carry every kind of the public timeline's events.)
USER_EVENTS = frozenset({"update", "delete", "notification", "status.update", "filters_changed", "announcement",
                         "announcement.reaction", "announcement.delete", MERGED_EVENT, REFETCH_EVENT})
# The events a stream is sent again after a loss of the hub's channel, and what a user stream is told then: that
# the statuses, notifications, conversations, edits and deletions it missed were sent again
# (``StreamHub._fill_gap``; edits and deletions come with the statuses' read), or that they could not be.
_FILLED_EVENTS = frozenset({"update", "notification", "conversation"})
GAP_FILLED = ('{"reason":"the server\'s event channel was interrupted: the statuses, notifications, conversations, '
              'edits and deletions missed were sent again; other events may be missing"}')
CHANNEL_GAP = '{"reason":"the server\'s event channel was interrupted: events may be missing"}'
STREAM_EVENTS: dict[str, frozenset[str]] = {USER_STREAM: USER_EVENTS,
                                            NOTIFICATION_STREAM: frozenset({"notification", MERGED_EVENT}),
                                            DIRECT_STREAM: frozenset({"conversation"})}
# A hashtag's streams (kicau/tag_timeline.py): the public timeline's events of statuses carrying the hashtag.
# Each names its hashtag: a subscription to one is kept as ``<stream>#<hashtag>`` (``stream_key``; no stream name
# and no hashtag holds a ``#``), and its frames name ``[<stream>, <hashtag>]``, as Mastodon's do.
HASHTAG_STREAMS = frozenset({"hashtag", "hashtag:local"})
# A list's stream (kicau/lists.py): its timeline's events, kept as ``list#<list id>`` and framed ``["list", "<id>"]``.
LIST_STREAM = "list"
STREAMS = frozenset(STREAM_EVENTS) | PUBLIC_STREAMS | PUBLIC_MEDIA_STREAMS | QUIET_STREAMS | HASHTAG_STREAMS | {
    LIST_STREAM}


def stream_key(stream: str, tag: str | None = None) -> str:
    """How a subscription is kept: the stream's name, and a hashtag stream's hashtag after a ``#``."""
    return stream if tag is None else f"{stream}#{tag}"


def _tag_of(key: str) -> str | None:
    """The hashtag a subscription follows, or None."""
    stream, _, tag = key.partition("#")
    return tag if stream in HASHTAG_STREAMS else None


def _list_of(key: str) -> int | None:
    """The list a subscription follows, or None."""
    stream, _, list_id = key.partition("#")
    return int(list_id) if stream == LIST_STREAM else None


# The timelines a connection listens to besides its account's own, as one key each (``Connection.listening_since``):
# what it missed of each while the hub's channel was lost is read once for every connection here listening to it.
PUBLIC_KEY = PUBLIC_STREAM
PUBLIC_MEDIA_KEY = "public:media"


def public_keys(*, public: bool, public_media: bool, tags: Iterable[str], lists: Iterable[int]) -> set[str]:
    """The keys of what ``StreamHub.listen`` gives a connection: the public timeline, its statuses with
    attachments, each hashtag's (``hashtag#<name>``) and each list's (``list#<id>``)."""
    keys = {stream_key("hashtag", tag) for tag in tags} | {stream_key(LIST_STREAM, str(list_id)) for list_id in lists}
    if public:
        keys.add(PUBLIC_KEY)
    if public_media:
        keys.add(PUBLIC_MEDIA_KEY)
    return keys


@dataclass(slots=True)
class StreamEvent:
    name: str
    event_id: str | None
    data: str
    accepted_at: float | None = None
    # An event of the public timeline's streams, not of an account's own (``Hub.dispatch``), and the hashtags of
    # its status (for the hashtag streams).
    public: bool = False
    tags: tuple[str, ...] = ()
    # An event of a list's timeline (kicau/lists.py), for the connections listening to that list alone.
    list_id: int = 0
    # A public event the media streams carry: a status with attachments, or a deletion.
    media: bool = False
    # A notification's id (it carries no SSE id: notifications are not the home timeline's resume points), for
    # what a stream missed while the hub's channel was lost (``StreamHub._fill_gap``).
    notification_id: int = 0
    # A ``conversation`` event's last status (the order of an account's conversations, as Mastodon pages them),
    # for the same reason; 0 for any other event, or for a conversation whose last status its member may not see.
    conversation_status: int = 0
    # The status of an ``update`` of the public timeline's, a hashtag's or a list's streams (they carry no SSE id),
    # likewise; 0 for any other event.
    status_id: int = 0
    # The SSE frame, encoded by the first connection that writes the event and reused by every other one: a
    # status followed by a thousand open streams is serialised once, not a thousand times.
    _sse: bytes | None = None
    _chunk: bytes | None = None
    _ws: str | None = None
    _ws_wire: bytes | None = None

    def sse_frame(self) -> bytes:
        if self._sse is None:
            head = f"id: {self.event_id}\n" if self.event_id else ""
            self._sse = f"{head}event: {self.name}\ndata: {self.data}\n\n".encode()
        return self._sse

    def sse_chunk(self) -> bytes:
        """The SSE frame as one HTTP/1.1 chunk (``Transfer-Encoding: chunked``), for writing straight onto a
        transport; encoded once per event like the frame itself."""
        if self._chunk is None:
            self._chunk = _chunked(self.sse_frame())
        return self._chunk

    @property
    def stream(self) -> str:
        """The stream nearly every connection that takes this event takes it on: ``user``, ``public``, the
        list's, or ``direct`` for a conversation."""
        if self.list_id:
            return stream_key(LIST_STREAM, str(self.list_id))
        if self.public:
            return PUBLIC_STREAM
        return DIRECT_STREAM if self.name == "conversation" else USER_STREAM

    def ws_wire(self) -> bytes:
        """``ws_frame`` as one unfragmented, uncompressed WebSocket text frame as a server sends it (RFC 6455
        5.2, unmasked), for writing straight onto a transport; encoded once per event."""
        if self._ws_wire is None:
            self._ws_wire = websocket_text_frame(self.ws_frame().encode())
        return self._ws_wire

    def ws_frame(self, stream: str | None = None) -> str:
        """The WebSocket frame of this event on ``stream`` (as subscribed); encoded once for ``self.stream``,
        the stream nearly every connection takes it on."""
        if stream is not None and stream != self.stream:
            return self._encode_ws(stream)
        if self._ws is None:
            self._ws = self._encode_ws(self.stream)
        return self._ws

    def ws_wire_on(self, stream: str) -> bytes:
        """``ws_wire`` for a subscription to ``stream``."""
        return self.ws_wire() if stream == self.stream else websocket_text_frame(self.ws_frame(stream).encode())

    def _encode_ws(self, stream: str) -> str:
        # Mastodon's WebSocket frames carry the payload as a JSON *string*, which clients decode again.
        frame = {"stream": stream.split("#", 1), "event": self.name, "payload": self.data}
        if self.event_id is not None:  # a notification has none (see ``dispatch``)
            frame["id"] = self.event_id
        return msgspec.json.encode(frame).decode()


@dataclass(slots=True)
class TransportSink:
    """Where a direct connection's frames go: the server's transport for that connection.

    ``write`` never blocks: it appends to the transport's buffer (uvloop sends at once when the socket takes
    it). The buffer is this connection's queue, bounded by ``limit_bytes``; a write that finds it past the
    bound reports the reader as too slow instead of buffering more. ``wire`` encodes an event for this kind of
    connection (an SSE chunk, a WebSocket frame); ``heartbeat`` is what keeps it alive between events, None
    where the server does that itself (WebSocket pings); ``is_open`` says whether frames may still be sent (a
    WebSocket that began its closing handshake takes no more)."""

    transport: asyncio.WriteTransport
    limit_bytes: int
    wire: Callable[[StreamEvent], bytes] = StreamEvent.sse_chunk
    heartbeat: bytes | None = HEARTBEAT_CHUNK
    is_open: Callable[[], bool] | None = None

    def __post_init__(self) -> None:
        self.transport = unwrapped(self.transport)  # past the stream's head: kicau/coalesced_writes.py

    def write(self, chunk: bytes) -> bool:
        transport = self.transport
        if transport.is_closing() or (self.is_open is not None and not self.is_open()):
            return True  # the client left; whoever runs the connection ends the stream
        if transport.get_write_buffer_size() > self.limit_bytes:
            return False
        transport.write(chunk)
        return True


def server_transport(send: Callable[..., Awaitable[None]]) -> asyncio.WriteTransport | None:
    """The transport under uvicorn's ASGI ``send`` (a bound method of its request cycle), or None under any
    other server: then the connection keeps its queue and writer task."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    needed = ("write", "get_write_buffer_size", "is_closing")
    return transport if all(callable(getattr(transport, n, None)) for n in needed) else None


# The streams of an account's own events.
_OWN_STREAMS = frozenset(STREAM_EVENTS)
# The events whose SSE id is a resume point: a home timeline's new statuses. Not a deletion: its status may be of
# any age, and a browser's EventSource sends back the last id it was given, so a deletion of an old status carrying
# one would move the client's Last-Event-ID back (the resume would send again what it had, or give up past the
# timeline's reach). A frame without an id leaves the last one as it was.
_RESUMABLE = frozenset({"update"})


class Subscriptions:
    """The streams one WebSocket subscribed to, in the order it did, as Mastodon lets a socket hold several.

    An event goes out once for every subscribed stream that carries it, each frame naming its stream: with both
    ``user`` and ``user:notification``, a notification arrives twice, as Mastodon sends it; a public status of an
    account the user follows arrives on ``user`` and on ``public`` (and on ``hashtag`` for each of its hashtags
    subscribed). The socket keeps one hub connection whatever it subscribes to (one stream lease, one bounded
    buffer): that connection takes the kinds of the user's own events ``accepts`` names, the public timeline's
    events while ``public`` holds, and those of the hashtags in ``tags``. Streams are kept by ``stream_key``."""

    __slots__ = ("streams",)

    def __init__(self) -> None:
        self.streams: list[str] = []

    def add(self, stream: str) -> bool:
        """Subscribe; False when already subscribed (Mastodon ignores the repeat)."""
        if stream in self.streams:
            return False
        self.streams.append(stream)
        return True

    def remove(self, stream: str) -> bool:
        if stream not in self.streams:
            return False
        self.streams.remove(stream)
        return True

    def accepts(self) -> frozenset[str]:
        """The kinds of the user's own events these streams carry together, for ``Connection.accepts``."""
        return frozenset().union(*(STREAM_EVENTS[stream] for stream in self.streams if stream in _OWN_STREAMS))

    @property
    def public(self) -> bool:
        """Whether a public timeline's stream is among these (``StreamHub.listen``)."""
        return any(stream in PUBLIC_STREAMS for stream in self.streams)

    @property
    def public_media(self) -> bool:
        """Whether a stream of the public timeline's statuses with attachments is among these."""
        return any(stream in PUBLIC_MEDIA_STREAMS for stream in self.streams)

    @property
    def tags(self) -> frozenset[str]:
        """The hashtags whose streams are among these (``StreamHub.listen``)."""
        return frozenset(tag for tag in map(_tag_of, self.streams) if tag is not None)

    @property
    def lists(self) -> frozenset[int]:
        """The lists whose streams are among these (``StreamHub.listen``)."""
        return frozenset(list_id for list_id in map(_list_of, self.streams) if list_id is not None)

    def carrying(self, event: StreamEvent) -> list[str]:
        if event.list_id:
            return [s for s in self.streams if _list_of(s) == event.list_id]
        if event.public:
            return [s for s in self.streams if s in PUBLIC_STREAMS or (event.media and s in PUBLIC_MEDIA_STREAMS)
                    or (event.tags and _tag_of(s) in event.tags)]
        return [s for s in self.streams if s in _OWN_STREAMS and event.name in STREAM_EVENTS[s]]

    def wire(self, event: StreamEvent) -> bytes:
        """The event's frames on this socket, for a direct sink: one per subscribed stream that carries it (none
        when the subscription changed after the event was taken)."""
        streams = self.streams
        if len(streams) == 1 and streams[0] == event.stream:  # nearly every socket: the frame encoded once for all
            return event.ws_wire()
        return b"".join([event.ws_wire_on(stream) for stream in self.carrying(event)])


def websocket_sink(send: Callable[..., Awaitable[None]] | None, limit_bytes: int,
                   subscriptions: Subscriptions | None = None) -> TransportSink | None:
    """A direct sink for an accepted WebSocket under uvicorn's websockets protocols (``send`` is the protocol's
    ASGI send, a bound method), or None: another server or implementation, or a connection that negotiated an
    extension (compressed frames are per connection, so a shared frame would be wrong). Frames written here go
    out between the library's own (pings, pongs, the close), each a whole frame in one write; the library keeps
    no state about data frames sent unfragmented, so it is not misled. Without ``subscriptions``, every event
    goes out on the ``user`` stream."""
    protocol: Any = getattr(send, "__self__", None)
    transport = server_transport(send) if send is not None else None
    # The sans-I/O implementation (uvicorn's default with websockets >= 14) keeps the connection's state in a
    # ``websockets`` ServerProtocol; the legacy one is that protocol itself.
    connection: Any = getattr(protocol, "conn", protocol)
    state = getattr(connection, "state", None)
    if protocol is None or transport is None or state is None or getattr(connection, "extensions", None) != []:
        return None
    open_state = getattr(type(state), "OPEN", None)
    if open_state is None or state is not open_state:
        return None

    def is_open() -> bool:
        return connection.state is open_state

    return TransportSink(transport, limit_bytes,
                         wire=StreamEvent.ws_wire if subscriptions is None else subscriptions.wire,
                         heartbeat=None, is_open=is_open)


@dataclass(eq=False)
class Connection:
    account_id: int
    transport: str
    limit: int
    # The kinds of the account's own events this connection takes (``STREAM_EVENTS`` of its streams): by
    # default the user stream's. A WebSocket's changes as it subscribes and unsubscribes (``Subscriptions``). The
    # public timeline's events reach only connections listening to it, and are not filtered here.
    accepts: frozenset[str] = USER_EVENTS
    connection_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The hash of the token the stream was opened with: its revocation ends the stream (``StreamHub``).
    session: str = ""
    overflowed: bool = False
    # Cut off because its session ended (its token revoked, its account disabled), not because it fell behind:
    # it ends without the overflow event.
    ended: bool = False
    _queue: collections.deque[StreamEvent] = field(default_factory=collections.deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set on overflow. The writer may be blocked in a send to a reader that stopped reading, where it never
    # looks at ``overflowed``: whoever runs the connection waits on this to cut it off regardless.
    overflow: asyncio.Event = field(default_factory=asyncio.Event)
    # Ids already sent from the resume backlog: the same status may also arrive live (it was published while
    # the backlog was being read) and must not be sent twice.
    replayed: set[str] = field(default_factory=set)
    # Set once the connection is written directly (SSE under uvicorn, after its backlog): see the module doc.
    sink: TransportSink | None = None
    # A direct connection's events dispatched this turn, for the hub's next write round (module doc).
    _held: list[StreamEvent] = field(default_factory=list)
    # Where the statuses, notifications and conversations missed by this stream begin when nothing was sent on it
    # yet: the id of its opening (or of the last status its resume backlog sent). ``_last_update``,
    # ``_last_notification`` and ``_last_conversation`` are the last of each taken since. Read once the hub's
    # channel comes back after a loss (``StreamHub._fill_gap``).
    resume_from: int = 0
    _last_update: StreamEvent | None = None
    _last_notification: int = 0
    _last_conversation: int = 0
    # The timelines it listens to besides its account's own (``public_keys``), each with the id of the moment it began
    # to; and the newest status it was sent of each: what it missed of one while the hub's channel was lost begins
    # after both (``public_point``). One point a timeline, as a status of one may be fanned out after a newer one of
    # another has already been sent.
    listening_since: dict[str, int] = field(default_factory=dict)
    _last_public: dict[str, int] = field(default_factory=dict)
    # When this stream was last told that its account's notification requests were merged (ms since the epoch), or
    # opened: a merge after it that a loss of the hub's channel hid is told once the channel is back
    # (``StreamHub._merges_missed``).
    merges_told_at: float = 0.0
    # Live events held back while what was missed during a loss of the hub's channel is read, so that it goes
    # out first (``StreamHub._fill_gap``); None when not held.
    _holding: list[StreamEvent] | None = None

    def push(self, event: StreamEvent) -> bool:
        """Take one event; True when it is held for the hub's next write round and this connection was not yet
        part of that round (the hub then lists it, once)."""
        if self.overflowed or (not (event.public or event.list_id) and event.name not in self.accepts):
            return False
        if self.replayed:
            key = _replay_key(event)
            if key is not None and key in self.replayed:
                self.replayed.discard(key)
                return False
        if self._holding is not None:
            if len(self._holding) >= self.limit:
                self._cut_off()
            else:
                self._holding.append(event)
            return False
        if event.event_id is not None:
            if event.name == "update":
                self._last_update = event
        elif event.notification_id:
            self._last_notification = event.notification_id
        elif event.conversation_status:
            self._last_conversation = max(self._last_conversation, event.conversation_status)
        elif event.status_id:
            self._sent_of_timelines(event)
        elif event.name == MERGED_EVENT and event.accepted_at:
            self.merges_told_at = max(self.merges_told_at, event.accepted_at)
        if self.sink is not None:
            self._held.append(event)
            return len(self._held) == 1
        if len(self._queue) >= self.limit:
            self._cut_off()
        else:
            self._queue.append(event)
        self._wake.set()
        return False

    def resume_point(self) -> int:
        """The id after which this stream has not been sent the home timeline's statuses."""
        last = self._last_update
        return max(self.resume_from, int(last.event_id)) if last is not None and last.event_id else self.resume_from

    def notification_point(self) -> int:
        """The id after which this stream has not been sent the account's notifications."""
        return max(self.resume_from, self._last_notification)

    def conversation_point(self) -> int:
        """The last status id after which this stream has not been sent the account's conversations."""
        return max(self.resume_from, self._last_conversation)

    def public_point(self, key: str) -> int:
        """The status id after which this stream has not been sent the statuses of the timeline ``key``."""
        return max(self.listening_since.get(key, self.resume_from), self._last_public.get(key, 0))

    def stop_listening(self, key: str) -> None:
        """No longer listening to the timeline ``key``: nothing more of it is missed."""
        self.listening_since.pop(key, None)
        self._last_public.pop(key, None)

    def _sent_of_timelines(self, event: StreamEvent) -> None:
        """Move the point of each timeline listened to that carries this status (``event.status_id``): its list's,
        or the public timeline's, its media's when it has attachments and its hashtags'."""
        since, last, status_id = self.listening_since, self._last_public, event.status_id
        if event.list_id:
            keys: Iterable[str] = (stream_key(LIST_STREAM, str(event.list_id)),)
        else:
            keys = [PUBLIC_KEY, *((PUBLIC_MEDIA_KEY,) if event.media else ()),
                    *(stream_key("hashtag", tag) for tag in event.tags)]
        for key in keys:
            if key in since and status_id > last.get(key, 0):
                last[key] = status_id

    def hold(self) -> None:
        """Hold live events back (in order, under the same bound as its queue) until ``release``."""
        if self._holding is None:
            self._holding = []

    def release(self) -> list[StreamEvent]:
        """Stop holding live events back; those held, for the caller to push again after what goes first."""
        held, self._holding = self._holding or [], None
        return held

    def _cut_off(self) -> None:
        """Falling behind by a whole queue: stop buffering for this reader and tell it to go."""
        self.overflowed = True
        self._queue.clear()
        self._held.clear()
        if self._holding is not None:
            self._holding.clear()
        self.overflow.set()
        self._wake.set()

    def end(self) -> None:
        """Its session ended: stop it, as a reader that fell behind is stopped (whoever runs it is woken)."""
        self.ended = True
        self._cut_off()

    def write_directly(self, sink: TransportSink) -> None:
        """Switch to direct writes: first whatever queued up meanwhile (synchronously, so nothing can slip in
        between), then the events of every later write round."""
        while self._queue and not self.overflowed:
            self._write(sink, [self._queue.popleft()])
        self.sink = sink

    def write_held(self, tally: DeliveryTally | None = None) -> None:
        """The hub's write round: every event held since the last one, in one write (timed by ``tally``)."""
        events = self._held
        if not events:
            return
        self._held = []
        if self.sink is not None and not self.overflowed:
            self._write(self.sink, events, tally)

    def _write(self, sink: TransportSink, events: list[StreamEvent], tally: DeliveryTally | None = None) -> None:
        wire = sink.wire
        if sink.write(wire(events[0]) if len(events) == 1 else b"".join([wire(event) for event in events])):
            if tally is not None:
                tally.add(events)
                return
            now = time.time()
            for event in events:
                self.observe_delivery(event, now)
        else:
            self._cut_off()

    def heartbeat(self) -> None:
        """A direct connection's keep-alive comment, under the same bound as events."""
        sink = self.sink
        if sink is not None and sink.heartbeat is not None and not self.overflowed and not sink.write(sink.heartbeat):
            self._cut_off()

    async def next(self, idle_seconds: float) -> StreamEvent | None:
        """The next event, or None after ``idle_seconds`` without one (time for a heartbeat)."""
        if not self._queue and not self.overflowed:
            self._wake.clear()
            # asyncio.timeout rather than wait_for: no extra task per wait, and every open stream waits here
            # once per event it receives.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle_seconds):
                    await self._wake.wait()
        if self._queue:
            return self._queue.popleft()
        return None

    def observe_delivery(self, event: StreamEvent, now: float | None = None) -> None:
        """The event's latency, from its acceptance to ``now`` (the write; the clock is read once a write)."""
        if event.accepted_at is not None:
            DELIVERY_LATENCY.observe(max(0.0, (time.time() if now is None else now) - event.accepted_at / 1000.0))


class DeliveryTally:
    """The delivery latencies of one write round, observed in blocks of ``TIMING_BLOCK`` connections: the clock
    is read when a block is complete, and each event's deliveries in it are observed at once, as that many.

    Why: timed one by one (a clock read and a histogram observation per stream per event) the latencies were
    ~11% of the gateway's time at 25 statuses a second to a thousand streams (py-spy), beside the write itself.
    A block's deliveries are timed at its end, never earlier than they happened: a latency is over-stated by at
    most the block's own writing time (32 writes, under a millisecond), never under-stated."""

    __slots__ = ("_counts", "_events", "_writes")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}  # id(event) -> deliveries in this block
        self._events: dict[int, StreamEvent] = {}  # ... and the event (held, so its id stays its own)
        self._writes = 0

    def add(self, events: list[StreamEvent]) -> None:
        counts = self._counts
        for event in events:
            key = id(event)
            if key in counts:
                counts[key] += 1
            else:
                counts[key] = 1
                self._events[key] = event
        self._writes += 1
        if self._writes >= TIMING_BLOCK:
            self.observe()

    def observe(self) -> None:
        """Observe the block so far (the end of a round calls it for the last, partial block)."""
        if not self._counts:
            return
        now = time.time()
        for key, count in self._counts.items():
            accepted_at = self._events[key].accepted_at
            if accepted_at is not None:
                DELIVERY_LATENCY.observe_many(max(0.0, now - accepted_at / 1000.0), count)
        self._counts.clear()
        self._events.clear()
        self._writes = 0


def _replay_key(event: StreamEvent) -> str | None:
    """How an event is kept among a connection's ``replayed``: a status update's SSE id (of the home timeline) or
    status id (of the public timeline's streams, or of a list's: the same status may come on each), a
    notification's id, or a conversation's last status. Never a deletion's: the deletion of a status sent from a
    backlog must still go out."""
    if event.name == "update":
        if event.event_id or not event.status_id:
            return event.event_id
        return f"l{event.list_id}:{event.status_id}" if event.list_id else f"p{event.status_id}"
    if event.notification_id:
        return f"n{event.notification_id}"
    return f"c{event.conversation_status}" if event.conversation_status else None


def _gap_order(event: StreamEvent) -> tuple[int, int]:
    """Where an event sent again after a loss of the hub's channel goes: oldest first, by the id of its status,
    notification or conversation's last status; of a direct mention, its status, then its notification, then its
    conversation."""
    if event.event_id:
        return int(event.event_id), 0
    if event.status_id:
        return event.status_id, 0
    if event.notification_id:
        return event.notification_id, 1
    return event.conversation_status, 2


def _replay_keys(events: Iterable[StreamEvent]) -> set[str]:
    """The replay keys of those of ``events`` that have one."""
    return {key for key in map(_replay_key, events) if key is not None}


def _lease_key(account_id: int) -> str:
    return f"streams:{{u:{account_id}}}"


# A stream's lease in its account's set (KEYS[1]), taken unless the account already holds ``ARGV[4]`` live ones:
# leases older than ARGV[1] (their gateway died without releasing them) are dropped, this one (ARGV[3]) is added
# at ARGV[2], and removed again when over the cap; returns how many the account held with it. EVAL rather than
# EVALSHA: nothing to load again after Redis restarts, and Redis compiles the script once.
_TAKE_LEASE = b"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
local held = redis.call('ZCARD', KEYS[1])
if held > tonumber(ARGV[4]) then redis.call('ZREM', KEYS[1], ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return held
"""


FollowersAmong = Callable[[int, list[int]], Awaitable[dict[int, FollowOptions]]]
# Whose statuses an account's public and hashtag streams leave out: the accounts it blocks or mutes and those that
# block it (kicau/blocks_and_mutes.py).
UnwantedOf = Callable[[int], Awaitable[list[int]]]
# The lists an author is in (kicau/lists.py), for a large author's statuses on list streams.
MembershipsOf = Callable[[int], Awaitable[list[Membership]]]
# An account's filters (kicau/filters.py), as the graph service gives them.
FiltersOf = Callable[[int], Awaitable[ReaderFilters]]
# Which of the given sessions (token hashes) have ended: revoked, or their account's login disabled.
EndedAmong = Callable[[list[str]], Awaitable[set[str]]]
# A read of what an account's streams missed after an id (routes/streaming.py): the events that would have carried
# it, oldest first, and whether that is all of it.
MissedAfter = Callable[[int, int], Awaitable[tuple[list["StreamEvent"], bool]]]
# An account's home timeline after a status id, as ``update`` events; "all" is provably everything after it (the
# timeline service's resume read).
HomeAfter = MissedAfter
# An account's notifications after an id, oldest first, as ``notification`` events, and whether that is all of them.
NotificationsAfter = MissedAfter
# An account's conversations whose last status is after an id, oldest first, as ``conversation`` events, and
# whether that is all of them.
ConversationsAfter = MissedAfter


@dataclass(frozen=True, slots=True)
class MissedStatus:
    """A status of a timeline a stream listens to besides its account's own, as the ``update`` that would have
    carried it (or, for one edited or deleted since, the ``status.update`` or ``delete``), with its id and its
    author (whom a listener may block or mute)."""

    event: StreamEvent
    author_id: int
    status_id: int


# What one of those timelines (a ``public_keys`` key) had after a status id, oldest first, then the edits and
# deletions of its statuses since, and whether the statuses are all of it: a list's read as its owner, given by the
# account id; the others as no one in particular, whoever is given.
TimelineAfter = Callable[[str, int, int], Awaitable[tuple[list[MissedStatus], bool]]]
# The announcements shown now, as no one in particular reads them (Announcement JSON each).
AnnouncementsShown = Callable[[], Awaitable[list[bytes]]]
_Found = TypeVar("_Found", StreamEvent, MissedStatus)


class StreamHub:
    def __init__(
        self, redis: Redis, *, queue_size: int, per_account: int, followers_among: FollowersAmong | None = None,
        unwanted_of: UnwantedOf | None = None, memberships_of: MembershipsOf | None = None,
        filters_of: FiltersOf | None = None, ended_among: EndedAmong | None = None,
        home_after: HomeAfter | None = None, notifications_after: NotificationsAfter | None = None,
        conversations_after: ConversationsAfter | None = None, timeline_after: TimelineAfter | None = None,
        announcements_shown: AnnouncementsShown | None = None,
    ) -> None:
        self.redis = redis
        self.home_after = home_after
        self.timeline_after = timeline_after
        # After a loss of the channel: one read of each timeline listened to here besides the accounts' own, shared
        # by every stream listening to it (``_fill_gaps``).
        self._timeline_reads: dict[str, asyncio.Task[tuple[list[MissedStatus], bool]]] = {}
        self.notifications_after = notifications_after
        self.conversations_after = conversations_after
        self.announcements_shown = announcements_shown
        # What the user streams here were last told of the announcements (kicau/announcements.py), kept up to date
        # by the changes the channel brings, so that what a loss of it hid can be told: None until first read.
        self._told: dict[int, announcements.Told] | None = None
        # Accounts whose user streams' missed statuses are being read after a channel loss, each with whether
        # another loss came meanwhile (then read again); and a bound on those reads in flight (``_fill_gap``).
        self._gap_reads: dict[int, bool] = {}
        self._gap_slots = asyncio.Semaphore(GAP_READS_IN_FLIGHT)
        self.ended_among = ended_among
        self.filters_of = filters_of
        # The filters (kicau/filters.py) of each account holding streams here that has any, and a count of the
        # changes seen for each account held (a load that saw one arrive meanwhile keeps what the change said).
        self._filters: dict[int, ReaderFilters] = {}
        self._filter_changes: dict[int, int] = {}
        self.followers_among = followers_among
        self.unwanted_of = unwanted_of
        self.memberships_of = memberships_of
        # Per account holding a public or hashtag stream here: the authors those streams leave out, and a count of
        # the hide changes seen for it (a load that saw one arrive meanwhile reads again).
        self._unwanted: dict[int, frozenset[int]] = {}
        self._hide_changes: dict[int, int] = {}
        self.presence = GatewayPresence(redis)
        self.queue_size = queue_size
        self.per_account = per_account
        self._connections: dict[int, set[Connection]] = collections.defaultdict(set)
        # Connections listening to the public timeline, and to each hashtag's (each also among ``_connections``,
        # by its account); the hashtags each connection listens to; and those announced as listening to either.
        self._public: set[Connection] = set()
        self._public_media: set[Connection] = set()
        self._tagged: dict[str, set[Connection]] = {}
        self._tags_of: dict[Connection, frozenset[str]] = {}
        # Connections listening to each list's stream (kicau/lists.py), and the lists each listens to.
        self._listing: dict[int, set[Connection]] = {}
        self._lists_of: dict[Connection, frozenset[int]] = {}
        self._announced: set[Connection] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[Any]] = set()
        # The last delivery of each large author still being resolved (``_deliver_large``): the next one waits for
        # it before dispatching, so that an author's statuses, edits and deletions reach streams in their order.
        self._large_pending: dict[int, asyncio.Task[None]] = {}
        # (what, account) being read again after a failed read (``_keep_loading``).
        self._reloading: set[tuple[str, int]] = set()
        self._stopping = False
        self._subscribed = asyncio.Event()
        self._dispatched: collections.OrderedDict[tuple[str, int, bool, bool, int, int, int], None] = (
            collections.OrderedDict())
        # Direct connections holding events for the next write round (module doc); empty when none is due.
        self._round: list[Connection] = []

    async def start(self) -> None:
        await self.presence.start()
        self._tasks.append(asyncio.create_task(self._receive(), name="stream-hub-receive"))
        self._tasks.append(asyncio.create_task(self._maintain(), name="stream-hub-maintain"))
        if self.announcements_shown is not None:
            self._spawn(self._learn_announcements())  # not among ``_tasks``: it ends, and they must not (``healthy``)
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await self.presence.stop()

    def connection_count(self) -> int:
        return sum(len(c) for c in self._connections.values())

    async def open(self, account_id: int, transport: str, accepts: frozenset[str] = USER_EVENTS, *,
                   session: str = "", hold: bool = False) -> Connection:
        """Register a stream (of the ``accepts`` kinds of event, if given) opened with the token whose hash is
        ``session``, or 429 when the account already holds its cap of streams (on any gateway). With ``hold``, its
        live events are held from the first (``Connection.hold``), for a backlog to go first (``send_backlog``)."""
        now = time.time()
        connection = Connection(account_id=account_id, transport=transport, limit=self.queue_size,
                                accepts=accepts, session=session, resume_from=ids.id_from_ms(int(now * 1000)),
                                merges_told_at=now * 1000)
        # One script (atomic across gateways, safe to repeat), hand-packed: redis-py's MULTI pipeline and the
        # refusal's ZREM were ~10% of the gateway's CPU to open a stream.
        [held] = await resp.round_trip(self.redis, [resp.command(
            b"EVAL", _TAKE_LEASE, b"1", _lease_key(account_id).encode(), b"%f" % (now - STREAM_LEASE_SECONDS),
            b"%f" % now, connection.connection_id.encode(), b"%d" % self.per_account,
            b"%d" % (STREAM_LEASE_SECONDS * 2))])
        if held > self.per_account:
            raise ApiError(429, f"Too many open streams for this account (at most {self.per_account})")
        if account_id not in self._connections:
            await self._load_filters(account_id)
        # Registered locally before presence is announced, so no event published after the announcement
        # can miss this connection.
        if hold:
            connection.hold()
        self._connections[account_id].add(connection)
        await self.presence.change(account_id, +1)
        OPEN_STREAMS.labels(transport).inc()
        return connection

    async def listen(self, connection: Connection, *, public: bool, tags: frozenset[str] = frozenset(),
                     lists: frozenset[int] = frozenset(), public_media: bool = False) -> None:
        """Give an open connection the public timeline's events (``public``) and those of statuses carrying any
        of ``tags``, and no others of the public timeline's; and the events of the timelines of ``lists`` (its
        account's own: the caller checks), which the fanout delivers to the account like its own; with
        ``public_media``, the public timeline's events of statuses with attachments, and its deletions. A connection
        listening to the public timeline or hashtags is announced as the presence of ``PUBLIC_LISTENERS``, so the
        fanout publishes public statuses (with their hashtags) to this gateway; hashtags are matched here."""
        _regroup(self._listing, self._lists_of, connection, lists)
        # Each timeline newly listened to is missed, after a loss of the channel, from now on (``_fill_gap``).
        now = public_keys(public=public, public_media=public_media, tags=tags, lists=lists)
        since = connection.listening_since
        for key in since.keys() - now:
            connection.stop_listening(key)
        if now - since.keys():
            began = ids.id_from_ms(int(time.time() * 1000))
            for key in now - since.keys():
                since[key] = began
        if public:
            self._public.add(connection)
        else:
            self._public.discard(connection)
        if public_media:
            self._public_media.add(connection)
        else:
            self._public_media.discard(connection)
        _regroup(self._tagged, self._tags_of, connection, tags)
        listening = public or public_media or bool(tags)
        if listening and connection.account_id not in self._unwanted:
            await self._load_unwanted(connection.account_id)
        if listening and connection not in self._announced:
            self._announced.add(connection)
            await self.presence.change(PUBLIC_LISTENERS, +1)
        elif not listening and connection in self._announced:
            self._announced.discard(connection)
            try:
                await self.presence.change(PUBLIC_LISTENERS, -1)
            except Exception:
                log.warning("could not announce a public stream's end", exc_info=True)

    async def close(self, connection: Connection) -> None:
        await self.listen(connection, public=False)
        held = self._connections.get(connection.account_id)
        if held is None or connection not in held:
            return
        held.discard(connection)
        if not held:
            del self._connections[connection.account_id]
            self._unwanted.pop(connection.account_id, None)
            self._hide_changes.pop(connection.account_id, None)
            self._filters.pop(connection.account_id, None)
            self._filter_changes.pop(connection.account_id, None)
        OPEN_STREAMS.labels(connection.transport).dec()
        try:
            await self.presence.change(connection.account_id, -1, also=[resp.command(
                b"ZREM", _lease_key(connection.account_id).encode(), connection.connection_id.encode())])
        except Exception:
            log.warning("could not release stream of %s", connection.account_id, exc_info=True)

    def _dispatched_before(self, delivery: StreamDelivery) -> bool:
        """Whether this gateway already dispatched this event of this status, to accounts, to the public
        timeline's streams or to a large author's followers (see ``RECENT_DELIVERIES``). The fanout publishes one
        delivery of each per status and gateway, so a second one is a replay. (A large author's status may have
        both a broadcast and a delivery to accounts: the followers of its hashtags, kicau/tag_follows.py.)"""
        # A conversation's delivery is one a member (each reads it its own way): the member tells them apart.
        member = delivery.recipients[0] if delivery.event == "conversation" and delivery.recipients else 0
        key = (delivery.event, delivery.status_id, delivery.public, delivery.followers_of_author, delivery.list_id,
               delivery.version_id, member)
        dispatched = self._dispatched
        if key in dispatched:
            STREAM_DELIVERIES_REPEATED.inc()
            return True
        dispatched[key] = None
        if len(dispatched) > RECENT_DELIVERIES:
            dispatched.popitem(last=False)
        return False

    async def _load_unwanted(self, account_id: int) -> None:
        """Read whose statuses the account's public and hashtag streams leave out, again if a hide of its changed
        meanwhile. Unreadable (the timeline service is away): the streams go unfiltered meanwhile rather than not
        open at all, and the read is tried again in the background until it succeeds (``_keep_loading``)."""
        if not await self._read_unwanted(account_id, quiet=False):
            self._spawn(self._keep_loading("hides", account_id, self._read_unwanted))

    async def _read_unwanted(self, account_id: int, *, quiet: bool) -> bool:
        """One try of ``_load_unwanted``: whether it got an answer (kept if the account still streams here)."""
        if self.unwanted_of is None:
            return True
        for _ in range(5):
            seen = self._hide_changes.get(account_id, 0)
            try:
                found = frozenset(await self.unwanted_of(account_id))
            except Exception:
                log.log(logging.DEBUG if quiet else logging.WARNING, "could not read whom %s blocks or mutes; its"
                        " public streams go unfiltered until it can", account_id, exc_info=not quiet)
                return False
            if self._hide_changes.get(account_id, 0) == seen:
                if account_id in self._connections:
                    self._unwanted[account_id] = found
                return True
        return True  # changed under each read: the changes themselves read it again

    async def _keep_loading(self, what: str, account_id: int,
                            read: Callable[..., Awaitable[bool]]) -> None:
        """Try ``read`` again (``RELOAD_SECONDS`` apart) until it gets an answer, while the account streams here;
        one such task per account and ``what``."""
        key = (what, account_id)
        if key in self._reloading:
            return
        self._reloading.add(key)
        try:
            for attempt in itertools.count():
                await asyncio.sleep(RELOAD_SECONDS[min(attempt, len(RELOAD_SECONDS) - 1)])
                if account_id not in self._connections or await read(account_id, quiet=True):
                    if account_id in self._connections:
                        log.warning("read the %s of %s after %d retries", what, account_id, attempt + 1)
                    return
        finally:
            self._reloading.discard(key)

    def _hides_changed(self, raw: bytes) -> None:
        """A block or mute was made or undone between two accounts (``account:target:1|0:1|0``, whether each now
        leaves the other out, as the graph service announces it): the public and hashtag streams of either, if held
        here, take the change at once, and read their whole list again (two changes of one pair may be announced
        in either order)."""
        try:
            account_id, target_id, unwanted, unwanted_back = (int(part) for part in raw.split(b":"))
        except ValueError:
            log.error("dropping an unreadable hide change %r", raw)
            return
        for holder, other, leaves_out in ((account_id, target_id, unwanted), (target_id, account_id, unwanted_back)):
            if holder not in self._connections:
                continue
            self._hide_changes[holder] = self._hide_changes.get(holder, 0) + 1
            current = self._unwanted.get(holder)
            if current is not None:
                self._unwanted[holder] = current | {other} if leaves_out else current - {other}
                self._spawn(self._load_unwanted(holder))

    async def _load_filters(self, account_id: int, *, after_loss: bool = False) -> None:
        """The account's filters, before its first stream here opens, or again once the channel is back after a
        loss (``after_loss``: a change announced meanwhile never arrived). Unreadable (the graph service is away):
        its streams go unfiltered meanwhile rather than not open at all, and the read is tried again in the
        background until it succeeds (``_keep_loading``)."""
        if not await self._read_filters(account_id, quiet=False, after_loss=after_loss):
            self._spawn(self._keep_loading("filters", account_id,
                                           functools.partial(self._read_filters, after_loss=after_loss)))

    async def _read_filters(self, account_id: int, *, quiet: bool, after_loss: bool = False) -> bool:
        """One try of ``_load_filters``: whether it got an answer (kept unless a change came meanwhile). After a
        loss of the channel, filters that differ from those held here are a change this gateway missed: its
        streams take them, and its user streams are told as they would have been (``filters_changed``)."""
        if self.filters_of is None:
            return True
        seen = self._filter_changes.get(account_id, 0)
        try:
            found = await self.filters_of(account_id)
        except Exception:
            log.log(logging.DEBUG if quiet else logging.WARNING,
                    "could not read the filters of %s; its streams go unfiltered until it can", account_id,
                    exc_info=not quiet)
            return False
        if quiet and account_id not in self._connections:  # a retry whose streams closed meanwhile
            return True
        if self._filter_changes.get(account_id, 0) != seen:  # announced meanwhile: that change is the newer
            return True
        held = self._filters.get(account_id, NO_FILTERS)
        if found.filters == held.filters:
            return True
        if found.filters:
            self._filters[account_id] = found
        else:  # all of them deleted while the channel was down
            self._filters.pop(account_id, None)
        if after_loss and account_id in self._connections:
            self._tell_filters_changed(account_id)
        return True

    def _tell_filters_changed(self, account_id: int) -> None:
        """Mastodon's ``filters_changed`` (no payload) to the account's user streams here."""
        self.dispatch(StreamDelivery(event="filters_changed", status_id=0, accepted_at=time.time() * 1000,
                                     payload=FILTERS_CHANGED_PAYLOAD, recipients=[account_id]))

    def _filters_changed(self, raw: bytes) -> None:
        """An account's filters changed (``<account>:<filters>``, as the graph service announces them, in the form
        readers keep them): its streams here filter with them from now on, and its user streams are told
        (Mastodon's ``filters_changed``, which carries no payload)."""
        account, _, encoded = raw.partition(b":")
        try:
            account_id, found = int(account), ReaderFilters(decode_filters(encoded))
        except ValueError:
            log.error("dropping an unreadable filters change %r", raw[:200])
            return
        if account_id not in self._connections:
            return
        self._filter_changes[account_id] = self._filter_changes.get(account_id, 0) + 1
        if found.filters:
            self._filters[account_id] = found
        else:
            self._filters.pop(account_id, None)
        self._tell_filters_changed(account_id)

    def _notifications_merged(self, raw: bytes) -> None:
        """An account accepted notification requests (kicau/notification_policies.py): its held notifications are in
        its list now, and its user and notification streams here are told (Mastodon's ``notifications_merged``)."""
        try:
            account_id = int(raw)
        except ValueError:
            log.error("dropping an unreadable notifications merge %r", raw[:200])
            return
        if account_id in self._connections:
            self.dispatch(StreamDelivery(event=MERGED_EVENT, status_id=0, accepted_at=time.time() * 1000,
                                         payload=MERGED_PAYLOAD, recipients=[account_id]))

    def _join_round(self, connection: Connection) -> None:
        """Write this connection, which now holds events, in the hub's next write round (scheduled by the first
        connection to join it). The hot ``dispatch`` does the same inline, once for all its connections."""
        if not self._round:
            asyncio.get_running_loop().call_soon(self._write_round)
        self._round.append(connection)

    def _push_to(self, connections: Iterable[Connection], event: StreamEvent) -> None:
        """One event for these connections, written in the hub's next write round."""
        for connection in connections:
            if connection.push(event):
                self._join_round(connection)

    async def _merges_missed(self) -> None:
        """After a loss of the channel: tell each stream here that takes ``notifications_merged`` of a merge of its
        account's notification requests it was not told of (kicau/keys.py, ``notifications_merged_at``: when the
        account last accepted requests). One round trip for every account held."""
        accounts = [account_id for account_id, held in self._connections.items()
                    if any(MERGED_EVENT in connection.accepts for connection in held)]
        if not accounts:
            return
        try:
            merged = await resp.round_trip(self.redis, [resp.get(keys.notifications_merged_at(a)) for a in accounts])
        except Exception:
            log.warning("could not read when the accounts streaming here last merged notification requests",
                        exc_info=True)
            STREAM_GAP_READS.labels("merges", "failed").inc()
            return
        STREAM_GAP_READS.labels("merges", "filled").inc()
        now = time.time() * 1000
        for account_id, raw in zip(accounts, merged, strict=True):
            if raw is None:
                continue
            at = float(raw)
            behind = [c for c in self._connections.get(account_id, ()) if MERGED_EVENT in c.accepts
                      and c.merges_told_at < at]
            if behind:
                STREAM_GAP_EVENTS.labels(MERGED_EVENT).inc(len(behind))
                event = StreamEvent(MERGED_EVENT, None, MERGED_PAYLOAD, accepted_at=now)
                self._push_to(behind, event)

    def _sessions_ended(self, raw: bytes) -> None:
        """A token was revoked, or an account disabled (kicau/tokens.py, ``end_streams``): the streams here opened
        with it end. Revocations are rare, so a token's streams are found by looking at every stream here."""
        ended = tokens.ended_session(raw)
        if ended is None:
            log.error("dropping an unreadable session end %r", raw[:200])
            return
        kind, subject = ended
        if kind == "account":
            ending = list(self._connections.get(int(subject), ())) if subject.isdigit() else []
        else:
            ending = [c for held in self._connections.values() for c in held if c.session == subject]
        for connection in ending:
            connection.end()

    async def _end_lapsed_sessions(self) -> None:
        """After the channel was lost: end the streams whose sessions ended meanwhile (``_sessions_ended`` would have
        ended them had its message arrived). A session that cannot be checked now keeps its streams."""
        held = {c.session for connections in self._connections.values() for c in connections if c.session}
        if not held or self.ended_among is None:
            return
        try:
            ended = await self.ended_among(sorted(held))
        except Exception:
            log.warning("could not check the sessions of %d streams after resubscribing", len(held), exc_info=True)
            return
        if ended:
            log.info("ending the streams of %d sessions that ended while the channel was lost", len(ended))
        for connection in [c for cs in self._connections.values() for c in cs if c.session in ended]:
            connection.end()

    def _announcement_changed(self, raw: bytes) -> None:
        """The operator's announcements changed (kicau/announcements.py): every user stream here is told, with the
        same payload for all (as Mastodon's, rendered for no one in particular)."""
        try:
            change = decode_announcement_change(raw)
        except ValueError:
            log.error("dropping an unreadable announcement change %r", raw[:200])
            return
        if self._told is not None:
            announcements.apply(self._told, change)
        self._announce(change)

    def _announce(self, change: announcements.Change) -> None:
        if self._connections:
            self.dispatch(StreamDelivery(event=change.event, status_id=0, accepted_at=time.time() * 1000,
                                         payload=change.payload, recipients=list(self._connections)))

    async def _learn_announcements(self) -> None:
        """Read what the streams are told of the announcements, until a read succeeds (``RELOAD_SECONDS`` apart):
        without it, what a loss of the channel hid from them cannot be told."""
        for attempt in itertools.count():
            if self._stopping or await self._announcements_missed(quiet=attempt > 0):
                return
            await asyncio.sleep(RELOAD_SECONDS[min(attempt, len(RELOAD_SECONDS) - 1)])

    async def _announcements_missed(self, *, quiet: bool = False) -> bool:
        """Read the announcements shown now and tell every user stream here how they differ from what it was told
        (``announcements.missed``: the announcements made, edited or taken down, the reactions whose counts moved);
        the first read only learns them. Whether the read succeeded. A change that arrives live while the read is in
        flight may be told twice; a second telling of an announcement or of a count changes nothing."""
        if self.announcements_shown is None:
            return True
        try:
            shown = await self.announcements_shown()
            now = announcements.told_of(shown)
        except Exception:
            log.log(logging.DEBUG if quiet else logging.WARNING, "could not read the announcements shown",
                    exc_info=not quiet)
            STREAM_GAP_READS.labels("announcements", "failed").inc()
            return False
        told, self._told = self._told, now
        if told is not None:
            changes = announcements.missed(told, shown)
            for change in changes:
                STREAM_GAP_EVENTS.labels(change.event).inc()
                self._announce(change)
            STREAM_GAP_READS.labels("announcements", "filled").inc()
        return True

    def dispatch(self, delivery: StreamDelivery) -> None:
        public = delivery.public
        event = StreamEvent(
            # Only a home timeline's update carries an SSE id: ids are its resume points (Last-Event-ID). Not a
            # notification, an edit, a deletion (``_RESUMABLE``), nor a public timeline's or a list's event.
            name=delivery.event,
            event_id=str(delivery.status_id)
            if delivery.event in _RESUMABLE and not public and not delivery.list_id else None,
            data=delivery.payload, accepted_at=delivery.accepted_at, public=public, list_id=delivery.list_id,
            notification_id=delivery.status_id if delivery.event == "notification" else 0,
            conversation_status=delivery.status_id if delivery.event == "conversation" else 0,
            status_id=delivery.status_id if delivery.event == "update" and (public or delivery.list_id) else 0,
        )
        round_due = bool(self._round)
        joining = self._round
        # Accounts with filters are few: only their events are read and, where a filter matches, made again.
        filtering = self._filters if self._filters and delivery.event in _FILTERED_EVENTS else None
        matched = _Matched(event) if filtering else None
        if delivery.list_id:
            for connection in self._listing.get(delivery.list_id, ()):
                shown = matched.for_reader(filtering, connection.account_id, HOME_CONTEXT) if matched else event
                if shown is not None and connection.push(shown):
                    joining.append(connection)
        elif public:
            listeners: Iterable[Connection] = self._public
            if self._public_media and (delivery.event == "delete" or media.shows_media(delivery.payload)):
                event.media = True
                listeners = self._public | self._public_media
            if delivery.tags and self._tagged:
                event.tags = delivery.tags
                listeners = set(listeners).union(*(self._tagged.get(tag, ()) for tag in delivery.tags))
            author, unwanted = delivery.author_id, self._unwanted
            for connection in listeners:
                if unwanted and author in unwanted.get(connection.account_id, ()):
                    continue  # an author the listener blocks or mutes, or that blocks it
                shown = matched.for_reader(filtering, connection.account_id, PUBLIC_CONTEXT) if matched else event
                if shown is not None and connection.push(shown):
                    joining.append(connection)
        else:
            for account_id in delivery.recipients:
                shown = event
                if matched is not None and filtering and account_id in filtering:
                    shown = matched.for_reader(filtering, account_id, HOME_CONTEXT)
                    if shown is None:
                        continue  # hidden by its filters
                for connection in self._connections.get(account_id, ()):
                    if connection.push(shown):
                        joining.append(connection)
        if joining and not round_due:
            asyncio.get_running_loop().call_soon(self._write_round)

    def send_backlog(self, connection: Connection, backlog: list[StreamEvent]) -> None:
        """Send a stream held (``Connection.hold``) since before its ``backlog`` was read (a WebSocket's resume:
        routes/streaming.py) the backlog, then the live events that arrived meanwhile; a status both read and live
        goes out once, live, and one read that still arrives live later is not sent again."""
        live = connection.release()
        if connection.overflowed or connection not in self._connections.get(connection.account_id, ()):
            return
        arrived = _replay_keys(live)
        sending = [event for event in backlog if _replay_key(event) not in arrived]
        joined = False
        for event in itertools.chain(sending, live):
            joined = connection.push(event) or joined
        connection.replayed.update(_replay_keys(sending))
        if joined:
            self._join_round(connection)

    def _fill_gaps(self) -> None:
        """After a loss of the channel: every stream here that takes its account's statuses, notifications or
        conversations, or listens to the public timeline, hashtags or lists, is sent those it missed meanwhile
        (``_fill_gap``)."""
        self._timeline_reads = self._read_timelines_missed()
        for account_id, held in self._connections.items():
            if account_id in self._gap_reads:
                self._gap_reads[account_id] = True  # read again once the read in flight is done
                continue
            streams = [connection for connection in held
                       if not _FILLED_EVENTS.isdisjoint(connection.accepts) or connection.listening_since]
            if streams:
                self._gap_reads[account_id] = False
                self._spawn(self._fill_gap(account_id, streams))

    def _read_timelines_missed(self) -> dict[str, asyncio.Task[tuple[list[MissedStatus], bool]]]:
        """One read of each timeline listened to here besides the accounts' own, from the oldest point among its
        listeners (a list's as its owner, its one listener's account)."""
        oldest: dict[str, tuple[int, int]] = {}
        for held in self._connections.values():
            for connection in held:
                for key in connection.listening_since:
                    point = connection.public_point(key)
                    if key not in oldest or point < oldest[key][0]:
                        oldest[key] = (point, connection.account_id)
        read = self.timeline_after
        reads = {key: asyncio.create_task(self._guarded_read(
                     key.partition("#")[0], None if read is None else functools.partial(read, key, reader, point),
                     f"timeline {key}"))
                 for key, (point, reader) in oldest.items()}
        for task in reads.values():  # held till done, whether or not a stream still awaits it
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return reads

    async def _timelines_missed(self, keys: Iterable[str]) -> dict[str, tuple[list[MissedStatus], bool]]:
        """The reads of ``_read_timelines_missed`` for these keys. A key it has no read for was first listened to
        once the channel was back: nothing of it was missed."""
        reads = self._timeline_reads
        return {key: await reads[key] if key in reads else ([], True) for key in keys}

    async def _fill_gap(self, account_id: int, streams: list[Connection]) -> None:
        """Send the ``streams`` of ``account_id`` what they missed: the statuses of its home timeline after the last
        each was sent, its notifications and its conversations (by their last status) likewise (each read once for
        all of them, from the oldest point), and the statuses of the public timeline, hashtags and lists it listens
        to after the last it was sent or its beginning to listen (each timeline read once for the whole hub), in
        order of their ids; then, on a user stream, ``kicau.refetch`` saying so; then the live events that arrived
        meanwhile (held back till then, so nothing newer goes first; any of them among those read goes out once).
        Should a read fail or not reach back far enough, the notice says that events may be missing, and the client
        reloads or reconnects with its Last-Event-ID."""
        status_points = {c: c.resume_point() for c in streams if "update" in c.accepts}
        notification_points = {c: c.notification_point() for c in streams if "notification" in c.accepts}
        conversation_points = {c: c.conversation_point() for c in streams if "conversation" in c.accepts}
        timeline_points = {c: {key: c.public_point(key) for key in c.listening_since}
                           for c in streams if c.listening_since}
        listened = {key for points in timeline_points.values() for key in points}
        for connection in streams:
            connection.hold()
        try:
            while True:
                ((statuses, statuses_whole), (notifications, notifications_whole),
                 (conversations, conversations_whole), timelines) = await asyncio.gather(
                    self._read_missed("statuses", self.home_after, account_id, status_points),
                    self._read_missed("notifications", self.notifications_after, account_id, notification_points),
                    self._read_missed("conversations", self.conversations_after, account_id, conversation_points),
                    self._timelines_missed(listened))
                if not self._gap_reads.get(account_id):
                    break
                self._gap_reads[account_id] = False  # lost again meanwhile: what was read may be short
        finally:
            del self._gap_reads[account_id]
        filtering = self._filters if account_id in self._filters else None
        open_here = self._connections.get(account_id, set())
        for connection in streams:
            live = connection.release()
            if connection.overflowed or connection not in open_here:
                continue
            arrived = _replay_keys(live)
            deleted_live = {event.data for event in live if event.name == "delete"}
            missed: list[StreamEvent] = []
            # The statuses edited and deleted since the oldest point (kicau/retractions.py), after the statuses and
            # notifications: an edit's current version, a deletion of one sent just before, go out last.
            retracted: list[StreamEvent] = []
            whole = True
            if connection in status_points:
                whole = statuses_whole
                point = status_points[connection]
                for event in statuses if statuses_whole else ():
                    if event.name == REFETCH_EVENT:  # the edits and deletions may not be all
                        whole = False
                        continue
                    if event.name == "delete":
                        if event.data not in deleted_live:
                            retracted.append(event)
                        continue
                    if event.name == "update" and (not event.event_id or int(event.event_id) <= point
                                                   or event.event_id in arrived):
                        continue
                    shown = _Matched(event).for_reader(filtering, account_id, HOME_CONTEXT) if filtering else event
                    if shown is not None:
                        (missed if event.name == "update" else retracted).append(shown)
            if connection in notification_points:
                whole = whole and notifications_whole
                point = notification_points[connection]
                missed += [event for event in (notifications if notifications_whole else ())
                           if event.notification_id > point and _replay_key(event) not in arrived]
            if connection in conversation_points:
                whole = whole and conversations_whole
                point = conversation_points[connection]
                # One whose last status the member may not see has no point of its own: the read began after ours.
                missed += [event for event in (conversations if conversations_whole else ())
                           if (event.conversation_status > point or not event.conversation_status)
                           and _replay_key(event) not in arrived]
            if connection in timeline_points:
                timeline_statuses, timeline_retracted = self._timeline_statuses_missed(
                    connection, timeline_points[connection], timelines, arrived, deleted_live, filtering)
                missed += timeline_statuses
                retracted += timeline_retracted
            missed.sort(key=_gap_order)
            missed += retracted
            for event in missed:
                STREAM_GAP_EVENTS.labels(event.name).inc()
            sending = missed
            if REFETCH_EVENT in connection.accepts:
                sending = [*missed, StreamEvent(REFETCH_EVENT, None, GAP_FILLED if whole else CHANNEL_GAP)]
            joined = False
            for event in itertools.chain(sending, live):
                joined = connection.push(event) or joined
            # What was read here may still arrive live (fanned out as it was read): sent once.
            connection.replayed.update(_replay_keys(missed))
            if joined:
                self._join_round(connection)

    def _timeline_statuses_missed(self, connection: Connection, points: dict[str, int],
                                  timelines: dict[str, tuple[list[MissedStatus], bool]], arrived: set[str],
                                  deleted_live: set[str], filtering: dict[int, ReaderFilters] | None,
                                  ) -> tuple[list[StreamEvent], list[StreamEvent]]:
        """Of the timelines' reads, what this connection missed of those it still listens to: the statuses after
        its point in each that did not arrive live, and the edits and deletions (but those that arrived live); each
        once (a status of the public timeline may also be a hashtag's), and as the live dispatch would have shown it
        (not of an author it blocks or mutes, its filters applied)."""
        account_id = connection.account_id
        unwanted = self._unwanted.get(account_id, frozenset())
        statuses: list[StreamEvent] = []
        retracted: list[StreamEvent] = []
        taken: set[tuple[str, int]] = set()
        for key, point in points.items():
            if key not in connection.listening_since:
                continue  # no longer listened to
            for status in timelines.get(key, ([], True))[0]:
                event = status.event
                once = (event.name, status.status_id)
                if once in taken or (not event.list_id and status.author_id in unwanted):
                    continue
                if event.name == "update":
                    if status.status_id <= point or _replay_key(event) in arrived:
                        continue
                elif event.name == "delete" and event.data in deleted_live:
                    continue
                shown = (_Matched(event).for_reader(filtering, account_id,
                                                    HOME_CONTEXT if event.list_id else PUBLIC_CONTEXT)
                         if filtering and event.name in _FILTERED_EVENTS else event)
                if shown is not None:
                    taken.add(once)
                    (statuses if event.name == "update" else retracted).append(shown)
        return statuses, retracted

    async def _read_missed(self, kind: str, read: MissedAfter | None, account_id: int,
                           points: dict[Connection, int]) -> tuple[list[StreamEvent], bool]:
        """One of ``_fill_gap``'s reads, from the oldest of ``points``: what it found, and whether that is all
        (nothing to read is all; no way to read it is not)."""
        if not points:
            return [], True
        return await self._guarded_read(kind, None if read is None else functools.partial(
            read, account_id, min(points.values())), f"account {account_id}")

    async def _guarded_read(self, kind: str, read: Callable[[], Awaitable[tuple[list[_Found], bool]]] | None,
                            whose: str) -> tuple[list[_Found], bool]:
        """A read of what streams missed, at most ``GAP_READS_IN_FLIGHT`` at once; one that fails (logged and
        counted) or that there is no way to make found nothing, and not all."""
        if read is None:
            return [], False
        try:
            async with self._gap_slots:
                found, whole = await read()
        except Exception:
            log.warning("could not read the %s the streams of %s missed", kind, whose, exc_info=True)
            STREAM_GAP_READS.labels(kind, "failed").inc()
            return [], False
        STREAM_GAP_READS.labels(kind, "filled" if whole else "short").inc()
        return found, whole

    def _write_round(self) -> None:
        """Write every connection that holds events, each once; see the module doc."""
        connections, self._round = self._round, []
        tally = DeliveryTally()
        for connection in connections:
            connection.write_held(tally)
        tally.observe()

    async def _receive(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                # The channels of changes to accounts and to the instance, each with its handler; every other
                # message is a stream delivery.
                changes: dict[bytes, Callable[[bytes], None]] = {
                    HIDES_CHANNEL: self._hides_changed, FILTERS_CHANNEL: self._filters_changed,
                    ANNOUNCEMENTS_CHANNEL: self._announcement_changed,
                    NOTIFICATIONS_MERGED_CHANNEL: self._notifications_merged,
                    SESSIONS_ENDED_CHANNEL: self._sessions_ended}
                await clients.subscribe(pubsub, self.presence.channel, keys.LARGE_ACCOUNTS_CHANNEL, *changes,
                                        reconnected=self._channel_restored)
                if self._subscribed.is_set():  # subscribed again after giving up on the channel
                    self._channel_restored()
                self._subscribed.set()
                async for message in pubsub.listen():
                    changed = changes.get(message["channel"])
                    if changed is not None:
                        changed(message["data"])
                        continue
                    try:
                        delivery = decode_delivery(message["data"])
                    except Exception:
                        log.exception("dropping an undecodable stream delivery")
                        continue
                    if self._dispatched_before(delivery):
                        continue
                    if delivery.followers_of_author:
                        if self._connections:
                            self._deliver_large_in_order(delivery)
                    else:
                        self.dispatch(delivery)
            except asyncio.CancelledError:
                await clients.unsubscribe(pubsub, self._channel_restored)
                raise
            except Exception:
                log.warning("stream channel lost; resubscribing", exc_info=True)
                await clients.unsubscribe(pubsub, self._channel_restored)
                await asyncio.sleep(0.5)

    def _channel_restored(self, _connection: object = None) -> None:
        """The channel is back after it was lost: whatever was published meanwhile never arrives. Hide and filter
        changes are read again for every account held here, and the end of a session, which nothing says again, is
        looked for among every stream's (``_end_lapsed_sessions``)."""
        log.warning("stream channel restored; reading again what it may have missed")
        PUBSUB_RECONNECTIONS.labels("stream_hub").inc()
        # Whatever was published meanwhile is lost for every stream here. A user stream is sent again the
        # statuses of its home timeline it missed, and told what else it may have missed; a stream of the public
        # timeline, a hashtag or a list, the statuses it missed, untold (``_fill_gap``).
        self._fill_gaps()
        self._spawn(self._announcements_after_loss())
        self._spawn(self._merges_missed())
        for account_id in list(self._unwanted):
            self._spawn(self._load_unwanted(account_id))
        for account_id in list(self._connections):
            self._spawn(self._load_filters(account_id, after_loss=True))
        self._spawn(self._end_lapsed_sessions())

    async def _announcements_after_loss(self) -> None:
        if self._told is None:
            return  # never read yet: the task that reads them until it can is still at it (``start``)
        if not await self._announcements_missed():
            await self._learn_announcements()  # what is shown later is still told against what was told before

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def _deliver_large_in_order(self, delivery: StreamDelivery) -> None:
        """``_deliver_large``, in a task of its own (its reads wait on the graph service, and the channel must be
        read on meanwhile), dispatching only after the author's delivery before it has: resolved concurrently, a
        reply (which reads the lists' replies policies too) could reach a stream after the author's next status, or
        a status after its own deletion. A read that hangs holds the author's later deliveries back with it, until
        the graph call's timeout (``KICAU_GATEWAY_UPSTREAM_TIMEOUT_SECONDS``) ends it."""
        author = delivery.author_id
        task = asyncio.create_task(self._deliver_large(delivery, after=self._large_pending.get(author)))
        self._large_pending[author] = task
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        task.add_done_callback(functools.partial(self._large_delivered, author))

    def _large_delivered(self, author: int, task: asyncio.Task[None]) -> None:
        if self._large_pending.get(author) is task:
            del self._large_pending[author]

    async def _deliver_large(self, delivery: StreamDelivery, after: asyncio.Task[None] | None = None) -> None:
        """A large account's status arrives once for every gateway: find which of this gateway's connected
        accounts follow the author (one partition read per 100 of them) and deliver to those whose follows'
        options admit the status (kicau/follow_options.py), and, with the lists
        the author is in (one read, made beside it), to this gateway's streams of those lists whose owners' options
        admit it too. An owner of an
        exclusive list holding the author gets it on that list's stream alone, as its home timeline leaves it out
        (kicau/lists.py). Dispatched once ``after`` (the author's delivery before this one) is."""
        author = delivery.author_id
        hidden = set(delivery.hidden_from)  # who blocks or mutes the author (kicau/blocks_and_mutes.py)
        candidates = [a for a in self._connections if a != author and a not in hidden]
        try:
            followers, memberships = await asyncio.gather(
                self.followers_among(author, candidates) if candidates and self.followers_among else _none(),
                self.memberships_of(author) if candidates and self.memberships_of else _none())
        except Exception:
            log.warning("could not resolve followers of %s for a stream delivery", author, exc_info=True)
            return
        followers = followers or {}  # none asked about
        apart = {m.owner_id for m in memberships if m.exclusive}
        recipients = [a for a in followers if a not in apart] if apart else list(followers)
        refused: set[int] = set()
        # The lists holding the author that a stream here listens to, and whose owner does not hide it.
        streamed = [m for m in memberships if m.list_id in self._listing and m.owner_id not in hidden]
        optioned = any(not options.default for options in followers.values())
        traits = _status_traits(delivery) if streamed or optioned else None
        if traits is not None and optioned:
            # Their follows' options (kicau/follow_options.py), which the fanout applies to everyone else's, on
            # their home and list streams alike.
            refused = {a for a, options in followers.items()
                       if not options.admits(reblog=traits.reblog is not None, language=traits.language or "")}
            recipients = [a for a in recipients if a not in refused]
        if author in self._connections:
            recipients = [*recipients, author]
        replied_to = int(traits.in_reply_to_account_id or 0) if traits is not None else 0
        if streamed and replied_to and self.memberships_of and self.followers_among:
            # A reply to someone else reaches the lists whose replies policy shows it, as the fanout sends the
            # other authors' (kicau/lists.py).
            try:
                streamed = await showing_reply(streamed, author_id=author, replied_to=replied_to,
                                               lists_of=self.memberships_of, followers_among=self.followers_among)
            except Exception:
                log.warning("could not read the lists' replies policies for a reply of %s", author, exc_info=True)
                streamed = []
        if after is not None:
            await asyncio.wait((after,))  # its outcome is its own: only its moment matters here
        if recipients:
            self.dispatch(msgspec.structs.replace(delivery, recipients=recipients))
        for membership in streamed:
            if membership.owner_id not in refused:
                self.dispatch(msgspec.structs.replace(delivery, recipients=[membership.owner_id],
                                                      list_id=membership.list_id, followers_of_author=False))

    def healthy(self) -> bool:
        """For /readyz: the receive and maintenance loops run and presence is fresh."""
        return all(not t.done() for t in self._tasks) and self.presence.healthy()

    async def _maintain(self) -> None:
        """Every few seconds: presence heartbeat and stream-lease renewal. A failure is logged and retried on
        the next round; nothing but stop() ends this loop, since a silent gateway stops receiving events."""
        while True:
            try:
                await asyncio.sleep(HEARTBEAT_SECONDS)
                await self.presence.beat()
                await self._renew_leases()
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                log.error("stream hub maintenance was cancelled unexpectedly; continuing")
            except Exception:
                log.warning("stream hub maintenance failed; retrying", exc_info=True)

    async def _renew_leases(self) -> None:
        """Every open stream's lease, renewed in one round trip. Hand-packed and parsed in bulk (kicau/resp.py):
        with redis-py, renewing a thousand streams held this loop for ~50 ms every few seconds, and every event
        dispatched meanwhile waited for it."""
        if not self._connections:
            return
        now = b"%f" % time.time()
        ttl = b"%d" % (STREAM_LEASE_SECONDS * 2)
        packed: list[bytes] = []
        for account_id, held in self._connections.items():
            key = _lease_key(account_id).encode()
            members = [part for c in held for part in (now, c.connection_id.encode())]
            packed.append(resp.command(b"ZADD", key, *members))
            packed.append(resp.command(b"EXPIRE", key, ttl))
        await resp.round_trip(self.redis, packed)  # idempotent: safe to repeat on a fresh connection


async def _none() -> list[Any]:
    return []


Grouped = TypeVar("Grouped", str, int)  # what connections listen to: a hashtag, a list


def _regroup(listeners: dict[Grouped, set[Connection]], held: dict[Connection, frozenset[Grouped]],
             connection: Connection, now: frozenset[Grouped]) -> None:
    """Move a connection between the groups of listeners it is in (``held``) and those of ``now``."""
    before = held.pop(connection, frozenset())
    for key in before - now:
        group = listeners[key]
        group.discard(connection)
        if not group:
            del listeners[key]
    for key in now - before:
        listeners.setdefault(key, set()).add(connection)
    if now:
        held[connection] = now


class _StatusTraits(msgspec.Struct):
    """What a follow's options look at in a status (kicau/follow_options.py), and what a list's replies policy
    does (kicau/lists.py)."""

    reblog: Any = None
    language: str | None = None
    in_reply_to_account_id: str | None = None


_decode_traits = msgspec.json.Decoder(_StatusTraits).decode


def _status_traits(delivery: StreamDelivery) -> _StatusTraits | None:
    """Whether the delivered status is a reblog, and its language: for ``update`` and ``status.update``, whose
    payload is the Status; None for other events (a delete reaches every follower)."""
    if delivery.event not in ("update", "status.update"):
        return None
    try:
        return _decode_traits(delivery.payload)
    except msgspec.DecodeError:
        log.error("a large account's status of %s could not be read for its followers' options", delivery.author_id)
        return None
