"""What a user stream is sent once its gateway's channel is back after a loss (``StreamHub._fill_gap``): the
statuses its home timeline got after the last one it was sent, then ``kicau.refetch``, then the live events that
arrived meanwhile, each status once and in that order. The home timeline's read is a function of the test's own,
so that live events can be made to arrive while it is in flight; the hub's Redis is never used here. The same end
to end, with the stack's timeline and a real loss of the channel:
``tests/gateway/test_streaming.py::test_a_user_stream_is_sent_the_statuses_it_missed_while_the_gateways_channel_was_down``."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from redis.asyncio import Redis

from kicau.filters import NO_FILTERS, Filter, Keyword, ReaderFilters
from kicau.stream_events import StreamDelivery
from services.gateway.streaming import (
    CHANNEL_GAP,
    GAP_FILLED,
    REFETCH_EVENT,
    STREAM_EVENTS,
    Connection,
    MissedStatus,
    StreamEvent,
    StreamHub,
    TransportSink,
    public_keys,
)
from tests.gateway.test_stream_write_rounds import Transport


class Timeline:
    """The home timeline's read after a status id, answered when the test says so; the notifications' read,
    answered at once with ``notifications`` (all of them); and the conversations' read likewise (or failing, with
    ``conversations_fail``)."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []
        self.answer: asyncio.Future[tuple[list[StreamEvent], bool]] | None = None
        self.notifications: list[StreamEvent] = []
        self.asked_notifications: list[tuple[int, int]] = []
        self.conversations: list[StreamEvent] = []
        self.asked_conversations: list[tuple[int, int]] = []
        self.conversations_fail = False

    async def conversations_after(self, account_id: int, after: int) -> tuple[list[StreamEvent], bool]:
        self.asked_conversations.append((account_id, after))
        if self.conversations_fail:
            raise ConnectionError("the timeline service is away")
        return [c for c in self.conversations if c.conversation_status > after], True

    async def notifications_after(self, account_id: int, after: int) -> tuple[list[StreamEvent], bool]:
        self.asked_notifications.append((account_id, after))
        return [n for n in self.notifications if n.notification_id > after], True

    async def home_after(self, account_id: int, after: int) -> tuple[list[StreamEvent], bool]:
        self.asked.append((account_id, after))
        self.answer = asyncio.get_running_loop().create_future()
        return await self.answer


def _hub() -> tuple[Timeline, StreamHub]:
    """A hub whose home timeline reads are the test's (its Redis is never connected)."""
    timeline = Timeline()
    return timeline, StreamHub(Redis(), queue_size=8, per_account=4, home_after=timeline.home_after,
                               notifications_after=timeline.notifications_after,
                               conversations_after=timeline.conversations_after)


def _update(status_id: int) -> StreamEvent:
    return StreamEvent("update", str(status_id), f'{{"id":"{status_id}"}}')


def _notification(notification_id: int) -> StreamEvent:
    return StreamEvent("notification", None, f'{{"id":"{notification_id}"}}', notification_id=notification_id)


def _conversation_data(last_status: int) -> str:
    """A Conversation entity (kicau/conversations.py), its id made from its last status's for the test."""
    return json.dumps({"id": str(last_status + 1000), "unread": True, "accounts": [],
                       "last_status": {"id": str(last_status)}})


def _conversation(last_status: int) -> StreamEvent:
    """A conversation as the conversations' read gives it (routes/streaming.py, ``conversations_after``)."""
    return StreamEvent("conversation", None, _conversation_data(last_status), conversation_status=last_status)


def _delivery(status_id: int, recipients: list[int],
              event: Literal["update", "notification", "delete", "conversation"] = "update") -> StreamDelivery:
    # A deletion's payload is the bare id, as the fanout sends it.
    payload = (str(status_id) if event == "delete" else _conversation_data(status_id) if event == "conversation"
               else f'{{"id":"{status_id}"}}')
    return StreamDelivery(event=event, status_id=status_id, accepted_at=0.0, payload=payload, recipients=recipients)


def _open(hub: StreamHub, account_id: int, accepts: frozenset[str] = STREAM_EVENTS["user"],
          resume_from: int = 1) -> tuple[Connection, Transport]:
    connection = Connection(account_id=account_id, transport="sse", limit=8, accepts=accepts, resume_from=resume_from)
    transport = Transport()
    connection.write_directly(TransportSink(transport, limit_bytes=1 << 20))  # type: ignore[arg-type]
    hub._connections[account_id].add(connection)  # as StreamHub.open registers it, without Redis
    return connection, transport


