"""The real-time stream: Mastodon.py's stream_user receives updates and deletes; Last-Event-ID resumes
without a gap or a duplicate; bad tokens are refused before the stream starts."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from mastodon import Mastodon, StreamListener
from websockets.sync.client import ClientConnection, connect

from kicau import keys, retractions
from kicau.ids import ms_from_id
from kicau.presence import GATEWAYS, PUBLIC_LISTENERS
from tests.conftest import User, eventually


class Recorder(StreamListener):
    def __init__(self) -> None:
        super().__init__()
        self.updates: list[str] = []
        self.deletes: list[str] = []
        self.lock = threading.Lock()

    def on_update(self, status: Any) -> None:
        with self.lock:
            self.updates.append(str(status["id"]))

    def on_delete(self, status_id: Any) -> None:
        with self.lock:
            self.deletes.append(str(status_id))


def test_mastodon_py_stream_user_receives_updates_and_deletes(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User]
) -> None:
    author, reader = make_user("sa"), make_user("sr")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    client = Mastodon(access_token=reader.token, api_base_url=gateway_url)
    recorder = Recorder()
    handle = client.stream_user(recorder, run_async=True, reconnect_async=False)
    try:
        eventually(lambda: handle.is_receiving() if hasattr(handle, "is_receiving") else True)
        eventually(lambda: int(http.get("/metrics").status_code) == 200)
        # The stream registers asynchronously; post until the first one arrives, then check the rest.
        first = http.post("/api/v1/statuses", headers=author.auth, data={"status": "warm-up"}).json()["id"]
        eventually(lambda: first in recorder.updates, timeout=30)
        posted = [http.post("/api/v1/statuses", headers=author.auth, data={"status": f"live {n}"}).json()["id"]
                  for n in range(5)]
        eventually(lambda: recorder.updates[-5:] == posted)
        assert http.delete(f"/api/v1/statuses/{posted[2]}", headers=author.auth).status_code == 200
        eventually(lambda: recorder.deletes == [posted[2]])
    finally:
        handle.close()


def read_events(lines: Iterator[str], count: int) -> list[dict[str, str]]:
    """Parse SSE frames until ``count`` events (not comments) have been read."""
    events: list[dict[str, str]] = []
    frame: dict[str, str] = {}
    for line in lines:
        if line == "":
            if frame:
                events.append(frame)
                frame = {}
                if len(events) == count:
                    return events
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        frame[name] = value
    return events


def status_of(event: dict[str, str]) -> str | None:
    """The status an SSE event is about: its id, or for a notification, its status's; for an event of the public
    timeline's streams, which carry no id, the status's own (an update's) or the id deleted."""
    if event.get("event") == "notification":
        status = json.loads(event["data"]).get("status")
        return str(status["id"]) if status else None
    if event.get("event") == "conversation":  # the direct stream's: the conversation's last status
        return str(json.loads(event["data"])["last_status"]["id"])
    if "id" not in event and event.get("event") == "update":
        return str(json.loads(event["data"])["id"])
    if "id" not in event and event.get("event") == "delete":
        return event["data"]
    return event.get("id")


def warm_until_seen(gateway_url: str, author: User, lines: Iterator[str], text: str = "warm-up",
                    visibility: str = "public") -> None:
    """Post ``text`` as ``author`` every 0.3 s, from a thread of its own, until the stream read by ``lines`` gets
    one (a blocking read never waits for a post that is not coming), then read the stream past the last of them:
    the next event it gives is what comes after. A notification counts as its status (``status_of``): a text
    that mentions the stream's reader warms a stream of notifications alone; a direct one (``visibility``), its
    direct stream."""
    posted: list[str] = []
    done = threading.Event()

    def keep_posting() -> None:
        with httpx.Client(base_url=gateway_url, timeout=30) as poster:
            while not done.is_set():
                answer = poster.post("/api/v1/statuses", headers=author.auth,
                                     data={"status": f"{text} {len(posted)}", "visibility": visibility})
                assert answer.status_code == 200, answer.text
                posted.append(str(answer.json()["id"]))
                done.wait(0.3)

    thread = threading.Thread(target=keep_posting, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        seen = status_of(read_events(lines, 1)[0])
        while seen not in posted:
            assert time.monotonic() < deadline, "the stream got none of the warm-up posts within 60 s"
            seen = status_of(read_events(lines, 1)[0])
    finally:
        done.set()
        thread.join(timeout=30)
    while seen != posted[-1]:  # one more may have been on its way when the stream got the first
        seen = status_of(read_events(lines, 1)[0])


def test_sse_wire_format_and_resume_with_last_event_id(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User]
) -> None:
    author, reader = make_user("ra"), make_user("rr")
    http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth)
    seen = http.post("/api/v1/statuses", headers=author.auth, data={"status": "seen before disconnect"}).json()["id"]
    eventually(lambda: seen in [s["id"] for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()])
    missed = [http.post("/api/v1/statuses", headers=author.auth, data={"status": f"missed {n}"}).json()["id"]
              for n in range(4)]
    eventually(lambda: missed[-1] in [s["id"] for s in http.get("/api/v1/timelines/home",
                                                                   headers=reader.auth).json()])
    headers = {**reader.auth, "Last-Event-ID": seen}
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(20, read=20)) as stream_client, \
            stream_client.stream("GET", "/api/v1/streaming/user", headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        replayed = read_events(lines, 4)
        assert [e["id"] for e in replayed] == missed  # oldest first, nothing before the cursor
        assert all(e["event"] == "update" for e in replayed)
        live = http.post("/api/v1/statuses", headers=author.auth, data={"status": "live after resume"}).json()["id"]
        nxt = read_events(lines, 1)
        assert nxt[0]["id"] == live and nxt[0]["event"] == "update"


def test_resume_sends_the_edits_and_deletions_missed_while_away_after_the_statuses(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: Any
) -> None:
    """A client away from its stream misses edits and deletions as well as statuses, and its home timeline keeps
    no trace of either (kicau/retractions.py). Resuming with Last-Event-ID, it gets the statuses it missed, then
    each status edited since as it is now (``status.update``), then each deleted since (``delete``, its data the
    id), then live events; not the deletion of a status by an account it does not follow. Neither an edit nor a
    deletion, resumed or live, carries an SSE id: the client's Last-Event-ID stays the newest status it was sent
    (a deletion of an old status would otherwise move it back)."""
    author, stranger, reader = make_user("rt_a"), make_user("rt_s"), make_user("rt_r")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200

    def post(who: User, text: str) -> str:
        return str(http.post("/api/v1/statuses", headers=who.auth, data={"status": text}).json()["id"])

    older, doomed = post(author, "to be edited"), post(author, "to be deleted")
    elsewhere = post(stranger, "deleted by someone the reader does not follow")
    seen = post(author, "the last status the stream had")
    eventually(lambda: seen in [s["id"] for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()])
    time.sleep(retractions.CLOCK_SLACK_MS / 1000)  # what happens next is past the read's slack before ``seen``
    missed = post(author, "posted while away")
    assert http.put(f"/api/v1/statuses/{older}", headers=author.auth,
                    json={"status": "edited while away"}).status_code == 200
    assert http.delete(f"/api/v1/statuses/{doomed}", headers=author.auth).status_code == 200
    assert http.delete(f"/api/v1/statuses/{elsewhere}", headers=stranger.auth).status_code == 200

    eventually(lambda: {int(doomed), int(elsewhere), int(older)} <= _logged(stack_redis))  # the fanout applied them
    headers = {**reader.auth, "Last-Event-ID": seen}
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(20, read=20)) as stream_client, \
            stream_client.stream("GET", "/api/v1/streaming/user", headers=headers) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        replayed = read_events(lines, 3)
        assert [(e["event"], e.get("id")) for e in replayed] == [
            ("update", missed), ("status.update", None), ("delete", None)], replayed
        edited = json.loads(replayed[1]["data"])
        assert edited["id"] == older and "edited while away" in edited["content"] and edited["edited_at"]
        assert replayed[2]["data"] == doomed
        live = post(author, "live after the resume")
        event = read_events(lines, 1)[0]
        assert (event["event"], event.get("id")) == ("update", live), event  # nothing of the stranger's first
        assert http.delete(f"/api/v1/statuses/{older}", headers=author.auth).status_code == 200
        event = read_events(lines, 1)[0]
        assert (event["event"], event["data"], "id" in event) == ("delete", older, False), event


