"""The real-time stream, in Mastodon's wire formats: Server-Sent Events and WebSocket.

Beyond Mastodon: every status update on the user stream carries ``id: <status id>``, and a client reconnecting
with ``Last-Event-ID`` first receives every status it missed from its home timeline (oldest first), then the
edits and deletions it missed (kicau/retractions.py), then live events, with no gap and no duplicate. When the
missed span reaches past what the timeline holds, a ``kicau.refetch`` event tells the client to reload its
timeline instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import msgspec
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from kicau import hashtags, media, tokens
from kicau.hot_routes import StreamOpener
from kicau.ids import parse_id
from kicau.tokens import TokenInfo
from kicau.web import ACCOUNT_HEADER, ApiError
from services.gateway.auth import bearer_value, resolve_with
from services.gateway.deps import Upstreams
from services.gateway.streaming import (
    DIRECT_STREAM,
    HASHTAG_STREAMS,
    LIST_STREAM,
    NOTIFICATION_STREAM,
    PUBLIC_KEY,
    PUBLIC_MEDIA_KEY,
    REFETCH_EVENT,
    SERVER_SEND_KEY,
    STREAM_EVENTS,
    STREAMS,
    USER_STREAM,
    Connection,
    MissedStatus,
    StreamEvent,
    StreamHub,
    Subscriptions,
    TransportSink,
    server_transport,
    stream_key,
    websocket_sink,
)
from services.gateway.upstreams import Caller, raise_for_error

log = logging.getLogger(__name__)

# What a client's WebSocket message was when it was not a JSON value (``_client_message``).
_BINARY = object()
_NOT_JSON = object()
_decode_client_json = msgspec.json.Decoder().decode


async def _client_message(websocket: WebSocket) -> Any:
    """The JSON value of the client's next message; ``_NOT_JSON`` for text that is not JSON, ``_BINARY`` for a binary
    frame. Starlette's ``receive_json`` raised for both (a KeyError for a binary frame, logged as a failure of the
    route), and the socket was dropped without a word: a client's typo now gets Mastodon's error frame instead."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        return _BINARY
    try:
        return _decode_client_json(text)
    except msgspec.DecodeError:
        return _NOT_JSON


router = APIRouter(tags=["streaming"])

OVERFLOW_EVENT = "kicau.overflow"
# What a resume is sent instead of a backlog the home timeline cannot provably give whole, or could not be read;
# and after a backlog when the log of edits and deletions does not reach back to its point (it keeps them for
# ``retraction_log_hours``; a Redis that lost its data began it again).
MISSED_TOO_MUCH = '{"reason":"missed events exceed the home timeline"}'
RESUME_FAILED = '{"reason":"what was missed could not be read: reload the timeline"}'
RETRACTIONS_GAP = '{"reason":"edits and deletions this far back are not kept: some may be missing"}'
OVERFLOW_DATA = '{"reason":"reader too slow, reconnect with Last-Event-ID"}'


class _HasId(msgspec.Struct):
    id: str


_split = msgspec.json.Decoder(list[msgspec.Raw]).decode
_read_id = msgspec.json.Decoder(_HasId).decode


# A WebSocket refused, or ended by a refusal (its token checked again as it subscribes, a cap on streams), closes
# with the refusal's status in the 4000s of private-use codes; anything else is the server's error (1011).
_CLOSE_CODES = {401: 4001, 403: 4003, 429: 4029}


async def _stream_token(request: Request | WebSocket) -> tuple[TokenInfo, str]:
    """The stream's token and its hash (the session whose end ends the stream: ``StreamHub``). Bearer header, or
    for browsers (which cannot set headers on EventSource/WebSocket) the ``access_token`` query parameter or the
    WebSocket subprotocol, as Mastodon accepts."""
    value = bearer_value(request) if isinstance(request, Request) else None
    if value is None and isinstance(request, WebSocket):
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            value = header[7:].strip()
        value = value or request.headers.get("sec-websocket-protocol")
    value = value or request.query_params.get("access_token")
    if not value:
        raise ApiError(401, "Missing access token")
    info = await resolve_with(request.app.state, value)
    if info.account_id is None:
        raise ApiError(401, "This stream requires a user token")
    if not (info.allows("read") or info.allows("read:statuses")):
        raise ApiError(403, "This action is outside the authorized scopes")
    return info, tokens.hash_token(value)