def _sent(transport: Transport) -> list[str]:
    """Each SSE frame written, as ``<event>:<id>`` (a notification's: its own id; a conversation's: its last
    status's; no id: ``<event>``)."""
    names: list[str] = []
    for frame in b"".join(transport.writes).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if fields.get("event") == "notification":
            names.append(f"notification:{json.loads(fields['data'])['id']}")
        elif fields.get("event") == "conversation":
            names.append(f"conversation:{json.loads(fields['data'])['last_status']['id']}")
        elif "event" in fields:
            names.append(f"{fields['event']}:{fields['id']}" if "id" in fields else fields["event"])
    return names


async def _turns(count: int = 8) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_missed_statuses_go_first_then_the_notice_then_what_arrived_meanwhile_each_once() -> None:
    timeline, hub = _hub()
    (_, behind), (ahead_connection, ahead) = _open(hub, 7), _open(hub, 7)
    _, notifications = _open(hub, 7, accepts=STREAM_EVENTS["user:notification"])
    hub.dispatch(_delivery(10, [7]))
    await _turns()
    ahead_connection.push(_update(12))  # this one was also sent 12 before the loss
    ahead_connection.write_held()
    hub._channel_restored()
    await _turns()
    assert timeline.asked == [(7, 10)], "one read for the account, from the oldest point of its streams"
    hub.dispatch(_delivery(13, [7]))  # live while the read is in flight: held back
    hub.dispatch(_delivery(14, [7]))
    await _turns()
    assert _sent(behind) == ["update:10"]
    assert timeline.answer is not None
    timeline.answer.set_result(([_update(11), _update(12), _update(13)], True))
    await _turns()
    assert _sent(behind) == ["update:10", "update:11", "update:12", REFETCH_EVENT, "update:13", "update:14"]
    assert _sent(ahead) == ["update:10", "update:12", REFETCH_EVENT, "update:13", "update:14"]
    assert GAP_FILLED.encode() in b"".join(behind.writes)
    hub.dispatch(_delivery(12, [7]))  # a status read above, arriving live after all: not sent again
    hub.dispatch(_delivery(15, [7]))
    await _turns()
    assert _sent(behind)[-1:] == ["update:15"] and _sent(behind).count("update:12") == 1
    assert _sent(notifications) == [], "a stream of notifications alone has no resume point and is not told"


async def test_a_read_that_fails_or_falls_short_says_events_may_be_missing_and_loses_no_live_event() -> None:
    timeline, hub = _hub()
    _, stream = _open(hub, 7, resume_from=5)
    hub._channel_restored()
    await _turns()
    assert timeline.asked == [(7, 5)], "nothing sent yet: from the stream's opening"
    hub.dispatch(_delivery(20, [7]))
    await _turns()
    assert timeline.answer is not None
    timeline.answer.set_result(([_update(19)], False))  # the timeline does not reach back to the stream's point
    await _turns()
    assert _sent(stream) == [REFETCH_EVENT, "update:20"]
    assert CHANNEL_GAP.encode() in b"".join(stream.writes)

    async def unavailable(account_id: int, after: int) -> tuple[list[StreamEvent], bool]:
        raise OSError("the timeline service is away")

    hub.home_after = unavailable
    hub._channel_restored()
    await _turns(6)
    assert _sent(stream) == [REFETCH_EVENT, "update:20", REFETCH_EVENT]


async def test_a_second_loss_during_the_read_reads_again_before_anything_is_sent() -> None:
    timeline, hub = _hub()
    _, stream = _open(hub, 7, resume_from=5)
    hub._channel_restored()
    await _turns()
    first = timeline.answer
    hub._channel_restored()  # lost again while the first read is in flight
    await _turns()
    assert first is not None and len(timeline.asked) == 1
    first.set_result(([_update(6)], True))
    await _turns()
    assert _sent(stream) == [] and timeline.asked == [(7, 5), (7, 5)], "read again, from the same point"
    assert timeline.answer is not None and timeline.answer is not first
    timeline.answer.set_result(([_update(6), _update(8)], True))
    await _turns()
    assert _sent(stream) == ["update:6", "update:8", REFETCH_EVENT]