def test_a_resume_past_a_lost_log_of_edits_and_deletions_is_told_some_may_be_missing(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: Any
) -> None:
    """Redis losing the log (a restart without its data, a ``FLUSHALL``) must not pass for "nothing was edited
    or deleted": the fanout marks the log as begun again within seconds (``retractions.keep_marking``), and a
    stream resuming from before that gets the statuses it missed, then ``kicau.refetch`` saying that edits and
    deletions this far back are not kept. A stream resuming from after it is told nothing of the kind."""
    author, reader = make_user("lost_a"), make_user("lost_r")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200

    def post(text: str) -> str:
        return str(http.post("/api/v1/statuses", headers=author.auth, data={"status": text}).json()["id"])

    def home() -> list[str]:
        return [s["id"] for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()]

    seen = post("before the log was lost")
    eventually(lambda: seen in home())
    stack_redis.delete(retractions.LOG, retractions.SINCE)  # as Redis losing them, and nothing else
    eventually(lambda: stack_redis.get(retractions.SINCE) is not None, timeout=3 * retractions.MARK_SECONDS)
    since = int(stack_redis.get(retractions.SINCE))
    time.sleep(retractions.CLOCK_SLACK_MS / 1000)
    after = post("after the log was marked again")
    eventually(lambda: after in home())
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(20, read=20)) as client:
        with client.stream("GET", "/api/v1/streaming/user", headers={**reader.auth, "Last-Event-ID": seen}) as stream:
            events = read_events(stream.iter_lines(), 2)
        assert [(e["event"], e.get("id")) for e in events] == [("update", after), ("kicau.refetch", None)], events
        assert "not kept" in json.loads(events[1]["data"])["reason"]
        assert ms_from_id(int(after)) - retractions.CLOCK_SLACK_MS >= since, "the point is after the mark"
        with client.stream("GET", "/api/v1/streaming/user", headers={**reader.auth, "Last-Event-ID": after}) as stream:
            lines = stream.iter_lines()
            live = post("live")
            assert [(e["event"], e.get("id")) for e in read_events(lines, 1)] == [("update", live)]