class _Missed(msgspec.Struct):
    statuses: list[msgspec.Raw]
    edited: list[msgspec.Raw] = []
    deleted: list[str] = []
    retractions_covered: bool = False


_read_missed = msgspec.json.Decoder(_Missed).decode


async def home_after(timeline: Caller, account_id: int, after: int, *,
                     rebuild: bool = True) -> tuple[list[StreamEvent], bool]:
    """What ``account_id``'s user stream missed after the status id ``after``, as the events that would have carried
    it: the statuses of its home timeline, oldest first; then the statuses edited since, as they are now; then
    those deleted since (kicau/retractions.py), followed by ``kicau.refetch`` if those may not be all; and whether
    the statuses are provably all. A stream's resume backlog, and (without ``rebuild``: a timeline Redis lost is
    not rebuilt for it) what a user stream missed while the hub's channel was lost (``StreamHub._fill_gap``).
    Like their live events, edits and deletions carry no SSE id."""
    answer = await timeline.call("GET", "/internal/timelines/home/after",
                                 params={"after": after, "rebuild": int(rebuild)},
                                 headers={ACCOUNT_HEADER: str(account_id)})
    if answer.status_code != 200:
        raise ApiError(503, "Service temporarily unavailable, try again")
    missed = _read_missed(answer.content)
    events = [StreamEvent("update", _read_id(raw).id, bytes(raw).decode()) for raw in missed.statuses]
    events += [StreamEvent("status.update", None, bytes(raw).decode()) for raw in missed.edited]
    events += [StreamEvent("delete", None, status_id) for status_id in missed.deleted]
    if not missed.retractions_covered:
        events.append(StreamEvent(REFETCH_EVENT, None, RETRACTIONS_GAP))
    return events, answer.headers.get("x-kicau-covered") == "1"


async def resume_backlog(timeline: Caller, connection: Connection, after: int) -> list[StreamEvent]:
    """What a stream resuming after the status ``after`` is sent before its live events (``home_after``), or
    ``kicau.refetch`` alone when that is not provably every status it missed; its resume point (for a later loss of
    the hub's channel) moves past the statuses sent."""
    backlog, covered = await home_after(timeline, connection.account_id, after)
    if not covered:
        return [StreamEvent(REFETCH_EVENT, None, MISSED_TOO_MUCH)]
    connection.resume_from = max([after, *(int(event.event_id) for event in backlog if event.event_id)])
    return backlog


async def _oldest_after(timeline: Caller, path: str, account_id: int | None, after: int, limit: int,
                        **params: Any) -> tuple[list[msgspec.Raw], bool]:
    """The account's page of ``path`` (as no one in particular reads it without one) nearest after the id ``after``
    (Mastodon's ``min_id``), oldest first, and whether that is all of what comes after it (fewer than ``limit``)."""
    answer = await timeline.call("GET", path, params={**params, "min_id": after, "limit": limit},
                                 headers={} if account_id is None else {ACCOUNT_HEADER: str(account_id)})
    if answer.status_code != 200:
        raise ApiError(503, "Service temporarily unavailable, try again")
    found = _split(answer.content)  # newest first
    return found[::-1], len(found) < limit


# As many notifications as one read of the timeline service gives (Mastodon's most a page).
NOTIFICATIONS_A_READ = 80


async def notifications_after(timeline: Caller, account_id: int, after: int) -> tuple[list[StreamEvent], bool]:
    """The account's notifications after the id ``after``, oldest first, as the events that carried them, and
    whether that is all of them (fewer than a read gives): what its streams missed while the hub's channel was
    lost (``StreamHub._fill_gap``)."""
    found, whole = await _oldest_after(timeline, "/internal/notifications", account_id, after, NOTIFICATIONS_A_READ)
    return [StreamEvent("notification", None, bytes(raw).decode(), notification_id=int(_read_id(raw).id))
            for raw in found], whole


# As many conversations as one read of the timeline service gives (Mastodon's most a page).
CONVERSATIONS_A_READ = 40


class _LastStatus(msgspec.Struct):
    last_status: _HasId | None = None


_read_last_status = msgspec.json.Decoder(_LastStatus).decode