async def test_a_reader_that_falls_behind_while_held_is_cut_off() -> None:
    timeline, hub = _hub()
    connection, stream = _open(hub, 7)
    hub._channel_restored()
    await _turns()
    for status_id in range(100, 109):  # one more than the stream's bound of 8
        hub.dispatch(_delivery(status_id, [7]))
    await _turns()
    assert connection.overflowed
    assert timeline.answer is not None
    timeline.answer.set_result(([_update(99)], True))
    await _turns()
    assert _sent(stream) == []


async def test_missed_notifications_go_to_every_stream_that_takes_them_in_order_with_the_statuses() -> None:
    timeline, hub = _hub()
    _, user = _open(hub, 7, resume_from=5)
    _, notifications = _open(hub, 7, accepts=STREAM_EVENTS["user:notification"], resume_from=5)
    hub.dispatch(_delivery(8, [7], "notification"))  # before the loss: sent, and the notifications' point
    await _turns()
    timeline.notifications = [_notification(8), _notification(30), _notification(40)]
    hub._channel_restored()
    await _turns()
    assert timeline.asked == [(7, 5)] and timeline.asked_notifications == [(7, 8)]
    hub.dispatch(_delivery(40, [7], "notification"))  # read, and arriving live meanwhile: sent once
    await _turns()
    assert timeline.answer is not None
    timeline.answer.set_result(([_update(30), _update(35)], True))  # 30 mentions the account (notification 30)
    await _turns()
    assert _sent(user) == ["notification:8", "update:30", "notification:30", "update:35", REFETCH_EVENT,
                           "notification:40"]
    assert _sent(notifications) == ["notification:8", "notification:30", "notification:40"], "no notice here"
    assert GAP_FILLED.encode() in b"".join(user.writes)
    hub.dispatch(_delivery(30, [7], "notification"))  # read above, arriving live after all: not sent again
    await _turns()
    assert _sent(user).count("notification:30") == _sent(notifications).count("notification:30") == 1


async def test_the_deletion_of_a_status_sent_again_still_goes_out() -> None:
    """A status sent from the read is remembered so that its live copy is not sent twice; its deletion (about the
    same status) must not be taken for that copy."""
    timeline, hub = _hub()
    _, stream = _open(hub, 7, resume_from=5)
    hub._channel_restored()
    await _turns()
    assert timeline.answer is not None
    timeline.answer.set_result(([_update(6)], True))
    await _turns()
    hub.dispatch(_delivery(6, [7], "delete"))
    await _turns()
    assert _sent(stream) == ["update:6", REFETCH_EVENT, "delete"]


async def test_edits_and_deletions_missed_go_after_the_statuses_and_a_deletion_that_arrived_live_goes_once() -> None:
    """The home read also carries the statuses edited and deleted since the oldest point (kicau/retractions.py):
    each stream gets them after the statuses and notifications it missed, an edit as its live ``status.update``
    (no id), a deletion as its live ``delete`` (no id either), then the notice; a deletion that also arrived
    live while the read was in flight goes out once, live."""
    timeline, hub = _hub()
    (_, user) = _open(hub, 7, resume_from=20)
    timeline.notifications = [_notification(25)]
    hub._channel_restored()
    await _turns()
    hub.dispatch(_delivery(5, [7], event="delete"))  # live during the read, and also in what the read finds
    await _turns()
    assert timeline.answer is not None
    edited = StreamEvent("status.update", None, '{"id":"3","content":"<p>now</p>"}')
    timeline.answer.set_result(([_update(21), edited, StreamEvent("delete", None, "5"),
                                 StreamEvent("delete", None, "4")], True))
    await _turns()
    assert _sent(user) == ["update:21", "notification:25", "status.update", "delete", REFETCH_EVENT, "delete"]
    deletions = [frame for frame in b"".join(user.writes).decode().split("\n\n") if "event: delete" in frame]
    assert [frame.splitlines()[-1] for frame in deletions] == ["data: 4", "data: 5"]


async def test_a_read_whose_edits_and_deletions_may_not_be_all_says_events_may_be_missing() -> None:
    """The home read ends with ``kicau.refetch`` when the log of edits and deletions does not reach back to the
    point (routes/streaming.py, ``home_after``): what was read still goes out, then the notice that events may be
    missing, never that notice itself."""
    timeline, hub = _hub()
    (_, user) = _open(hub, 7, resume_from=20)
    hub._channel_restored()
    await _turns()
    assert timeline.answer is not None
    timeline.answer.set_result(([_update(21), StreamEvent(REFETCH_EVENT, None, '{"reason":"not kept"}')], True))
    await _turns()
    assert _sent(user) == ["update:21", REFETCH_EVENT]
    assert CHANNEL_GAP.encode() in b"".join(user.writes) and b"not kept" not in b"".join(user.writes)


