"""Applying a batch of events to Redis: home timelines, author feeds, the status cache and stream deliveries.

Every write is idempotent (adding an id already present, removing one already gone, caching the same bytes),
so a batch replayed after a crash changes nothing: offsets are committed only after the whole batch is in
Redis. Cassandra reads for the batch are issued concurrently up front; the Redis writes then go out in
pipelined chunks, never one round trip per follower.

Statuses of large accounts are not fanned out: they go to the author's own feed (merged into followers' home
timelines at read time) and one broadcast to every gateway, a constant number of Redis commands whatever the
audience. When an account stops being large, its newest statuses are pushed into its (now bounded) followers'
timelines, so nothing posted while it was large goes missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from kicau import keys
from kicau.account_cards import AccountCards
from kicau.entities import compose_status, dumps
from kicau.events import AccountScaleChanged, Event, FollowCreated, FollowDeleted, StatusCreated, StatusDeleted
from kicau.feeds import Feeds
from kicau.large_accounts import LargeAccounts
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
    feeds: Feeds
    graph: FollowGraph
    accounts: AccountCards
    online: OnlineMirror
    large: LargeAccounts

    async def apply(self, events: Sequence[Event]) -> int:
        """Apply events in order; returns the number of home-timeline entries written."""
        started = time.perf_counter()
        cap = self.settings.home_timeline_cap
        large = set(await self.large.current())
        # Whether an author is large is decided in stream order: a scale change seen in this batch applies to
        # the author's statuses after it, exactly as it will on a replay.
        needs_followers: set[int] = set()
        scale = set(large)
        for event in events:
            if isinstance(event, AccountScaleChanged):
                scale = scale | {event.account_id} if event.large else scale - {event.account_id}
                if not event.large:
                    needs_followers.add(event.account_id)
            elif isinstance(event, StatusCreated | StatusDeleted) and event.account_id not in scale:
                needs_followers.add(event.account_id)
        followees = {e.followee_id for e in events if isinstance(e, FollowCreated | FollowDeleted)}
        backfilled = {e.account_id for e in events if isinstance(e, AccountScaleChanged) and not e.large}
        follower_ids, recent_ids = sorted(needs_followers), sorted(followees | backfilled)
        follower_lists, status_lists = await asyncio.gather(
            asyncio.gather(*(self.graph.followers(a) for a in follower_ids)),
            asyncio.gather(*(self.graph.newest_statuses(f, max(cap, self.settings.follow_backfill))
                             for f in recent_ids)),
        )
        followers = dict(zip(follower_ids, follower_lists, strict=True))
        recent = dict(zip(recent_ids, status_lists, strict=True))
        cards = await self._cards_for_online(events, followers, large)

        out = _ChunkedPipeline(self.redis, self.own.pipeline_chunk)
        entries = 0
        for event in events:
            FANOUT_EVENTS.labels(event.__struct_config__.tag).inc()
            if isinstance(event, AccountScaleChanged):
                if event.large:
                    large.add(event.account_id)
                else:
                    large.discard(event.account_id)
                    statuses = recent[event.account_id][:cap]
                    for follower in followers[event.account_id]:
                        self.feeds.push(out.pipe, keys.home_feed(follower), statuses)
                        entries += len(statuses)
                        await out.maybe_flush()
                    out.pipe.delete(keys.author_feed(event.account_id))
                self.large.note(event.account_id, event.large)
            elif isinstance(event, StatusCreated):
                fragment = event.status_json.encode()
                card = cards.get(event.account_id)
                payload = compose_status(fragment, card).decode() if card is not None else None
                queue_cache(out.pipe, event.status_id, event.account_id, fragment)
                self.feeds.push(out.pipe, keys.home_feed(event.account_id), (event.status_id,))
                entries += 1
                if event.account_id in large:
                    self.feeds.push(out.pipe, keys.author_feed(event.account_id), (event.status_id,))
                    if payload is not None:
                        self._broadcast(out.pipe, "update", event, payload)
                    continue
                recipients = followers[event.account_id]
                if payload is not None:
                    self._deliver(out.pipe, "update", event, payload, [event.account_id, *recipients])
                for follower in recipients:
                    self.feeds.push(out.pipe, keys.home_feed(follower), (event.status_id,))
                    entries += 1
                    await out.maybe_flush()
            elif isinstance(event, StatusDeleted):
                payload = dumps(str(event.status_id)).decode()
                queue_tombstone(out.pipe, event.status_id)
                self.feeds.unpush(out.pipe, keys.home_feed(event.account_id), (event.status_id,))
                if event.account_id in large:
                    # Followers' timelines may still hold the id from before the account grew; reads drop
                    # tombstoned statuses, so nothing per follower is needed here.
                    self.feeds.unpush(out.pipe, keys.author_feed(event.account_id), (event.status_id,))
                    self._broadcast(out.pipe, "delete", event, payload)
                    continue
                recipients = followers[event.account_id]
                self._deliver(out.pipe, "delete", event, payload, [event.account_id, *recipients])
                for follower in recipients:
                    self.feeds.unpush(out.pipe, keys.home_feed(follower), (event.status_id,))
                    await out.maybe_flush()
            elif isinstance(event, FollowCreated):
                backfill = recent[event.followee_id][: self.settings.follow_backfill]
                self.feeds.push(out.pipe, keys.home_feed(event.follower_id), backfill)
                entries += len(backfill)
            else:
                # Unfollow removes every status of the former followee the timeline can hold.
                self.feeds.unpush(out.pipe, keys.home_feed(event.follower_id), recent[event.followee_id][:cap])
            await out.maybe_flush()
        await out.flush()
        FANOUT_ENTRIES.inc(entries)
        FANOUT_BATCH_SECONDS.observe(time.perf_counter() - started)
        return entries

    async def _cards_for_online(
        self, events: Sequence[Event], followers: dict[int, list[int]], large: set[int]
    ) -> dict[int, bytes]:
        """Author cards, fetched only for statuses someone may be streaming right now."""
        if not len(self.online):
            return {}
        wanted = {
            e.account_id
            for e in events
            if isinstance(e, StatusCreated)
            and (e.account_id in large or e.account_id not in followers
                 or self.online.gateways_of([e.account_id, *followers[e.account_id]]))
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

    def _broadcast(self, pipe: Pipeline, kind: str, event: StatusCreated | StatusDeleted, payload: str) -> None:
        """One message for every gateway; each delivers to its own connections that follow the author."""
        delivery = StreamDelivery(
            event="update" if kind == "update" else "delete",
            status_id=event.status_id,
            accepted_at=event.occurred_at,
            payload=payload,
            recipients=[],
            author_id=event.account_id,
            followers_of_author=True,
        )
        pipe.publish(keys.LARGE_ACCOUNTS_CHANNEL, encode_delivery(delivery))