async def conversations_after(timeline: Caller, account_id: int, after: int) -> tuple[list[StreamEvent], bool]:
    """The account's conversations whose last status is after the id ``after``, oldest first, as the ``conversation``
    events that would have carried them (each as it is now, not once per status that joined it), and whether that
    is all of them (fewer than a read gives): what its ``direct`` streams missed while the hub's channel was lost
    (``StreamHub._fill_gap``)."""
    found, whole = await _oldest_after(timeline, "/internal/conversations", account_id, after, CONVERSATIONS_A_READ)
    events = []
    for raw in found:
        last = _read_last_status(raw).last_status
        events.append(StreamEvent("conversation", None, bytes(raw).decode(),
                                  conversation_status=int(last.id) if last is not None else 0))
    return events, whole


# As many statuses of a timeline as one read of the timeline service gives (Mastodon's most a page).
STATUSES_A_READ = 40


class _Tag(msgspec.Struct):
    name: str


class _ListedStatus(msgspec.Struct):
    id: str
    account: _HasId
    tags: list[_Tag] = []


_read_listed = msgspec.json.Decoder(_ListedStatus).decode


class _Deleted(msgspec.Struct):
    id: str
    account_id: str
    tags: list[str] = []


class _Retracted(msgspec.Struct):
    edited: list[msgspec.Raw]
    deleted: list[_Deleted]


_read_retracted = msgspec.json.Decoder(_Retracted).decode


async def timeline_after(timeline: Caller, key: str, account_id: int, after: int) -> tuple[list[MissedStatus], bool]:
    """The statuses of the timeline ``key`` (``streaming.public_keys``) after the id ``after``, oldest first, as the
    ``update`` events its streams would have been sent, then the ``status.update`` and ``delete`` of those edited
    and deleted since; and whether the statuses are all (fewer than a read gives): what the streams missed while
    the hub's channel was lost (``StreamHub._fill_gap``). The public timeline's and a hashtag's are read as no one
    in particular reads them, as the fanout renders their live events (the hub hides what each listener blocks,
    mutes or filters); a list's as ``account_id``, its owner."""
    stream, _, name = key.partition("#")
    tag = name if stream in HASHTAG_STREAMS else None
    if key in (PUBLIC_KEY, PUBLIC_MEDIA_KEY) or tag is not None:
        path = "/internal/timelines/public" if tag is None else f"/internal/timelines/tag/{quote(tag, safe='')}"
        only_media = {"only_media": 1} if key == PUBLIC_MEDIA_KEY else {}
        (found, whole), retracted = await asyncio.gather(
            _oldest_after(timeline, path, None, after, STATUSES_A_READ, **only_media),
            _retracted_since(timeline, after, tag=tag, media_only=key == PUBLIC_MEDIA_KEY))
        return [_missed_update(raw, 0, tag) for raw in found] + retracted, whole
    if stream == LIST_STREAM:
        list_id = int(name)
        (found, whole), retracted = await asyncio.gather(
            _oldest_after(timeline, f"/internal/timelines/list/{list_id}", account_id, after, STATUSES_A_READ),
            _retracted_since(timeline, after, list_id=list_id, owner=account_id))
        return [_missed_update(raw, list_id, None) for raw in found] + retracted, whole
    raise ValueError(f"no timeline is read for the stream key {key!r}")


def _missed_update(raw: msgspec.Raw, list_id: int, tag: str | None, name: str = "update") -> MissedStatus:
    """A status read (of a list's timeline if ``list_id``), as the event of ``name`` that would have carried it:
    of the public timeline's streams, with its hashtags (and ``tag``, the one it was read for) and whether it has
    attachments, as the live dispatch frames it."""
    status = _read_listed(raw)
    data = bytes(raw).decode()
    tags = () if list_id else tuple(dict.fromkeys([*(hashtags.normal(t.name) for t in status.tags),
                                                   *((tag,) if tag else ())]))
    status_id = int(status.id)
    return MissedStatus(StreamEvent(name, None, data, public=not list_id, list_id=list_id, tags=tags,
                                    media=not list_id and media.shows_media(data),
                                    status_id=status_id if name == "update" else 0),
                        int(status.account.id), status_id)