async def test_a_resumed_websockets_backlog_goes_before_what_arrived_live_while_it_was_read_each_status_once() -> None:
    """``StreamHub.send_backlog`` (a WebSocket's resume, routes/streaming.py): the stream is held from before the
    backlog is read; then the backlog goes out, then the live events held meanwhile; a status both read and live
    goes out once (live, in its place), and one read that still arrives live later is not sent again."""
    _, hub = _hub()
    connection, stream = _open(hub, 7)
    connection.hold()
    hub.dispatch(_delivery(13, [7]))  # live while the backlog is read
    hub.dispatch(_delivery(14, [7]))
    await _turns()
    assert _sent(stream) == []
    hub.send_backlog(connection, [_update(11), _update(12), _update(13), StreamEvent("delete", None, "9")])
    await _turns()
    assert _sent(stream) == ["update:11", "update:12", "delete", "update:13", "update:14"]
    hub.dispatch(_delivery(12, [7]))  # read, and arriving live after all
    hub.dispatch(_delivery(15, [7]))
    await _turns()
    assert _sent(stream)[5:] == ["update:15"]
    assert connection.resume_point() == 15


def _filters(filter_id: int, word: str) -> ReaderFilters:
    keyword = Keyword(id=filter_id, filter_id=filter_id, keyword=word, whole_word=True)
    return ReaderFilters([Filter(id=filter_id, title=word, contexts=("home",), action="hide", expires_at=None,
                                 keywords=(keyword,))])


async def test_filters_changed_while_the_channel_was_down_are_taken_and_the_user_streams_told() -> None:
    """A change of filters is announced on the channel: one made while it was down never arrives. Once it is back
    the hub reads every account's filters again; where they differ from the ones it held (changed, or all
    deleted), its streams filter with the new ones and its user streams get ``filters_changed``, as they would
    have live; where they are the same, nothing is sent."""
    timeline = Timeline()
    now = {7: _filters(1, "new"), 8: _filters(2, "same"), 9: NO_FILTERS}

    async def nothing_missed(account_id: int, after: int) -> tuple[list[StreamEvent], bool]:
        return [], True

    async def filters_of(account_id: int) -> ReaderFilters:
        return now[account_id]

    hub = StreamHub(Redis(), queue_size=8, per_account=4, home_after=nothing_missed,
                    notifications_after=timeline.notifications_after, filters_of=filters_of)
    hub._filters.update({7: _filters(1, "old"), 8: _filters(2, "same"), 9: _filters(3, "gone")})
    (_, changed), (_, same), (_, deleted) = _open(hub, 7), _open(hub, 8), _open(hub, 9)
    hub._channel_restored()
    await _turns(20)
    assert _sent(changed) == [REFETCH_EVENT, "filters_changed"]
    assert _sent(same) == [REFETCH_EVENT]
    assert _sent(deleted) == [REFETCH_EVENT, "filters_changed"]
    assert hub._filters[7] is now[7] and 9 not in hub._filters
    assert hub._filters[8].filters == now[8].filters


async def test_missed_conversations_go_to_direct_streams_oldest_first_each_once_without_a_notice() -> None:
    """A ``direct`` stream is sent again the conversations whose last status came after the last one it was sent
    (each as it is now), oldest first, then what arrived live meanwhile, each once; it takes no ``kicau.refetch``
    (Mastodon's clients know none on it). A user stream is not sent them."""
    timeline, hub = _hub()
    _, direct = _open(hub, 7, accepts=STREAM_EVENTS["direct"], resume_from=5)
    _, user = _open(hub, 7, resume_from=5)
    hub.dispatch(_delivery(8, [7], "conversation"))  # before the loss: sent, and the conversations' point
    await _turns()
    timeline.conversations = [_conversation(8), _conversation(30), _conversation(40)]
    hub._channel_restored()
    await _turns()
    assert timeline.asked_conversations == [(7, 8)], "from the last conversation the direct stream was sent"
    hub.dispatch(_delivery(40, [7], "conversation"))  # read, and arriving live meanwhile: sent once
    hub.dispatch(_delivery(50, [7], "conversation"))  # live meanwhile, not read: after what was
    await _turns()
    assert _sent(direct) == ["conversation:8"], "held back while the account's reads are in flight"
    assert timeline.answer is not None
    timeline.answer.set_result(([], True))  # the user stream's home timeline: nothing missed
    await _turns()
    assert _sent(direct) == ["conversation:8", "conversation:30", "conversation:40", "conversation:50"]
    assert _sent(user) == [REFETCH_EVENT] and GAP_FILLED.encode() in b"".join(user.writes)
    hub.dispatch(_delivery(30, [7], "conversation"))  # read above, arriving live after all: not sent again
    hub.dispatch(_delivery(60, [7], "conversation"))
    await _turns()
    assert _sent(direct)[-1:] == ["conversation:60"] and _sent(direct).count("conversation:30") == 1