def _logged(stack_redis: Any) -> set[int]:
    """The statuses of the newest entries of the log of edits and deletions (kicau/retractions.py)."""
    return {retractions._decode(fields[b"r"]).status_id
            for _, fields in stack_redis.xrevrange(retractions.LOG, count=200)}


def _socket_frames(socket: ClientConnection, count: int) -> list[tuple[str, str | None, str | None]]:
    """The next ``count`` frames of a WebSocket, as (event, the status's id: an update's or a deletion's, the
    frame's own id)."""
    frames: list[tuple[str, str | None, str | None]] = []
    while len(frames) < count:
        frame = json.loads(socket.recv(timeout=15))
        payload = frame.get("payload")
        status = (str(json.loads(payload)["id"]) if frame.get("event") in ("update", "status.update")
                  else payload if frame.get("event") == "delete" else None)
        frames.append((frame.get("event") or "error", status, frame.get("id")))
    return frames


def test_a_websocket_user_stream_resumes_after_its_last_event_id_too(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: Any
) -> None:
    """A WebSocket's ``user`` stream, subscribed with ``last_event_id`` (on connecting, or in the ``subscribe``
    message), first gets what the SSE stream would resume with: the statuses missed, oldest first, each frame
    with its ``id``; then the deletions since; then live frames. Bad resume points are refused with an error
    frame, and the socket stays open."""
    author, reader = make_user("wsr_a"), make_user("wsr_r")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200

    def post(text: str) -> str:
        return str(http.post("/api/v1/statuses", headers=author.auth, data={"status": text}).json()["id"])

    doomed = post("deleted while away")
    seen = post("the last status the socket had")
    eventually(lambda: seen in [s["id"] for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()])
    time.sleep(retractions.CLOCK_SLACK_MS / 1000)  # the deletion is past the read's slack before ``seen``
    missed = [post(f"missed {n}") for n in range(3)]
    assert http.delete(f"/api/v1/statuses/{doomed}", headers=author.auth).status_code == 200
    eventually(lambda: int(doomed) in _logged(stack_redis))
    eventually(lambda: missed[-1] in [s["id"] for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()])
    ws_url = gateway_url.replace("http://", "ws://") + "/api/v1/streaming"
    with connect(f"{ws_url}?stream=user&last_event_id={seen}", additional_headers=reader.auth,
                 open_timeout=10) as socket:
        assert _socket_frames(socket, 4) == [*(("update", m, m) for m in missed), ("delete", doomed, None)]
        live = post("live after the socket resumed")
        assert _socket_frames(socket, 1) == [("update", live, live)]
    with connect(ws_url, additional_headers=reader.auth, open_timeout=10) as socket:
        for bad, said in ((missed[0], "Only the user stream"), ("not-an-id", "must be a status id")):
            stream = "public" if said.startswith("Only") else "user"
            socket.send(json.dumps({"type": "subscribe", "stream": stream, "last_event_id": bad}))
            refused = json.loads(socket.recv(timeout=15))
            assert refused["status"] == 400 and said in refused["error"], refused
        socket.send(json.dumps({"type": "subscribe", "stream": "user", "last_event_id": missed[0]}))
        assert _socket_frames(socket, 3) == [("update", missed[1], missed[1]), ("update", missed[2], missed[2]),
                                             ("update", live, live)]
        assert _socket_frames(socket, 1) == [("delete", doomed, None)]  # deleted after ``missed[0]`` was posted


