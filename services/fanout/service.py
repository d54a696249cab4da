"""Applying a batch of events to Redis: home timelines, the status cache and stream deliveries.

Every write is idempotent (adding an id already present, removing one already gone, caching the same bytes),
so a batch replayed after a crash changes nothing: offsets are committed only after the whole batch is in
Redis. Cassandra reads for the batch are issued concurrently up front; the Redis writes then go out in
pipelined chunks, never one round trip per follower.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from kicau import feeds, keys
from kicau.account_cards import AccountCards
from kicau.entities import compose_status, dumps
from kicau.events import Event, FollowCreated, FollowDeleted, StatusCreated, StatusDeleted
from kicau.metrics import FANOUT_BATCH_SECONDS, FANOUT_ENTRIES, FANOUT_EVENTS
from kicau.presence import OnlineMirror
from kicau.settings import CommonSettings
from kicau.status_cards import queue_cache, queue_tombstone
from kicau.stream_events import StreamDelivery, encode_delivery
from services.fanout.follow_graph import FollowGraph
from services.fanout.settings import FanoutSettings


class _ChunkedPipeline:
    """A pipeline that flushes itself every ``chunk`` queued commands."""

    def __init__(self, redis: Redis, chunk: int) -> None:
        self._redis = redis
        self._chunk = chunk
        self.pipe: Pipeline = redis.pipeline(transaction=False)

    async def maybe_flush(self) -> None:
        if len(self.pipe) >= self._chunk:
            await self.flush()

    async def flush(self) -> None:
        if len(self.pipe):
            await self.pipe.execute()
        self.pipe = self._redis.pipeline(transaction=False)


@dataclass
class Fanout:
    settings: CommonSettings
    own: FanoutSettings
    redis: Redis
    graph: FollowGraph
    accounts: AccountCards
    online: OnlineMirror

    async def apply(self, events: Sequence[Event]) -> int:
        """Apply events in order; returns the number of timeline entries written."""
        started = time.perf_counter()
        cap = self.settings.home_timeline_cap
        authors = {e.account_id for e in events if isinstance(e, StatusCreated | StatusDeleted)}
        followees = {e.followee_id for e in events if isinstance(e, FollowCreated | FollowDeleted)}
        author_list, followee_list = sorted(authors), sorted(followees)
        follower_lists, status_lists = await asyncio.gather(
            asyncio.gather(*(self.graph.followers(a) for a in author_list)),
            asyncio.gather(*(self.graph.newest_statuses(f, max(cap, self.settings.follow_backfill))
                             for f in followee_list)),
        )
        followers = dict(zip(author_list, follower_lists, strict=True))
        recent = dict(zip(followee_list, status_lists, strict=True))
        cards = await self._cards_for_online(events, followers)

        out = _ChunkedPipeline(self.redis, self.own.pipeline_chunk)
        entries = 0
        for event in events:
            FANOUT_EVENTS.labels(event.__struct_config__.tag).inc()
            if isinstance(event, StatusCreated):
                recipients = [event.account_id, *followers[event.account_id]]
                card = cards.get(event.account_id)
                if card is not None:
                    payload = compose_status(event.status_json.encode(), card).decode()
                    self._deliver(out.pipe, "update", event, payload, recipients)
                queue_cache(out.pipe, event.status_id, event.account_id, event.status_json.encode())
                for recipient in recipients:
                    feeds.push(out.pipe, recipient, (event.status_id,), cap)
                    entries += 1
                    await out.maybe_flush()
            elif isinstance(event, StatusDeleted):
                recipients = [event.account_id, *followers[event.account_id]]
                self._deliver(out.pipe, "delete", event, dumps(str(event.status_id)).decode(), recipients)
                queue_tombstone(out.pipe, event.status_id)
                for recipient in recipients:
                    feeds.unpush(out.pipe, recipient, (event.status_id,))
                    await out.maybe_flush()
            elif isinstance(event, FollowCreated):
                backfill = recent[event.followee_id][: self.settings.follow_backfill]
                feeds.push(out.pipe, event.follower_id, backfill, cap)
                entries += len(backfill)
            else:
                # Unfollow removes every status of the former followee the timeline can hold.
                feeds.unpush(out.pipe, event.follower_id, recent[event.followee_id][:cap])
            await out.maybe_flush()
        await out.flush()
        FANOUT_ENTRIES.inc(entries)
        FANOUT_BATCH_SECONDS.observe(time.perf_counter() - started)
        return entries

    async def _cards_for_online(self, events: Sequence[Event], followers: dict[int, list[int]]) -> dict[int, bytes]:
        """Author cards, fetched only for statuses someone is streaming right now."""
        if not len(self.online):
            return {}
        wanted = {
            e.account_id
            for e in events
            if isinstance(e, StatusCreated)
            and self.online.gateways_of([e.account_id, *followers[e.account_id]])
        }
        return await self.accounts.cards(wanted) if wanted else {}

    def _deliver(
        self, pipe: Pipeline, kind: str, event: StatusCreated | StatusDeleted, payload: str, recipients: list[int]
    ) -> None:
        # Queued ahead of the timeline writes of the same status, so streams are not held up by a large fanout.
        for gateway, online in self.online.gateways_of(recipients).items():
            delivery = StreamDelivery(
                event="update" if kind == "update" else "delete",
                status_id=event.status_id,
                accepted_at=event.occurred_at,
                payload=payload,
                recipients=online,
            )
            pipe.publish(keys.stream_channel(gateway), encode_delivery(delivery))