async def test_a_streams_missed_status_its_notification_and_its_conversation_go_in_that_order() -> None:
    """One connection that takes the user stream's events and the direct stream's (a WebSocket subscribed to both)
    gets a direct mention it missed as it would have live: the status, its notification, its conversation; then
    the notice."""
    timeline, hub = _hub()
    connection, stream = _open(hub, 7, accepts=STREAM_EVENTS["user"] | STREAM_EVENTS["direct"], resume_from=5)
    timeline.notifications = [_notification(30)]
    timeline.conversations = [_conversation(30)]
    hub._channel_restored()
    await _turns()
    assert timeline.answer is not None
    timeline.answer.set_result(([_update(30)], True))
    await _turns()
    assert _sent(stream) == ["update:30", "notification:30", "conversation:30", REFETCH_EVENT]
    assert connection.conversation_point() == 30


async def test_a_failed_conversations_read_loses_no_live_event_and_says_events_may_be_missing() -> None:
    timeline, hub = _hub()
    timeline.conversations_fail = True
    _, direct = _open(hub, 7, accepts=STREAM_EVENTS["direct"], resume_from=5)
    _, both = _open(hub, 7, accepts=STREAM_EVENTS["user"] | STREAM_EVENTS["direct"], resume_from=5)
    hub._channel_restored()
    await _turns()
    hub.dispatch(_delivery(40, [7], "conversation"))  # live while the reads are in flight
    await _turns()
    assert timeline.answer is not None
    timeline.answer.set_result(([], True))
    await _turns()
    assert _sent(direct) == ["conversation:40"]
    assert _sent(both) == [REFETCH_EVENT, "conversation:40"]
    assert CHANNEL_GAP.encode() in b"".join(both.writes)


def _announcement(announcement_id: int, updated_at: str = "2026-12-06T10:00:00.000Z") -> bytes:
    return json.dumps({"id": str(announcement_id), "updated_at": updated_at, "read": False,
                       "reactions": []}).encode()


def _told(transport: Transport) -> list[tuple[str, str]]:
    """Each announcement event written, as (event, its announcement's id)."""
    found: list[tuple[str, str]] = []
    for frame in b"".join(transport.writes).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if fields.get("event", "").startswith("announcement"):
            data = fields["data"]
            found.append((fields["event"], data if fields["event"] == "announcement.delete"
                          else str(json.loads(data).get("announcement_id") or json.loads(data)["id"])))
    return found


async def test_user_streams_are_told_the_announcements_changed_while_the_channel_was_down() -> None:
    """The hub learns what is shown, keeps it up to date with the live changes, and once its channel is back tells
    every user stream what changed meanwhile: an announcement made, one taken down; not one it was told live."""
    timeline, _ = _hub()
    shown = [_announcement(1), _announcement(2)]

    async def announcements_shown() -> list[bytes]:
        return list(shown)

    hub = StreamHub(Redis(), queue_size=8, per_account=4, home_after=timeline.home_after,
                    notifications_after=timeline.notifications_after, announcements_shown=announcements_shown)
    assert await hub._announcements_missed(), "learnt"
    _, stream = _open(hub, 7)
    shown.append(_announcement(3))
    hub._announcement_changed(json.dumps({"event": "announcement", "payload": _announcement(3).decode()}).encode())
    await _turns()
    assert _told(stream) == [("announcement", "3")], "told live"
    shown[:] = [_announcement(2), _announcement(3), _announcement(4)]  # 1 taken down, 4 made, while away
    hub._channel_restored()
    await _turns()
    assert timeline.answer is not None
    timeline.answer.set_result(([], True))
    await _turns()
    assert _told(stream) == [("announcement", "3"), ("announcement.delete", "1"), ("announcement", "4")]
    hub._channel_restored()  # lost again, nothing changed: nothing told
    await _turns()
    timeline.answer.set_result(([], True))
    await _turns()
    assert len(_told(stream)) == 3


