"""Lifecycle of the fanout worker, plus its /healthz, /readyz and /metrics on a small HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from kicau import clients, keys, retractions
from kicau.account_cards import AccountCards
from kicau.blocks_and_mutes import BlocksAndMutes, HideCopies
from kicau.conversations import ConversationStore
from kicau.featured_tags import AccountTagUses
from kicau.feeds import Feeds, calls_must_stay_in_one_slot
from kicau.follow_options import FollowOptionStore, KeptOptions
from kicau.follower_lists import FollowerLists, KeptUnderVersions
from kicau.large_accounts import LargeAccounts
from kicau.lists import ListStore
from kicau.notification_policies import PolicyStore, Relations
from kicau.notifications import FILTERED_TABLE, NotificationStore, UpdateNotices
from kicau.polls import PollVotes
from kicau.presence import OnlineMirror
from kicau.public_timeline import PublicStatuses
from kicau.quotes import QuoteStore
from kicau.reblogs import ReblogStore
from kicau.settings import CommonSettings
from kicau.staff import StaffStore
from kicau.status_cards import StatusCards
from kicau.tag_follows import TagFollowStore
from kicau.tag_timeline import TaggedStatuses
from kicau.thread_mutes import ThreadMuteStore
from kicau.web import cassandra_ready, install_common, redis_ready
from kicau.web_push import NoticeHandOver
from kicau.workers import exit_if_it_dies, worker_running
from services.fanout.follow_graph import FollowGraph
from services.fanout.service import Fanout
from services.fanout.settings import FanoutSettings
from services.fanout.worker import BatchPacer, FanoutWorker

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    common = CommonSettings()
    own = FanoutSettings()
    # The producer hands accepted notifications to the push service (kicau/web_push.py).
    async with clients.engines(common, name="fanout", producer=True) as engines:
        redis, session = engines.redis, engines.session
        app.state.redis, app.state.session = redis, session  # what the readiness checks ask
        online = OnlineMirror(redis)
        await online.start()
        # Subscribed below, once the worker that listens for rebalances exists.
        consumer = clients.kafka_consumer(common, group_id=own.group_id, max_poll_records=own.max_batch)
        large = LargeAccounts(session, max_age=5.0)
        await large.reload()
        hides = BlocksAndMutes(session, clients.write_consistency(common))
        graph = FollowGraph(session, hides)
        accounts = AccountCards(redis, session, common.public_url)
        fanout = Fanout(
            settings=common, own=own, redis=redis,
            feeds=Feeds(redis, cap=common.home_timeline_cap, ttl_seconds=int(common.inactive_days * 86400),
                        one_slot_per_call=await calls_must_stay_in_one_slot(redis)),
            graph=graph, follower_lists=FollowerLists(redis, graph.audience, max_ids=own.follower_cache_ids),
            # Under the same versions as the lists above: a hide drops both.
            hiders=FollowerLists(redis, hides.hiders, max_ids=own.follower_cache_ids),
            follow_options=KeptOptions(FollowOptionStore(session, clients.write_consistency(common))),
            list_memberships=KeptUnderVersions(ListStore(session, clients.write_consistency(common)).lists_of_member),
            accounts=accounts, online=online,
            large=large, notifications=NotificationStore(session, clients.write_consistency(common)),
            reblogs=ReblogStore(session, clients.write_consistency(common)),
            update_notices=UpdateNotices(session, clients.write_consistency(common)),
            quotes=QuoteStore(session, clients.write_consistency(common)),
            statuses=StatusCards(redis, session, accounts, common.public_url, hides=HideCopies(redis, hides)),
            conversations=ConversationStore(session, clients.write_consistency(common)),
            thread_mutes=ThreadMuteStore(session, clients.write_consistency(common)),
            poll_votes=PollVotes(redis, session, clients.write_consistency(common)),
            policies=PolicyStore(session, clients.write_consistency(common)), relations=Relations(session),
            filtered=NotificationStore(session, clients.write_consistency(common), FILTERED_TABLE),
            staff=StaffStore(session, clients.write_consistency(common)),
            public=PublicStatuses(session, clients.write_consistency(common)),
            tagged=TaggedStatuses(session, clients.write_consistency(common)),
            tag_uses=AccountTagUses(session, clients.write_consistency(common)),
            pushes=NoticeHandOver(engines.kafka(), common.kafka_notices_topic),
            tag_followers=FollowerLists(redis, TagFollowStore(session, clients.write_consistency(common)).followers,
                                        max_ids=own.follower_cache_ids, version=keys.tag_followers_version),
        )
        topics = [common.kafka_statuses_topic, common.kafka_follows_topic]

        async def renew() -> AIOKafkaConsumer:
            replacement = clients.kafka_consumer(common, group_id=own.group_id, max_poll_records=own.max_batch)
            replacement.subscribe(topics, listener=worker.listener)
            try:
                await replacement.start()
            except BaseException:
                await replacement.stop()
                raise
            return replacement

        worker = FanoutWorker(consumer, fanout, own.max_batch, own.commit_interval_seconds,
                              pacer=BatchPacer(own.linger_seconds, own.linger_above_per_second, own.max_batch),
                              renew=renew)
        consumer.subscribe(topics, listener=worker.listener)
        await consumer.start()
        task = asyncio.create_task(worker.run(), name="fanout-worker")
        exit_if_it_dies(task, "fanout")
        # The log of edits and deletions is marked as begun again soon after Redis lost it (kicau/retractions.py).
        marking = asyncio.create_task(retractions.keep_marking(redis), name="retraction-log-marker")
        app.state.worker = worker
        app.state.task = task
        try:
            yield
        finally:
            task.cancel()
            marking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(asyncio.CancelledError):
                await marking
            try:
                await worker.commit_pending()  # what was applied, so that a restart does not replay it
            except Exception:
                log.warning("could not commit the applied offsets before stopping", exc_info=True)
            await worker.consumer.stop()
            await online.stop()


app = FastAPI(title="Kicau fanout service", lifespan=lifespan)


install_common(app, service="fanout", readiness=[redis_ready(app), cassandra_ready(app), worker_running(app)])