def test_resume_from_far_back_on_an_untrimmed_timeline_replays_everything(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User]
) -> None:
    reader = make_user("rf")
    # A cursor older than anything the timeline can hold, on a timeline that holds more than nothing.
    http.post("/api/v1/statuses", headers=reader.auth, data={"status": "mine"})
    headers = {**reader.auth, "Last-Event-ID": "1"}
    with httpx.Client(base_url=gateway_url, timeout=20) as stream_client, \
            stream_client.stream("GET", "/api/v1/streaming/user", headers=headers) as stream:
        events = read_events(stream.iter_lines(), 2)
    # One own status in a never-trimmed timeline is provably all that was missed: it is replayed. The edits and
    # deletions since then are not all kept (kicau/retractions.py): the client is told so after it.
    assert events[0]["event"] == "update"
    assert events[1]["event"] == "kicau.refetch" and "not kept" in json.loads(events[1]["data"])["reason"], events


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer invalid"}])
def test_stream_refuses_bad_tokens(http: httpx.Client, headers: dict[str, str]) -> None:
    answer = http.get("/api/v1/streaming/user", headers=headers)
    assert answer.status_code == 401
    assert "error" in answer.json()


def test_stream_health(http: httpx.Client) -> None:
    answer = http.get("/api/v1/streaming/health")
    assert answer.status_code == 200 and answer.text == "OK"


def test_a_user_stream_is_told_when_the_gateways_channel_was_interrupted(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: Any
) -> None:
    """What is published while the gateway's channel to Redis is down never reaches its streams (redis-py
    subscribes again by itself, silently). Once the channel is back, every user stream gets ``kicau.refetch``
    without an id (after the statuses it missed: the next test), so its Last-Event-ID stays the last status it
    had; the stream itself goes on live. A stream of notifications alone, which has nothing to resume, is not
    told."""
    author, reader = make_user("gap_a"), make_user("gap_r")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    timeout = httpx.Timeout(30, read=30)
    with httpx.Client(base_url=gateway_url, timeout=timeout) as client, \
            client.stream("GET", "/api/v1/streaming/user", headers=reader.auth) as user, \
            client.stream("GET", "/api/v1/streaming/user/notification", headers=reader.auth) as notifications:
        assert user.status_code == notifications.status_code == 200
        user_lines, notification_lines = user.iter_lines(), notifications.iter_lines()
        warm_until_seen(gateway_url, author, user_lines)
        warm_until_seen(gateway_url, author, notification_lines, text=f"@{reader.username} warm-up")
        assert stack_redis.client_kill_filter(_type="pubsub") >= 1  # every subscriber here, the gateway's included
        notice = read_events(user_lines, 1)[0]
        while notice["event"] != "kicau.refetch":  # the second warm-up's statuses reached this stream too
            assert notice["event"] in ("update", "notification"), notice
            notice = read_events(user_lines, 1)[0]
        assert "id" not in notice, notice
        assert "interrupted" in json.loads(notice["data"])["reason"]
        said = http.post("/api/v1/statuses", headers=author.auth,
                         data={"status": f"@{reader.username} after the channel came back"}).json()["id"]
        event = read_events(user_lines, 1)[0]
        while event.get("id") != said:  # the stream goes on live
            assert event["event"] in ("update", "notification"), event
            event = read_events(user_lines, 1)[0]
        mentioned = read_events(notification_lines, 1)[0]
        while status_of(mentioned) != said:
            assert mentioned["event"] == "notification", mentioned  # never the notice
            mentioned = read_events(notification_lines, 1)[0]


def keep_reading(lines: Iterator[str], received: list[dict[str, str]]) -> None:
    """Read a stream into ``received`` as it arrives, from a thread of its own, so nothing is waited for in vain."""

    def read() -> None:
        with contextlib.suppress(Exception):  # ended by the stream's closing
            while events := read_events(lines, 1):
                received.append(events[0])

    threading.Thread(target=read, daemon=True).start()


def gateway_holding(stack_redis: Any, reader: User) -> str:
    """The one gateway holding the reader's streams, as its presence says."""
    holding: list[str] = [gateway.decode() for gateway in stack_redis.smembers(GATEWAYS)
                          if stack_redis.hget(f"online:{{g:{gateway.decode()}}}", str(reader.id))]
    assert len(holding) == 1, holding
    return holding[0]