async def _retracted_since(timeline: Caller, after: int, *, tag: str | None = None, media_only: bool = False,
                           list_id: int = 0, owner: int = 0) -> list[MissedStatus]:
    """The public statuses (of ``tag``), or those of the members of the ``owner``'s list ``list_id``, edited and
    deleted since the id ``after``, as the ``status.update`` and ``delete`` events their streams would have been
    sent (of the media streams: the edits of those with attachments, and every deletion, as live). Those the
    timeline service cannot say are all are sent all the same: an edit or a deletion twice changes nothing for a
    client."""
    params: dict[str, Any] = {"after": after, **({"tag": tag} if tag else {}), **({"list": list_id} if list_id else {})}
    answer = await timeline.call("GET", "/internal/timelines/retracted", params=params,
                                 headers={ACCOUNT_HEADER: str(owner)} if list_id else {})
    if answer.status_code != 200:
        raise ApiError(503, "Service temporarily unavailable, try again")
    found = _read_retracted(answer.content)
    edits = [_missed_update(raw, list_id, tag, "status.update") for raw in found.edited]
    deletions = [MissedStatus(StreamEvent("delete", None, deleted.id, public=not list_id, list_id=list_id,
                                          tags=() if list_id else tuple(deleted.tags), media=not list_id),
                              int(deleted.account_id), int(deleted.id))
                 for deleted in found.deleted]
    return [edit for edit in edits if edit.event.media or not media_only] + deletions


async def announcements_shown(graph: Caller) -> list[bytes]:
    """The announcements shown now, as no one in particular reads them (Announcement JSON each), as the user streams
    are told of them: what the stream hub compares with what it told them once its channel is back after a loss."""
    answer = await graph.call("GET", "/internal/announcements/shown")
    if answer.status_code != 200:
        raise ApiError(503, "Service temporarily unavailable, try again")
    return [bytes(raw) for raw in _split(answer.content)]


class EventStreamResponse(Response):
    """Writes one SSE stream until the client leaves or falls behind; the connection is released in all cases."""

    media_type = "text/event-stream"

    def __init__(self, hub: StreamHub, connection: Connection, backlog: list[StreamEvent], heartbeat: float,
                 buffer_bytes: int) -> None:
        super().__init__()
        # Set by hand: Response would announce Content-Length: 0 for its empty body and end the stream.
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]
        self.hub = hub
        self.connection = connection
        self.backlog = backlog
        self.heartbeat = heartbeat
        self.buffer_bytes = buffer_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def chunk(body: bytes) -> None:
            await send({"type": "http.response.body", "body": body, "more_body": True})

        connection = self.connection
        # Direct writes frame their own HTTP chunks, so only for a GET: should the route ever answer HEAD (it
        # answers 405 now), that answer must carry no body.
        transport = server_transport(scope.get(SERVER_SEND_KEY) or send) if scope.get("method") == "GET" else None

        async def write() -> None:
            await chunk(b":)\n")
            connection.replayed.update(e.event_id for e in self.backlog if e.event_id)
            for event in self.backlog:
                await chunk(event.sse_frame())
            if transport is not None:
                # From here the hub writes this stream's events itself (streaming.py); this task only keeps
                # the connection alive between them.
                connection.write_directly(TransportSink(transport, self.buffer_bytes))
                while not connection.overflowed:
                    await asyncio.sleep(self.heartbeat)
                    connection.heartbeat()
                return
            while True:
                pending = await connection.next(self.heartbeat)
                if connection.overflowed:
                    return
                if pending is None:
                    await chunk(b":thump\n")
                    continue
                await chunk(pending.sse_frame())
                connection.observe_delivery(pending)

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        writer = asyncio.create_task(write())
        watcher = asyncio.create_task(until_disconnect())
        overflow = asyncio.create_task(connection.overflow.wait())
        try:
            await asyncio.wait({writer, watcher, overflow}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, watcher, overflow):
                task.cancel()
            await self.hub.close(connection)
        # A reader that overflowed may not be reading at all, so every last write is bounded: if it cannot
        # go out within a second the response is left unfinished and the server closes the connection.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                if connection.overflowed and not connection.ended:  # an ended session's stream just ends
                    final = StreamEvent(OVERFLOW_EVENT, None, OVERFLOW_DATA)
                    if connection.sink is not None:
                        # Past the bound by design: the reader gets it if it ever drains its buffer.
                        connection.sink.transport.write(final.sse_chunk())
                    else:
                        await chunk(final.sse_frame())
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        if connection.overflowed and transport is not None:
            # Cut off, or its session ended: the connection goes with the stream. Kept alive for another request
            # instead, a reader that stopped reading would hold it (and what waits in its buffers) for the whole
            # keep-alive timeout (kicau/serve.py). close() still sends whatever is buffered first.
            transport.close()


