"""Reading timelines: home (Redis, rebuilt from Cassandra when missing) and an account's own statuses.

Home timeline contract: the newest-first merge of the reader's own statuses and those of every account the
reader follows, capped at ``home_timeline_cap``. Deleted statuses never appear: hydration drops them even if
an id is still in Redis.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from dataclasses import dataclass, field

from redis.asyncio import Redis

from kicau import feeds, keys
from kicau.entities import compose_status_list
from kicau.settings import CommonSettings
from kicau.status_cards import StatusCards
from kicau.web import ApiError
from services.timeline.settings import TimelineSettings
from services.timeline.store import TimelineStore

log = logging.getLogger(__name__)

MAX_LIMIT = 40
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class Page:
    body: bytes
    # Cursors for the Link header: the oldest and newest ids read (before dropping deleted statuses).
    next_max_id: int | None
    prev_min_id: int | None


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    return max(1, min(limit, MAX_LIMIT))


@dataclass
class TimelineService:
    settings: CommonSettings
    own: TimelineSettings
    store: TimelineStore
    redis: Redis
    statuses: StatusCards
    _rebuilds: dict[int, asyncio.Task[None]] = field(default_factory=dict)

    async def home(self, account_id: int, request: feeds.PageRequest) -> Page:
        materialised, ids = await feeds.read_page(self.redis, account_id, request)
        if not materialised:
            await self.rebuild(account_id)
            materialised, ids = await feeds.read_page(self.redis, account_id, request)
        return await self._page(ids)

    async def home_after(self, account_id: int, after_id: int) -> tuple[bool, list[bytes]]:
        """Everything in the home timeline newer than ``after_id``, oldest first (stream resume), and whether
        that is provably everything the reader missed."""
        if not await feeds.is_materialised(self.redis, account_id):
            await self.rebuild(account_id)
        cap = self.settings.home_timeline_cap
        covered, ids = await feeds.newest_after(self.redis, account_id, after_id, cap + 1, cap)
        return covered, await self.statuses.render(ids)

    async def account_statuses(self, account_id: int, request: feeds.PageRequest) -> Page:
        if not await self.store.account_exists(account_id):
            raise ApiError(404, "Record not found")
        ids = await self.store.account_status_ids(
            account_id, max_id=request.max_id, since_id=request.since_id, min_id=request.min_id,
            limit=request.limit,
        )
        return await self._page(ids)

    async def _page(self, ids: list[int]) -> Page:
        rendered = await self.statuses.render(ids)
        return Page(
            body=compose_status_list(rendered),
            next_max_id=ids[-1] if ids else None,
            prev_min_id=ids[0] if ids else None,
        )

    async def rebuild(self, account_id: int) -> None:
        """Rebuild one home timeline from Cassandra, at most once at a time per user across all processes:
        concurrent readers in this process share one task, other processes wait on a Redis lock."""
        task = self._rebuilds.get(account_id)
        if task is None:
            task = asyncio.create_task(self._rebuild_once(account_id))
            self._rebuilds[account_id] = task
            task.add_done_callback(lambda _: self._rebuilds.pop(account_id, None))
        await asyncio.shield(task)

    async def _rebuild_once(self, account_id: int) -> None:
        lock = keys.feed_rebuild_lock(account_id)
        if not await self.redis.set(lock, b"1", nx=True, ex=self.own.rebuild_lock_seconds):
            # Another process is rebuilding this timeline: wait for it rather than rebuild twice.
            deadline = asyncio.get_running_loop().time() + self.own.rebuild_lock_seconds
            while asyncio.get_running_loop().time() < deadline:
                if await feeds.is_materialised(self.redis, account_id):
                    return
                await asyncio.sleep(0.05)
            log.warning("rebuild of %s by another process timed out; rebuilding here", account_id)
        try:
            cap = self.settings.home_timeline_cap
            authors = [account_id, *await self.store.followees(account_id)]
            slots = asyncio.Semaphore(self.own.rebuild_concurrency)

            async def newest(author: int) -> list[int]:
                async with slots:
                    return await self.store.account_status_ids(
                        author, max_id=None, since_id=None, min_id=None, limit=cap
                    )

            lists = await asyncio.gather(*(newest(a) for a in authors))
            merged = heapq.nlargest(cap, (s for ids in lists for s in ids))
            pipe = self.redis.pipeline(transaction=True)
            feeds.materialise(pipe, account_id, merged, cap)
            pipe.delete(lock)
            await pipe.execute()
            log.info("rebuilt home timeline of %s from %d authors: %d entries", account_id, len(authors), len(merged))
        except BaseException:
            await self.redis.delete(lock)
            raise