def test_streams_are_sent_the_statuses_notifications_and_deletions_they_missed_while_the_gateways_channel_was_down(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: Any
) -> None:
    """A status fanned out while the gateway's channel was down never reaches its streams live, nor does its
    mention's notification. Once the channel is back, each user stream is sent what its home timeline got after
    the last status it was sent and the notifications after the last one (once, oldest first), then the deletions
    since (kicau/retractions.py), then ``kicau.refetch`` saying so, then its live events; a stream of
    notifications alone gets the notification.
    The gap is made on purpose: the fanout is told that the reader holds no stream, so the status goes to its
    home timeline and its notification to Cassandra alone, while a second follower's stream shows that the fanout
    has handled it. The reader holds a WebSocket on ``user`` too, which is filled alike."""
    author, reader, witness = make_user("fill_a"), make_user("fill_r"), make_user("fill_w")
    for follower in (reader, witness):
        assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.auth).status_code == 200
    timeout = httpx.Timeout(30, read=30)
    received: list[dict[str, str]] = []
    with httpx.Client(base_url=gateway_url, timeout=timeout) as client, \
            client.stream("GET", "/api/v1/streaming/user", headers=reader.auth) as user, \
            client.stream("GET", "/api/v1/streaming/user", headers=witness.auth) as watching, \
            client.stream("GET", "/api/v1/streaming/user/notification", headers=reader.auth) as notifying, \
            connect(gateway_url.replace("http://", "ws://") + "/api/v1/streaming?stream=user",
                    additional_headers=reader.auth, open_timeout=10) as socket:
        assert user.status_code == watching.status_code == notifying.status_code == 200
        user_lines, witness_lines, notification_lines = user.iter_lines(), watching.iter_lines(), notifying.iter_lines()
        warm_until_seen(gateway_url, author, user_lines)
        warm_until_seen(gateway_url, author, witness_lines)
        warm_until_seen(gateway_url, author, notification_lines, text=f"@{reader.username} warm-up")
        warm_until_seen(gateway_url, author, user_lines, text="settled")  # past the mentions the user stream got
        assert any(event == "update" for event, _ in _frames_until_quiet(socket)), "the socket got no warm-up"
        doomed = http.post("/api/v1/statuses", headers=author.auth, data={"status": "deleted while away"}).json()["id"]
        while status_of(read_events(user_lines, 1)[0]) != doomed:  # the reader's streams have it
            pass

        keep_reading(user_lines, received)
        holding = gateway_holding(stack_redis, reader)
        missed: list[str] = []
        for attempt in range(5):  # the fanout applies the presence change as it reads it: a first status may beat it
            stack_redis.publish(keys.PRESENCE_CHANNEL, f"{holding} {reader.id} 0")
            time.sleep(0.2)
            said = http.post("/api/v1/statuses", headers=author.auth,
                             data={"status": f"@{reader.username} while the channel was down {attempt}"}).json()["id"]
            seen = status_of(read_events(witness_lines, 1)[0])
            while seen != said:
                seen = status_of(read_events(witness_lines, 1)[0])
            time.sleep(1.0)  # the reader's stream would have had it in the same write round as the witness's
            if said not in {event.get("id") for event in received}:
                missed.append(said)
                break
        assert missed, "the fanout kept publishing to the reader's stream"
        # Deleted while the reader is thought offline: the witness is told live, the reader not.
        stack_redis.publish(keys.PRESENCE_CHANNEL, f"{holding} {reader.id} 0")
        time.sleep(0.2)
        assert http.delete(f"/api/v1/statuses/{doomed}", headers=author.auth).status_code == 200
        gone = read_events(witness_lines, 1)[0]
        while (gone["event"], gone["data"]) != ("delete", doomed):
            gone = read_events(witness_lines, 1)[0]
        time.sleep(1.0)
        assert doomed not in {event["data"] for event in received if event["event"] == "delete"}
        assert ("update", said) not in _frames_until_quiet(socket)
        assert said in {status["id"] for status in http.get("/api/v1/timelines/home", headers=reader.auth).json()}
        counted = _gap_counts(gateway_url)
        assert stack_redis.client_kill_filter(_type="pubsub") >= 1  # the gateway's channel, and the fanout's mirror

        def notice_index() -> int | None:
            return next((i for i, event in enumerate(received) if event["event"] == "kicau.refetch"), None)

        eventually(lambda: notice_index() is not None)
        index = notice_index()
        assert index is not None
        notice = received[index]
        assert "id" not in notice and "sent again" in json.loads(notice["data"])["reason"], notice
        filled = [(event["event"], status_of(event)) for event in received if status_of(event) == said]
        assert filled == [("update", said), ("notification", said)], received  # once each, the status first
        assert max(i for i, event in enumerate(received) if status_of(event) == said) < index
        # The deletion, from the log of edits and deletions (kicau/retractions.py): after them, before the notice.
        deleted = [i for i, event in enumerate(received) if (event["event"], event["data"]) == ("delete", doomed)]
        assert len(deleted) == 1 and max(i for i, event in enumerate(received) if status_of(event) == said) < \
            deleted[0] < index, received
        mentioned = read_events(notification_lines, 1)[0]
        while status_of(mentioned) != said:  # a stream of notifications alone: the notification, no notice
            assert mentioned["event"] == "notification", mentioned
            mentioned = read_events(notification_lines, 1)[0]
        on_socket = _frames_until_quiet(socket)
        assert on_socket[:1] == [("update", said)] and on_socket[-2:] == [("delete", None), ("kicau.refetch", None)], \
            on_socket
        reads, statuses, notifications = (
            after - before for after, before in zip(_gap_counts(gateway_url), counted, strict=True))
        # The reader's: one read of each kind; the status on two streams, its notification on three. Others' too.
        assert reads >= 2 and statuses >= 2 and notifications >= 3, (reads, statuses, notifications)
        live = http.post("/api/v1/statuses", headers=author.auth, data={"status": "after the gap"}).json()["id"]
        eventually(lambda: live in {event.get("id") for event in received[index + 1:]})
        assert [event.get("id") for event in received].count(live) == 1
        assert [frame for frame in _frames_until_quiet(socket) if frame[0] == "update"] == [("update", live)]