@router.get("/api/v1/streaming/health")
async def streaming_health() -> PlainTextResponse:
    return PlainTextResponse("OK")


@router.get("/api/v1/streaming/user")
async def stream_user(request: Request) -> Response:
    token, session = await _stream_token(request)
    assert token.account_id is not None
    raw_last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    last_event_id = parse_id(raw_last) if raw_last else None
    if raw_last and last_event_id is None:
        raise ApiError(400, "Last-Event-ID must be a status id")
    hub: StreamHub = request.app.state.hub
    # Registered before the backlog is read: anything fanned out meanwhile is queued, then de-duplicated.
    connection = await hub.open(token.account_id, "sse", session=session)
    backlog: list[StreamEvent] = []
    try:
        if last_event_id is not None:
            backlog = await resume_backlog(request.app.state.upstreams.timeline, connection, last_event_id)
    except BaseException:
        await hub.close(connection)
        raise
    settings = request.app.state.settings
    return EventStreamResponse(hub, connection, backlog, settings.heartbeat_seconds, settings.stream_buffer_bytes)


@router.get("/api/v1/streaming/user/notification")
async def stream_user_notifications(request: Request) -> Response:
    """Mastodon's ``user:notification`` stream: the user stream's ``notification`` events alone
    (kicau/notifications.py). Nothing to resume: ``Last-Event-ID`` is ignored, as notifications carry no id."""
    token, session = await _stream_token(request)
    assert token.account_id is not None
    hub: StreamHub = request.app.state.hub
    connection = await hub.open(token.account_id, "sse", accepts=STREAM_EVENTS[NOTIFICATION_STREAM], session=session)
    settings = request.app.state.settings
    return EventStreamResponse(hub, connection, [], settings.heartbeat_seconds, settings.stream_buffer_bytes)


@router.get("/api/v1/streaming/direct")
async def stream_direct(request: Request) -> Response:
    """Mastodon's ``direct`` stream: a ``conversation`` event each time a direct status joins one of the user's
    conversations (kicau/conversations.py), the conversation as the user reads it. Nothing to resume, as for
    notifications."""
    token, session = await _stream_token(request)
    assert token.account_id is not None
    hub: StreamHub = request.app.state.hub
    connection = await hub.open(token.account_id, "sse", accepts=STREAM_EVENTS[DIRECT_STREAM], session=session)
    settings = request.app.state.settings
    return EventStreamResponse(hub, connection, [], settings.heartbeat_seconds, settings.stream_buffer_bytes)


async def _public_stream(request: Request, tag: str | None = None) -> Response:
    """The public timeline's stream (with ``only_media``, its statuses with attachments), or (``tag``, in normal
    form) a hashtag's."""
    stream_token = await _stream_token(request)
    if tag is None:
        if _only_media(request):
            return await _listening_stream(request, stream_token, public_media=True)
        return await _listening_stream(request, stream_token, public=True)
    return await _listening_stream(request, stream_token, tags=frozenset({tag}))


def _only_media(request: Request) -> bool:
    """Mastodon's ``only_media`` of the public streams, read as its streaming server reads it: one of its true
    words, else false."""
    return (request.query_params.get("only_media") or "").lower() in ("1", "t", "true", "on")


async def _listening_stream(request: Request, stream_token: tuple[TokenInfo, str], *, public: bool = False,
                            tags: frozenset[str] = frozenset(), lists: frozenset[int] = frozenset(),
                            public_media: bool = False) -> Response:
    """An SSE stream of none of the account's own events: the public timeline's, hashtags' or lists' it listens
    to (``StreamHub.listen``), from the moment it listens."""
    token, session = stream_token
    assert token.account_id is not None
    hub: StreamHub = request.app.state.hub
    connection = await hub.open(token.account_id, "sse", accepts=frozenset(), session=session)
    try:
        await hub.listen(connection, public=public, tags=tags, lists=lists, public_media=public_media)
    except BaseException:
        await hub.close(connection)
        raise
    settings = request.app.state.settings
    return EventStreamResponse(hub, connection, [], settings.heartbeat_seconds, settings.stream_buffer_bytes)


