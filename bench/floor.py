"""The floor under the gateway targets: what a home page and a post cost when they cross the same hops as in
Kicau, through the same machinery, with none of Kicau's own work.

Two processes, served like every service (``kicau.serve.run``, hot routes of ``kicau.hot_routes``):

* the **front** stands where the gateway does: per request one Redis round trip shaped like the rate limiter's
  (a GET of a token-sized value, INCR and EXPIRE of a counter), then the request relayed to the back through
  the gateway's own upstream client (``services.gateway.upstreams.upstream``: on a call socket when the back
  answers on one, as the stack's services do), whose answer it passes on;
* the **back** stands where the timeline and post services do. ``GET /home`` reads the keys a real home page
  reads (the status cache entries of a page and, last, their author's card, from ``--page-keys``) in one round
  trip and answers each status value followed by the card, joined unparsed: an answer as large as the real
  page, whose statuses each embed their author. ``POST /post`` reads the body, writes one row to Cassandra and
  sends one event to Kafka (``acks=all``, the services' idempotent producer), each awaited as a post's
  writes are, and answers a status-sized body.

So the floor has the page's bytes and a post's durable writes, and leaves out everything else: no token
decoding or scope checks, no pagination or Link header, no timeline range read before the cards, no
composing of statuses, no counters or caches written, no second Cassandra statement. A ratio to hello world
Kicau cannot reach even at its floor is a limit of the design on the machine, not of the code.

    python -m bench.floor --port 9001 --page-keys FILE     # the back
    python -m bench.floor --port 9002 --back http://127.0.0.1:9001   # the front
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope

from kicau import resp
from kicau.hot_routes import Answer, ServiceApp, read_body

KEYSPACE = "kicau_bench"
TABLE = "floor_writes"
TOPIC = "kicau.bench.floor"
ROW_SECONDS = 3600  # the floor's rows and events are scratch: gone within the hour
STATUS_ANSWER = b'{"floor":"' + b"s" * 1500 + b'"}'  # about the size of a posted status's answer
TOKEN_VALUE = b'{"account_id":1,"client_id":"' + b"c" * 43 + b'","scopes":["read","write","follow"]}'
TOKEN_KEY = "bench:floor:token"
COUNTER_KEY = "bench:floor:count"

_state: dict[str, Any] = {}


def _page_reads(page_keys: Path) -> list[bytes]:
    return [resp.get(key) for key in page_keys.read_text().split()]


async def _start_back(page_keys: Path) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from kicau.clients import cassandra_session, kafka_producer
    from kicau.settings import CommonSettings

    settings = CommonSettings()
    _state["page"] = _page_reads(page_keys)
    # The card as it is now: the bench starts the floor right after reading the readers' pages, so it is cached.
    # Kicau's copies keep serving it while its Redis entry may expire before the floor's first request; without
    # it, a floor round that met the card gone answered 503 throughout (2026-12-06 12:57Z: a round's 99,448
    # requests, and its two retries).
    card = (await resp.round_trip(_state["redis"], _state["page"][-1:]))[0]
    if card is not None:
        _state["card"] = card
    session = cassandra_session(settings)
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.{TABLE} (id bigint PRIMARY KEY, body text) "
                    f"WITH default_time_to_live = {ROW_SECONDS}")
    # Emptied on every start: rows that expired stay behind as tombstones for days (gc_grace_seconds), and after
    # a few bench runs a read of the table (tests/bench/test_floor.py counts it) met more than Cassandra's
    # tombstone limit and failed. The floor only writes; nothing of an earlier run is needed.
    session.execute(f"TRUNCATE {KEYSPACE}.{TABLE}", timeout=60)
    _state["session"] = session
    _state["insert"] = session.prepare(f"INSERT INTO {KEYSPACE}.{TABLE} (id, body) VALUES (?, ?)")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 6, 1, topic_configs={"retention.ms": str(ROW_SECONDS * 1000)})])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    producer = kafka_producer(settings)
    await producer.start()
    _state["producer"] = producer


@asynccontextmanager
async def _lifespan(_: ServiceApp) -> AsyncIterator[None]:
    from kicau.clients import close_cassandra, redis_client
    from kicau.settings import CommonSettings
    from services.gateway.upstreams import upstream

    _state["redis"] = redis = redis_client(CommonSettings(), name="bench-floor")
    back = os.environ.get("KICAU_BENCH_FLOOR_BACK")
    if back:
        await redis.set(TOKEN_KEY, TOKEN_VALUE, ex=ROW_SECONDS)
        _state["back"] = upstream(back, timeout=10.0, connections=128)
    else:
        await _start_back(Path(os.environ["KICAU_BENCH_FLOOR_PAGE_KEYS"]))
    try:
        yield
    finally:
        if "producer" in _state:
            await _state["producer"].stop()
        if "session" in _state:
            close_cassandra(_state["session"])
        if "back" in _state:
            await _state["back"].aclose()
        await redis.aclose()


app = ServiceApp(service="bench_floor", lifespan=_lifespan)

_ADMIT = [resp.get(TOKEN_KEY), resp.command(b"INCR", COUNTER_KEY.encode()),
          resp.command(b"EXPIRE", COUNTER_KEY.encode(), b"%d" % ROW_SECONDS)]


async def _relay(method: str, path: str, body: bytes | None) -> Answer:
    # The back's route of the same name.
    await resp.round_trip(_state["redis"], _ADMIT, attempts=1)
    answer = await _state["back"].call(method, path, json=None if body is None else {"status": body.decode()})
    return Answer(answer.content, answer.status_code)


async def home(scope: Scope, receive: Receive) -> Answer:
    if "back" in _state:
        return await _relay("GET", "/home", None)
    *statuses, card = await resp.round_trip(_state["redis"], _state["page"])
    if card is None:
        # The card expired (account cards live ~5 minutes): Kicau would load it again from Cassandra; the floor
        # answers the bytes it last read, as every request of a run failed once it was gone.
        card = _state.get("card")
        if card is None:
            return Answer(b'{"error":"the page\'s account card is not cached"}', 503)
    else:
        _state["card"] = card
    return Answer(b"[" + b",".join([status + card for status in statuses if status is not None]) + b"]")


async def post(scope: Scope, receive: Receive) -> Answer:
    body = await read_body(receive, 64 * 1024)
    if "back" in _state:
        return await _relay("POST", "/post", body)
    from kicau.clients import execute

    row = random.getrandbits(62)
    await execute(_state["session"], _state["insert"], (row, body.decode()))
    await _state["producer"].send_and_wait(TOPIC, body, key=b"%d" % (row % 1024))
    return Answer(STATUS_ANSWER)


async def post_to_log(scope: Scope, receive: Receive) -> Answer:
    """``POST /post_to_log``: the floor of a design that accepts a status once Kafka has it (``acks=all``) and
    writes Cassandra from a consumer later, off the request: the same hops and publish as ``/post``, no insert.
    Not one of ``make bench``'s targets; measured by hand when that design is weighed (bench/README.md)."""
    body = await read_body(receive, 64 * 1024)
    if "back" in _state:
        return await _relay("POST", "/post_to_log", body)
    await _state["producer"].send_and_wait(TOPIC, body, key=b"%d" % random.getrandbits(10))
    return Answer(STATUS_ANSWER)


async def hello(scope: Scope, receive: Receive) -> Answer:
    return Answer(b'{"floor":"up"}')


app.hot_routes.add("GET", "/home", home)
app.hot_routes.add("POST", "/post", post)
app.hot_routes.add("POST", "/post_to_log", post_to_log)
app.hot_routes.add("GET", "/hello", hello)


def main() -> None:
    from kicau.serve import run

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    role = parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--back", help="the front: relay to the back at this URL")
    role.add_argument("--page-keys", type=Path, help="the back: the Redis keys one home page reads, one a line")
    parser.add_argument("--call-socket", default="",
                        help="also answer calls on this Unix socket (kicau/internal_rpc.py, as the services do)")
    args = parser.parse_args()
    # Read by the lifespan in the process uvicorn imports the application into.
    if args.back:
        os.environ["KICAU_BENCH_FLOOR_BACK"] = args.back
    else:
        os.environ["KICAU_BENCH_FLOOR_PAGE_KEYS"] = str(args.page_keys.resolve())
    run("bench.floor:app", host="127.0.0.1", port=args.port, call_socket=args.call_socket)


if __name__ == "__main__":
    main()