def test_a_direct_stream_is_sent_the_conversations_it_missed_while_the_gateways_channel_was_down(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: Any
) -> None:
    """A direct status fanned out while the gateway's channel was down never reaches the ``direct`` stream of an
    account it mentions. Once the channel is back, that stream is sent the conversation it missed as it is now (its
    last status the one missed), once, without an SSE id, then its live events. The gap is made as above: the
    fanout is told that the reader holds no stream, while the direct stream of a second account the status
    mentions shows that the fanout has handled it."""
    author, reader, witness = make_user("dgap_a"), make_user("dgap_r"), make_user("dgap_w")
    for member in (reader, witness):  # private mentions from accounts not followed are held back by default
        assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=member.auth).status_code == 200
    mention = f"@{reader.username} @{witness.username}"
    timeout = httpx.Timeout(30, read=30)
    received: list[dict[str, str]] = []
    with httpx.Client(base_url=gateway_url, timeout=timeout) as client, \
            client.stream("GET", "/api/v1/streaming/direct", headers=reader.auth) as direct, \
            client.stream("GET", "/api/v1/streaming/direct", headers=witness.auth) as watching:
        assert direct.status_code == watching.status_code == 200
        direct_lines, witness_lines = direct.iter_lines(), watching.iter_lines()
        warm_until_seen(gateway_url, author, direct_lines, text=f"{mention} warm-up", visibility="direct")
        warm_until_seen(gateway_url, author, witness_lines, text=f"{mention} witness", visibility="direct")
        warm_until_seen(gateway_url, author, direct_lines, text=f"{mention} settled", visibility="direct")

        keep_reading(direct_lines, received)
        holding = gateway_holding(stack_redis, reader)
        missed: str | None = None
        for attempt in range(5):  # the fanout applies the presence change as it reads it: a first status may beat it
            stack_redis.publish(keys.PRESENCE_CHANNEL, f"{holding} {reader.id} 0")
            time.sleep(0.2)
            said = http.post("/api/v1/statuses", headers=author.auth,
                             data={"status": f"{mention} while the channel was down {attempt}",
                                   "visibility": "direct"}).json()["id"]
            while status_of(read_events(witness_lines, 1)[0]) != said:
                pass
            time.sleep(1.0)  # the reader's stream would have had it in the same write round as the witness's
            if said not in {status_of(event) for event in received}:
                missed = said
                break
        assert missed is not None, "the fanout kept publishing to the reader's stream"
        assert stack_redis.client_kill_filter(_type="pubsub") >= 1  # the gateway's channel, and the fanout's mirror
        eventually(lambda: missed in {status_of(event) for event in received})
        filled = [event for event in received if status_of(event) == missed]
        assert len(filled) == 1 and filled[0]["event"] == "conversation" and "id" not in filled[0], received
        assert {account["id"] for account in json.loads(filled[0]["data"])["accounts"]} == {author.id, witness.id}
        assert all(event["event"] == "conversation" for event in received), "a direct stream takes nothing else"
        live = http.post("/api/v1/statuses", headers=author.auth,
                         data={"status": f"{mention} after the gap", "visibility": "direct"}).json()["id"]
        eventually(lambda: live in {status_of(event) for event in received})
        order = [status_of(event) for event in received]
        assert order.count(live) == 1 and order.index(missed) < order.index(live), order