@router.get("/api/v1/streaming/public")
async def stream_public(request: Request) -> Response:
    """Mastodon's ``public`` stream: every public status as it is posted, and its deletion
    (kicau/public_timeline.py); with a user's token, as every Kicau stream. No resume: its events carry no id.
    ``only_media=true``: ``public:media``, the statuses with attachments (and the deletions)."""
    return await _public_stream(request)


@router.get("/api/v1/streaming/public/local")
async def stream_public_local(request: Request) -> Response:
    """``public:local``: the same as ``public``, since every status here is local (``only_media`` too)."""
    return await _public_stream(request)


@router.get("/api/v1/streaming/public/remote")
async def stream_public_remote(request: Request) -> Response:
    """``public:remote`` (and, with ``only_media``, ``public:remote:media``): other servers' public statuses, of
    which Kicau has none (it does not federate): a valid stream of heartbeats alone."""
    return await _listening_stream(request, await _stream_token(request))


def hashtag_of(tag: Any) -> str:
    """The hashtag a ``hashtag`` stream names (``tag``, with or without ``#``, in any case), in normal form; 400
    when there is none or it is no hashtag's name."""
    if not isinstance(tag, str) or not tag:
        raise ApiError(400, "No tag for stream provided")
    name = tag.removeprefix("#")
    if not hashtags.valid(name):
        raise ApiError(400, f"Not a hashtag: {tag[:120]}")
    return hashtags.normal(name)


@router.get("/api/v1/streaming/hashtag")
async def stream_hashtag(request: Request) -> Response:
    """Mastodon's ``hashtag`` stream (``?tag=``): the public statuses carrying the hashtag as they are posted,
    and their deletions (kicau/tag_timeline.py). No resume, as for ``public``."""
    return await _public_stream(request, hashtag_of(request.query_params.get("tag")))


@router.get("/api/v1/streaming/hashtag/local")
async def stream_hashtag_local(request: Request) -> Response:
    """``hashtag:local``: the same as ``hashtag``, since every status here is local."""
    return await _public_stream(request, hashtag_of(request.query_params.get("tag")))


async def list_of(request: Request | WebSocket, token: TokenInfo, list_id: Any) -> int:
    """The list a ``list`` stream names (``list``): one of the user's own (kicau/lists.py), else 404; 400 when none
    is named."""
    if not isinstance(list_id, str | int) or isinstance(list_id, bool) or list_id == "":
        raise ApiError(400, "No list for stream provided")
    parsed = parse_id(list_id)
    if parsed is None:
        raise ApiError(404, "Record not found")
    upstreams: Upstreams = request.app.state.upstreams
    raise_for_error(await upstreams.graph.call("GET", f"/internal/lists/{parsed}", token=token))
    return parsed


@router.get("/api/v1/streaming/list")
async def stream_list(request: Request) -> Response:
    """Mastodon's ``list`` stream (``?list=``): the statuses reaching one of the user's lists' timelines as they are
    posted, and their deletions (kicau/lists.py). No resume, as for ``public``."""
    token, session = await _stream_token(request)
    list_id = await list_of(request, token, request.query_params.get("list"))
    return await _listening_stream(request, (token, session), lists=frozenset({list_id}))


def hot_stream(route: Callable[[Request], Awaitable[Response]]) -> StreamOpener:
    """An SSE route served as a hot stream (kicau/hot_routes.py): the same function, given the request the
    framework would have made, without the framework's layers held for the stream's life."""

    async def open_stream(scope: Scope, receive: Receive) -> Response:
        return await route(Request(scope, receive))

    return open_stream


# Every SSE stream's route, by path: answered as hot streams unless KICAU_GATEWAY_HOT_ROUTES is off (app.py).
SSE_ROUTES: dict[str, Callable[[Request], Awaitable[Response]]] = {
    "/api/v1/streaming/user": stream_user,
    "/api/v1/streaming/user/notification": stream_user_notifications,
    "/api/v1/streaming/direct": stream_direct,
    "/api/v1/streaming/public": stream_public,
    "/api/v1/streaming/public/local": stream_public_local,
    "/api/v1/streaming/public/remote": stream_public_remote,
    "/api/v1/streaming/hashtag": stream_hashtag,
    "/api/v1/streaming/hashtag/local": stream_hashtag_local,
    "/api/v1/streaming/list": stream_list,
}