async def test_announcements_unread_at_the_loss_are_told_once_a_read_succeeds() -> None:
    timeline, _ = _hub()
    shown = [_announcement(1)]
    failing = [False]

    async def announcements_shown() -> list[bytes]:
        if failing[0]:
            raise ConnectionError("the graph service is away")
        return list(shown)

    hub = StreamHub(Redis(), queue_size=8, per_account=4, home_after=timeline.home_after,
                    notifications_after=timeline.notifications_after, announcements_shown=announcements_shown)
    assert await hub._announcements_missed()
    _, stream = _open(hub, 7)
    shown.append(_announcement(2))
    failing[0] = True
    assert not await hub._announcements_missed(), "a failed read"
    failing[0] = False
    assert await hub._announcements_missed()
    await _turns()
    assert _told(stream) == [("announcement", "2")], "against what was told before the failed read"


class Timelines:
    """The reads of the timelines streams listen to besides their accounts' own (``StreamHub.timeline_after``):
    each answered at once from ``statuses`` (key -> the statuses it holds, oldest first), every read noted."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int, int]] = []
        self.statuses: dict[str, list[MissedStatus]] = {}

    async def timeline_after(self, key: str, account_id: int, after: int) -> tuple[list[MissedStatus], bool]:
        self.asked.append((key, account_id, after))
        return [s for s in self.statuses.get(key, []) if s.event.name != "update" or s.status_id > after], True


def _listening_hub() -> tuple[Timeline, Timelines, StreamHub]:
    timeline, timelines = Timeline(), Timelines()
    return timeline, timelines, StreamHub(
        Redis(), queue_size=8, per_account=4, home_after=timeline.home_after,
        notifications_after=timeline.notifications_after, conversations_after=timeline.conversations_after,
        timeline_after=timelines.timeline_after)


def _public_status(status_id: int, author_id: int = 50, tags: tuple[str, ...] = (), list_id: int = 0,
                   text: str = "") -> MissedStatus:
    data = json.dumps({"id": str(status_id), "account": {"id": str(author_id)}, "content": text})
    return MissedStatus(StreamEvent("update", None, data, public=not list_id, tags=tags, list_id=list_id,
                                    status_id=status_id), author_id, status_id)


def _public_edit(status_id: int, author_id: int = 50, text: str = "edited") -> MissedStatus:
    data = json.dumps({"id": str(status_id), "account": {"id": str(author_id)}, "content": text})
    return MissedStatus(StreamEvent("status.update", None, data, public=True), author_id, status_id)


def _public_deletion(status_id: int, author_id: int = 50) -> MissedStatus:
    return MissedStatus(StreamEvent("delete", None, str(status_id), public=True, media=True), author_id, status_id)


def _public_delivery(status_id: int, author_id: int = 50, tags: tuple[str, ...] = ()) -> StreamDelivery:
    return StreamDelivery(event="update", status_id=status_id, accepted_at=0.0, recipients=[], public=True,
                          author_id=author_id, tags=tags,
                          payload=json.dumps({"id": str(status_id), "account": {"id": str(author_id)}}))


def _listen(hub: StreamHub, account_id: int, since: int, *, public: bool = False, tags: frozenset[str] = frozenset(),
            lists: frozenset[int] = frozenset()) -> tuple[Connection, Transport]:
    """A stream of the account's listening to these timelines since the status id ``since`` (as
    ``StreamHub.listen`` registers it, without Redis or the graph service)."""
    connection, transport = _open(hub, account_id, accepts=frozenset(), resume_from=since)
    if public:
        hub._public.add(connection)
    for tag in tags:
        hub._tagged.setdefault(tag, set()).add(connection)
    hub._tags_of[connection] = tags
    for list_id in lists:
        hub._listing.setdefault(list_id, set()).add(connection)
    connection.listening_since.update(
        dict.fromkeys(public_keys(public=public, public_media=False, tags=tags, lists=lists), since))
    return connection, transport


def _statuses_sent(transport: Transport) -> list[str]:
    """Each SSE frame written, as ``<event>:<the id in its data>`` (the public streams' updates carry no SSE id)."""
    sent = []
    for frame in b"".join(transport.writes).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if fields.get("event") == "delete":  # the bare id
            sent.append(f"delete:{fields['data']}")
        elif "event" in fields:
            sent.append(f"{fields['event']}:{json.loads(fields['data'])['id']}")
    return sent


async def test_public_streams_are_sent_the_statuses_they_missed_from_one_read_for_the_whole_hub() -> None:
    """Each stream after its own point (the last status it was sent, or its beginning to listen), oldest first,
    not of an author its account blocks or mutes, and what arrived live meanwhile after them."""
    _, timelines, hub = _listening_hub()
    _, early = _listen(hub, 7, since=5, public=True)
    _, late = _listen(hub, 8, since=5, public=True)
    hub._unwanted[8] = frozenset({60})  # account 8 blocks or mutes account 60
    hub.dispatch(_public_delivery(10))
    await _turns()
    late_connection = next(iter(hub._connections[8]))
    late_connection.push(StreamEvent("update", None, json.dumps({"id": "12"}), public=True, status_id=12))
    late_connection.write_held()  # account 8's stream also got 12 before the loss
    timelines.statuses["public"] = [_public_status(10), _public_status(11, author_id=60), _public_status(12),
                                    _public_status(13)]
    hub._channel_restored()
    await _turns()
    assert timelines.asked == [("public", 7, 10)], "one read, from the oldest point among the listeners"
    assert _statuses_sent(early) == ["update:10", "update:11", "update:12", "update:13"]
    assert _statuses_sent(late) == ["update:10", "update:12", "update:13"], "not 11, of an author it hides"
    assert not any(REFETCH_EVENT in name for name in _statuses_sent(early)), "no notice on a public stream"
    hub.dispatch(_public_delivery(13))  # read, then arriving live after all: not sent again
    hub.dispatch(_public_delivery(14))
    await _turns()
    assert _statuses_sent(early)[-2:] == ["update:13", "update:14"] and _statuses_sent(early).count("update:13") == 1


async def test_a_status_of_two_timelines_listened_to_goes_once_and_live_ones_wait_for_the_read() -> None:
    _, timelines, hub = _listening_hub()
    _, stream = _listen(hub, 7, since=5, public=True, tags=frozenset({"kicau"}))
    answer: asyncio.Future[tuple[list[MissedStatus], bool]] = asyncio.get_running_loop().create_future()
    reads = timelines.timeline_after

    async def slow_public(key: str, account_id: int, after: int) -> tuple[list[MissedStatus], bool]:
        if key == "public":
            timelines.asked.append((key, account_id, after))
            return await answer
        return await reads(key, account_id, after)

    hub.timeline_after = slow_public
    timelines.statuses["hashtag#kicau"] = [_public_status(8, tags=("kicau",))]
    hub._channel_restored()
    await _turns()
    assert sorted(timelines.asked) == [("hashtag#kicau", 7, 5), ("public", 7, 5)]
    hub.dispatch(_public_delivery(20))  # live while the public read is in flight: held back
    await _turns()
    assert _statuses_sent(stream) == []
    answer.set_result(([_public_status(6), _public_status(8, tags=("kicau",)), _public_status(20)], True))
    await _turns()
    assert _statuses_sent(stream) == ["update:6", "update:8", "update:20"]


async def test_a_lists_stream_is_sent_what_it_missed_read_as_the_lists_owner() -> None:
    _, timelines, hub = _listening_hub()
    _, stream = _listen(hub, 7, since=5, lists=frozenset({3}))
    timelines.statuses["list#3"] = [
        _public_status(6, author_id=60, list_id=3),
        MissedStatus(StreamEvent("delete", None, "2", list_id=3), 60, 2)]
    hub._unwanted[7] = frozenset({60})  # a list's statuses are its owner's choice: not hidden as public ones are
    hub._channel_restored()
    await _turns()
    assert timelines.asked == [("list#3", 7, 5)]
    assert _statuses_sent(stream) == ["update:6", "delete:2"]
    assert b'event: update\n' in b"".join(stream.writes)


async def test_a_public_stream_missed_status_a_filter_hides_or_warns_of_is_shown_as_live() -> None:
    _, timelines, hub = _listening_hub()
    _, stream = _listen(hub, 7, since=5, public=True)
    hub._filters[7] = ReaderFilters([
        Filter(id=1, title="spoilers", contexts=("public",), action="hide", expires_at=None,
               keywords=(Keyword(id=1, filter_id=1, keyword="finale", whole_word=True),)),
        Filter(id=2, title="cats", contexts=("public",), action="warn", expires_at=None,
               keywords=(Keyword(id=2, filter_id=2, keyword="cat", whole_word=True),))])
    timelines.statuses["public"] = [_public_status(6, text="the finale"), _public_status(7, text="a cat"),
                                    _public_status(8, text="hello")]
    hub._channel_restored()
    await _turns()
    assert _statuses_sent(stream) == ["update:7", "update:8"]
    assert b'"filtered"' in b"".join(stream.writes)


async def test_a_failed_timeline_read_loses_no_live_event() -> None:
    _, _, hub = _listening_hub()
    _, stream = _listen(hub, 7, since=5, public=True)

    async def unavailable(key: str, account_id: int, after: int) -> tuple[list[MissedStatus], bool]:
        raise OSError("the timeline service is away")

    hub.timeline_after = unavailable
    hub._channel_restored()
    hub.dispatch(_public_delivery(9))
    await _turns()
    assert _statuses_sent(stream) == ["update:9"]


async def test_a_public_stream_is_sent_the_edits_and_deletions_it_missed_after_the_statuses_each_once() -> None:
    """Whatever the stream's point (an edit or a deletion may be of an older status), but not of an author it
    hides, a deletion that arrived live meanwhile not again, and an edit as its filters show it."""
    _, _, hub = _listening_hub()
    _, stream = _listen(hub, 7, since=5, public=True, tags=frozenset({"kicau"}))
    hub._unwanted[7] = frozenset({60})
    hub._filters[7] = ReaderFilters([Filter(id=1, title="spoilers", contexts=("public",), action="hide",
                                            expires_at=None,
                                            keywords=(Keyword(id=1, filter_id=1, keyword="finale", whole_word=True),))])
    answer: asyncio.Future[tuple[list[MissedStatus], bool]] = asyncio.get_running_loop().create_future()

    async def slow(key: str, account_id: int, after: int) -> tuple[list[MissedStatus], bool]:
        return await answer if key == "public" else ([_public_edit(2), _public_deletion(3)], True)

    hub.timeline_after = slow
    hub._channel_restored()
    await _turns()
    hub.dispatch(StreamDelivery(event="delete", status_id=4, accepted_at=0.0, payload="4", recipients=[],
                                public=True, author_id=50))  # live while the read is in flight
    await _turns()
    answer.set_result(([_public_status(6), _public_edit(2), _public_edit(1, text="the finale"),
                        _public_edit(9, author_id=60), _public_deletion(3), _public_deletion(4)], True))
    await _turns()
    assert _statuses_sent(stream) == ["update:6", "status.update:2", "delete:3", "delete:4"], \
        "each once (2 and 3 were read for the hashtag too), not 1 (filtered) nor 9 (hidden), 4 as it arrived live"


async def test_each_timeline_listened_to_is_missed_after_the_last_status_sent_of_it() -> None:
    """A stream of two hashtags was sent 20 of one before the loss; 15 of the other, fanned out later than 20, was
    not sent: the other hashtag is read after the stream's beginning, not after 20, and 15 goes out."""
    _, timelines, hub = _listening_hub()
    _, stream = _listen(hub, 7, since=5, tags=frozenset({"cats", "dogs"}))
    hub.dispatch(_public_delivery(20, tags=("cats",)))
    await _turns()
    timelines.statuses["hashtag#cats"] = [_public_status(20, tags=("cats",)), _public_status(22, tags=("cats",))]
    timelines.statuses["hashtag#dogs"] = [_public_status(15, tags=("dogs",))]
    hub._channel_restored()
    await _turns()
    assert sorted(timelines.asked) == [("hashtag#cats", 7, 20), ("hashtag#dogs", 7, 5)]
    assert _statuses_sent(stream) == ["update:20", "update:15", "update:22"]


async def test_a_timeline_no_longer_listened_to_forgets_its_point() -> None:
    _, _, hub = _listening_hub()
    connection, _ = _listen(hub, 7, since=5, tags=frozenset({"cats"}))
    hub.dispatch(_public_delivery(20, tags=("cats",)))
    await _turns()
    assert connection.public_point("hashtag#cats") == 20
    connection.stop_listening("hashtag#cats")
    assert "hashtag#cats" not in connection.listening_since
    assert connection.public_point("hashtag#cats") == 5, "back to the stream's opening"