def test_public_hashtag_and_list_streams_are_sent_the_statuses_they_missed_while_the_gateways_channel_was_down(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: Any
) -> None:
    """A public status fanned out while the gateway's channel was down never reaches the streams of the public
    timeline, of its hashtag and of a list its author is on. Once the channel is back, each is sent it, once, as
    its live ``update`` (no SSE id, no notice), then its live events; each also the edit and the deletion of
    statuses it had, made meanwhile. The gap is made as above: the fanout is told that the
    gateway holds no public listener and no stream of the list's owner, while a follower's user stream shows that
    the fanout has handled the status. A WebSocket subscribed to the hashtag gets it framed as its stream's; the
    statuses write the hashtag in capitals, which the stream's name matches whatever the case."""
    author, reader, witness = make_user("pgap_a"), make_user("pgap_r"), make_user("pgap_w")
    for follower in (reader, witness):
        assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.auth).status_code == 200
    listed = http.post("/api/v1/lists", headers=reader.auth, json={"title": "gap"}).json()["id"]
    assert http.post(f"/api/v1/lists/{listed}/accounts", headers=reader.auth,
                     json={"account_ids": [author.id]}).status_code == 200
    tag = f"gapfill{uuid.uuid4().hex[:8]}"
    timeout = httpx.Timeout(30, read=30)
    on_public: list[dict[str, str]] = []
    on_tag: list[dict[str, str]] = []
    on_list: list[dict[str, str]] = []

    def statuses(received: list[dict[str, str]]) -> list[str | None]:
        return [status_of(event) for event in list(received)]

    def retractions_of(received: list[dict[str, str]]) -> list[tuple[str, str]]:
        """The edits and deletions a stream got, as (event, status id)."""
        return [(event["event"], event["data"] if event["event"] == "delete" else json.loads(event["data"])["id"])
                for event in list(received) if event["event"] in ("delete", "status.update")]

    with httpx.Client(base_url=gateway_url, timeout=timeout) as client, \
            client.stream("GET", "/api/v1/streaming/public", headers=reader.auth) as public, \
            client.stream("GET", "/api/v1/streaming/hashtag", params={"tag": tag}, headers=reader.auth) as tagged, \
            client.stream("GET", "/api/v1/streaming/list", params={"list": listed}, headers=reader.auth) as listing, \
            client.stream("GET", "/api/v1/streaming/user", headers=witness.auth) as watching, \
            connect(gateway_url.replace("http://", "ws://") + f"/api/v1/streaming?stream=hashtag&tag={tag}",
                    additional_headers=reader.auth, open_timeout=10) as socket:
        assert public.status_code == tagged.status_code == listing.status_code == watching.status_code == 200
        public_lines, tag_lines, witness_lines = public.iter_lines(), tagged.iter_lines(), watching.iter_lines()
        list_lines = listing.iter_lines()
        warm_until_seen(gateway_url, author, list_lines, text="listed warm-up")
        warm_until_seen(gateway_url, author, tag_lines, text=f"#{tag.upper()} warm-up")
        warm_until_seen(gateway_url, author, witness_lines, text=f"#{tag.upper()} witness")
        warm_until_seen(gateway_url, author, public_lines, text="settled")  # past every warm-up before it

        keep_reading(public_lines, on_public)
        keep_reading(tag_lines, on_tag)
        keep_reading(list_lines, on_list)
        assert any(event == "update" for event, _ in _frames_until_quiet(socket)), "the socket got no warm-up"
        streams = (on_public, on_tag, on_list)
        doomed, changing = (http.post("/api/v1/statuses", headers=author.auth,
                                      data={"status": f"#{tag.upper()} {text}"}).json()["id"]
                            for text in ("to be deleted", "to be edited"))
        eventually(lambda: all({doomed, changing} <= set(statuses(received)) for received in streams))
        holding = gateway_holding(stack_redis, reader)
        missed: str | None = None
        for attempt in range(5):  # the fanout applies the presence change as it reads it: a first status may beat it
            for listener in (PUBLIC_LISTENERS, reader.id):
                stack_redis.publish(keys.PRESENCE_CHANNEL, f"{holding} {listener} 0")
            time.sleep(0.2)
            said = http.post("/api/v1/statuses", headers=author.auth,
                             data={"status": f"#{tag.upper()} while the channel was down {attempt}"}).json()["id"]
            while status_of(read_events(witness_lines, 1)[0]) != said:
                pass
            time.sleep(1.0)  # the public streams would have had it in the same write round as the witness's
            if all(said not in statuses(received) for received in streams):
                missed = said
                break
        assert missed is not None, "the fanout kept publishing to the gateway's public and list streams"
        for listener in (PUBLIC_LISTENERS, reader.id):
            stack_redis.publish(keys.PRESENCE_CHANNEL, f"{holding} {listener} 0")
        time.sleep(0.2)
        assert http.delete(f"/api/v1/statuses/{doomed}", headers=author.auth).status_code == 200
        assert http.put(f"/api/v1/statuses/{changing}", headers=author.auth,
                        data={"status": f"#{tag.upper()} edited while the channel was down"}).status_code == 200
        told: set[tuple[str, str]] = set()
        while told != {("delete", doomed), ("status.update", changing)}:  # the witness is told, live
            event = read_events(witness_lines, 1)[0]
            if event["event"] == "delete":
                told.add(("delete", event["data"]))
            elif event["event"] == "status.update":
                told.add(("status.update", json.loads(event["data"])["id"]))
        time.sleep(1.0)
        assert all(not retractions_of(received) for received in streams), "told live after all: no gap"
        assert stack_redis.client_kill_filter(_type="pubsub") >= 1  # the gateway's channel, and the fanout's mirror
        eventually(lambda: all(missed in statuses(received) for received in streams))
        for received in streams:
            filled = [event for event in list(received) if status_of(event) == missed]
            assert len(filled) == 1 and filled[0]["event"] == "update" and "id" not in filled[0], received
            assert json.loads(filled[0]["data"])["account"]["id"] == author.id
            assert "kicau.refetch" not in {event["event"] for event in list(received)}, "no notice on these"
        for received in streams:  # after the status missed, each once
            def both_told(seen: list[dict[str, str]] = received) -> bool:
                return len(retractions_of(seen)) == 2

            eventually(both_told)
            assert sorted(retractions_of(received)) == [("delete", doomed), ("status.update", changing)], received
            edit = next(event for event in list(received) if event["event"] == "status.update")
            assert "edited while the channel was down" in json.loads(edit["data"])["content"]
            sequence = [(event["event"], status_of(event)) for event in list(received)]
            assert sequence.index(("update", missed)) < sequence.index(("delete", doomed))
        framed = []
        with contextlib.suppress(TimeoutError):
            while True:
                frame = json.loads(socket.recv(timeout=1.5))
                payload = frame["payload"] if frame["event"] == "delete" else json.loads(frame["payload"])["id"]
                framed.append((frame["stream"], frame["event"], payload))
        assert framed.count((["hashtag", tag], "update", missed)) == 1, framed
        assert framed.count((["hashtag", tag], "delete", doomed)) == 1, framed
        live = http.post("/api/v1/statuses", headers=author.auth,
                         data={"status": f"#{tag.upper()} after the gap"}).json()["id"]
        eventually(lambda: all(live in statuses(received) for received in streams))
        for received in streams:
            order = statuses(received)
            assert order.count(live) == order.count(missed) == 1 and order.index(missed) < order.index(live), order


def _gap_counts(gateway_url: str) -> tuple[float, float, float]:
    """The gateway's reads after channel losses found whole (both kinds), and statuses and notifications sent
    again."""
    text = httpx.get(f"{gateway_url}/metrics", timeout=10).text

    def value(pattern: str) -> float:
        return sum(float(found) for found in re.findall(pattern, text, re.M))

    return (value(r'^kicau_stream_gap_reads_total\{kind="\w+",result="filled"\} (\S+)$'),
            value(r'^kicau_stream_gap_events_total\{event="update"\} (\S+)$'),
            value(r'^kicau_stream_gap_events_total\{event="notification"\} (\S+)$'))


def _frames_until_quiet(socket: ClientConnection) -> list[tuple[str, str | None]]:
    """Every frame a WebSocket gets until 1.5 s pass without one, as (event, the status's id or None)."""
    frames: list[tuple[str, str | None]] = []
    with contextlib.suppress(TimeoutError):
        while True:
            frame = json.loads(socket.recv(timeout=1.5))
            payload = frame.get("payload")
            status = json.loads(payload).get("id") if frame.get("event") == "update" else None
            frames.append((frame["event"], status))
    return frames