@router.websocket("/api/v1/streaming")
async def stream_websocket(websocket: WebSocket) -> None:
    """Mastodon's WebSocket stream: ``subscribe`` and ``unsubscribe`` messages (or ``?stream=`` on connecting),
    with ``tag`` for the ``hashtag`` streams and ``list`` for the ``list`` stream, any number of subscriptions a
    socket (``Subscriptions``), all served by one hub connection.

    Beyond Mastodon, the ``user`` stream resumes as the SSE one does: subscribed with ``last_event_id`` (in the
    message, or on connecting as ``?stream=user&last_event_id=`` or the ``Last-Event-ID`` header), its frames
    begin with what was missed after that status (``home_after``), then go on live, with no gap and no duplicate.
    Every status update's frame carries its ``id``, the point to resume from."""
    try:
        token, session = await _stream_token(websocket)
    except ApiError as error:
        await websocket.close(code=_CLOSE_CODES.get(error.status_code, 4003), reason=error.message)
        return
    account_id = token.account_id
    assert account_id is not None
    protocol = websocket.headers.get("sec-websocket-protocol")
    await websocket.accept(subprotocol=protocol if protocol else None)
    hub: StreamHub = websocket.app.state.hub
    subscriptions = Subscriptions()
    connection: Connection | None = None  # open while anything is subscribed
    sender: asyncio.Task[None] | None = None
    handler = asyncio.current_task()
    cut_off = False

    async def send_events(conn: Connection) -> None:
        async def pump() -> None:
            while not conn.overflowed:
                event = await conn.next(hub_heartbeat)
                if event is None:
                    continue  # the WebSocket layer keeps the connection alive with its own pings
                for stream in subscriptions.carrying(event):
                    await websocket.send_text(event.ws_frame(stream))
                conn.observe_delivery(event)

        sink = websocket_sink(websocket.scope.get(SERVER_SEND_KEY), websocket.app.state.settings.stream_buffer_bytes,
                              subscriptions)
        if sink is not None:
            # As for SSE: from here the hub writes this socket's frames itself, each encoded once for every
            # connection (streaming.py); this task only waits for the reader to fall too far behind.
            conn.write_directly(sink)
            await conn.overflow.wait()
        else:
            # The pump may be stuck in a send to a reader that stopped reading; overflow ends it anyway.
            pumping, overflow = asyncio.create_task(pump()), asyncio.create_task(conn.overflow.wait())
            try:
                await asyncio.wait({pumping, overflow}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                pumping.cancel()
                overflow.cancel()
        if conn.overflowed:
            nonlocal cut_off
            await hub.close(conn)
            try:
                async with asyncio.timeout(1.0):
                    if conn.ended:  # its token revoked, its account disabled
                        await websocket.close(code=1008, reason="session ended")
                        return
                    await websocket.send_json({"stream": [key.partition("#")[0] for key in subscriptions.streams]
                                               or [USER_STREAM],
                                               "event": OVERFLOW_EVENT, "payload": "{}"})
                    await websocket.close(code=1008, reason="reader too slow")
            except Exception:
                # Not even a close frame goes out (sends wait for the reader): end the handler, and the server
                # closes the connection.
                cut_off = True
                if handler is not None:
                    handler.cancel()

    async def subscribe(stream: str, resume_after: int | None = None) -> None:
        nonlocal connection, sender
        if not subscriptions.add(stream):
            return
        if connection is None:
            # The token again, as at the start: a socket that held no stream when its session ended (revoked,
            # disabled) is not ended by it (``StreamHub``), and must not open one now.
            await _stream_token(websocket)
            # Held from its registration when it resumes: nothing live is written before the backlog.
            connection = await hub.open(account_id, "websocket", accepts=subscriptions.accepts(), session=session,
                                        hold=resume_after is not None)
            sender = asyncio.create_task(send_events(connection))
        else:
            if resume_after is not None:
                connection.hold()
            connection.accepts = subscriptions.accepts()
        await hub.listen(connection, public=subscriptions.public, tags=subscriptions.tags,
                         lists=subscriptions.lists, public_media=subscriptions.public_media)
        if resume_after is not None:
            await resume(connection, resume_after)

    async def resume(conn: Connection, after: int) -> None:
        """Send the held ``conn`` what its ``user`` stream missed after the status ``after``, then what arrived
        live meanwhile (``StreamHub.send_backlog``); if it cannot be read, ``kicau.refetch`` instead."""
        try:
            backlog = await resume_backlog(websocket.app.state.upstreams.timeline, conn, after)
        except Exception:
            log.warning("could not read what the stream of %s missed after %s", account_id, after, exc_info=True)
            backlog = [StreamEvent(REFETCH_EVENT, None, RESUME_FAILED)]
        hub.send_backlog(conn, backlog)

    async def unsubscribe(stream: str) -> None:
        nonlocal connection, sender
        if not subscriptions.remove(stream) or connection is None:
            return
        if subscriptions.streams:
            connection.accepts = subscriptions.accepts()
            await hub.listen(connection, public=subscriptions.public, tags=subscriptions.tags,
                             lists=subscriptions.lists, public_media=subscriptions.public_media)
            return
        # Nothing left: the stream lease goes back until the next subscription.
        if sender:
            sender.cancel()
        await hub.close(connection)
        connection = None

    async def key_of(stream: Any, tag: Any, list_id: Any) -> str:
        """The subscription a message (or the query on connecting) names; 400 for an unknown stream, a ``hashtag``
        stream without a hashtag or a ``list`` stream without a list, 404 for a list not the user's."""
        if not isinstance(stream, str) or stream not in STREAMS:
            raise ApiError(400, f"Unknown stream type: {str(stream)[:120]}")
        if stream == LIST_STREAM:
            return stream_key(stream, str(await list_of(websocket, token, list_id)))
        return stream_key(stream, hashtag_of(tag) if stream in HASHTAG_STREAMS else None)

    def resume_point(key: str, raw: Any) -> int | None:
        """The status id a ``user`` subscription resumes after, if it names one; 400 for anything else."""
        if raw is None or raw == "":
            return None
        if key != USER_STREAM:
            raise ApiError(400, "Only the user stream resumes from a last_event_id")
        after = parse_id(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else None
        if after is None:
            raise ApiError(400, "last_event_id must be a status id")
        return after

    hub_heartbeat = websocket.app.state.settings.heartbeat_seconds
    try:
        on_connect = websocket.query_params.get("stream")
        if on_connect in STREAMS:
            try:
                query = websocket.query_params
                key = await key_of(on_connect, query.get("tag"), query.get("list"))
                await subscribe(key, resume_point(key, query.get("last_event_id")
                                                  or websocket.headers.get("last-event-id")))
            except ApiError as error:
                if error.status_code not in (400, 404):
                    raise
                await websocket.send_json({"error": error.message, "status": error.status_code})
        while True:
            message = await _client_message(websocket)
            if message is _BINARY:
                # As Mastodon's streaming server: the protocol is JSON text; a binary message ends the socket.
                await websocket.close(code=1003, reason="binary messages are not supported")
                return
            if message is _NOT_JSON:
                await websocket.send_json({"error": "Message is not JSON", "status": 400})
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind not in ("subscribe", "unsubscribe"):
                await websocket.send_json({"error": "Unknown message type", "status": 400})
                continue
            try:
                key = await key_of(message.get("stream"), message.get("tag"), message.get("list"))
                after = resume_point(key, message.get("last_event_id")) if kind == "subscribe" else None
            except ApiError as error:
                await websocket.send_json({"error": error.message, "status": error.status_code})
                continue
            if kind == "subscribe":
                await subscribe(key, after)
            else:
                await unsubscribe(key)
    except (WebSocketDisconnect, ValueError, RuntimeError):
        pass
    except asyncio.CancelledError:
        if not cut_off:
            raise
    except ApiError as error:
        with contextlib.suppress(Exception):
            await websocket.send_json({"error": error.message, "status": error.status_code})
            await websocket.close(code=_CLOSE_CODES.get(error.status_code, 1011))
    finally:
        if sender:
            sender.cancel()
        if connection is not None:
            await hub.close(connection)
