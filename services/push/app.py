"""Lifecycle of the push service: its consumer of the fanout's notices, plus /healthz, /readyz and /metrics.

The loop: fetch a batch of notices, push them (services/push/service.py), commit the batch's offsets. A batch
that fails on Redis or Cassandra is held and retried, never skipped; an endpoint that fails does not fail the
batch (its push is retried inside the sender, then kept for later rounds: services/push/later.py, tried by a
second loop each second). A crash replays the uncommitted batch, and pushes already delivered are not sent again
(``keys.push_sent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from fastapi import FastAPI

from kicau import clients
from kicau.account_cards import AccountCards
from kicau.metrics import PUSH_CONSUMER_LAG, PUSH_LATER_WAITING
from kicau.notification_policies import Relations
from kicau.settings import CommonSettings
from kicau.web import cassandra_ready, install_common, redis_ready
from kicau.web_push import PushNotice, decode_notice, load_vapid_key
from kicau.workers import exit_if_it_dies, until_done, worker_running
from services.push.later import TAKEN_AT_ONCE, LaterPushes
from services.push.sender import PushSender
from services.push.service import Pusher
from services.push.settings import PushSettings

log = logging.getLogger(__name__)

COMMIT_SECONDS = 10.0
LATER_POLL_SECONDS = 1.0


async def consume(consumer: AIOKafkaConsumer, pusher: Pusher, max_batch: int) -> None:
    while True:
        batch = await consumer.getmany(timeout_ms=1000, max_records=max_batch)
        if not batch:
            continue
        notices: list[PushNotice] = []
        for records in batch.values():
            for record in records:
                try:
                    notices.append(decode_notice(record.value or b""))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    log.error("skipping a malformed notice at %s:%d", record.topic, record.offset)
        await until_done(functools.partial(pusher.push, notices), f"pushing a batch of {len(notices)} notices")
        try:
            async with asyncio.timeout(COMMIT_SECONDS):
                await consumer.commit()
        except (KafkaError, TimeoutError):
            # Kept for the next commit; a crash before it replays the batch, which pushes nothing twice.
            log.warning("committing the push offsets failed", exc_info=True)
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                with contextlib.suppress(Exception):
                    PUSH_CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                        max(0, highwater - await consumer.position(tp)))


async def retry_later_rounds(pusher: Pusher, later: LaterPushes) -> None:
    """Each second, the later rounds that are due; a failure (Redis, Cassandra) is logged and tried again."""
    while True:
        try:
            while await pusher.retry_due() >= TAKEN_AT_ONCE:
                pass
            PUSH_LATER_WAITING.set(await later.waiting())
        except Exception:
            log.warning("trying the later rounds of pushes failed; trying again", exc_info=True)
        await asyncio.sleep(LATER_POLL_SECONDS)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    common = CommonSettings()
    own = PushSettings()
    async with clients.engines(common, name="push") as engines:
        redis, session = engines.redis, engines.session
        app.state.redis, app.state.session = redis, session  # what the readiness checks ask
        sender = PushSender(timeout=own.timeout_seconds, attempts=own.attempts,
                            allow_insecure=common.push_allow_insecure_endpoints)
        later = LaterPushes(redis, rounds=own.later_rounds, first_seconds=own.later_first_seconds)
        pusher = Pusher(session=session, redis=redis, sender=sender, vapid=await load_vapid_key(session),
                        cards=AccountCards(redis, session, common.public_url), relations=Relations(session),
                        write_consistency=clients.write_consistency(common),
                        contact=own.contact or f"mailto:admin@{common.instance_domain}",
                        concurrency=own.concurrency, later=later)
        consumer = clients.kafka_consumer(common, common.kafka_notices_topic, group_id=own.group_id,
                                          max_poll_records=own.max_batch)
        await consumer.start()
        task = asyncio.create_task(consume(consumer, pusher, own.max_batch), name="push-worker")
        exit_if_it_dies(task, "push")
        retrying = asyncio.create_task(retry_later_rounds(pusher, later), name="push-later-rounds")
        exit_if_it_dies(retrying, "push (later rounds)")
        app.state.task = task
        try:
            yield
        finally:
            for running in (task, retrying):
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            await consumer.stop()
            await sender.close()


app = FastAPI(title="Kicau push service", lifespan=lifespan)


install_common(app, service="push", readiness=[redis_ready(app), cassandra_ready(app), worker_running(app)])
