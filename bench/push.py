"""A measurement by hand, not one of ``make bench``'s sections: web push throughput and latency (services/push/).

Readers subscribe through the public API (scope ``push``, mention alerts) with endpoints on a receiver of this
script's own (127.0.0.1, keep-alive HTTP/1.1, answers 201 at once); authors post statuses that mention
``--mentions`` readers each, open loop, at each ``--rates`` statuses a second for ``--seconds``. Beside it, in the
same run, the floor: this process encrypting and signing the same pushes (kicau/web_push.py) and POSTing them to
the same receiver as fast as it can (64 in flight, one aiohttp session: what the push service does for each,
without Kafka, Cassandra or the fanout). Reported: pushes a second received against those sent, the push service's
own latency histogram (the notification's cause accepted to the endpoint's answer, p50/p99), its CPU a push, and
the floor's pushes a second. A sample of the pushes is decrypted with the readers' keys to check they are theirs.

    python -m bench.push [--readers 200] [--mentions 10] [--rates 5,20,50] [--seconds 10]

The stack must be running (``make up``) with insecure push endpoints allowed (the stack's default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from dataclasses import dataclass, field

import aiohttp
import http_ece
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.common import (
    BENCH_BASE,
    GATEWAY,
    CpuMeter,
    Histogram,
    log,
    machine_info,
    scrape,
    service_pid,
)
from bench.delivery import Poster
from bench.seed import Seeder
from kicau.web_push import PushNotice, Subscription, VapidKey, b64url, encrypted_request, payload

PUSH_AUTHORS = BENCH_BASE + 7_000_000  # .. + authors
PUSH_READERS = BENCH_BASE + 7_100_000  # .. + readers
AUTHORS = 20
FLOOR_IN_FLIGHT = 64


@dataclass
class Arrivals:
    """What the receiver got: per reader, the bodies and headers of its pushes, and when each came."""

    bodies: dict[int, list[tuple[dict[str, str], bytes]]] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)

    def count(self) -> int:
        return len(self.times)


class _Receiver(asyncio.Protocol):
    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = self.buffer[:head_end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4:head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length:]
            path = lines[0].split(" ")[1]
            reader = int(path.rsplit("/", 1)[1])
            kept = self.arrivals.bodies.setdefault(reader, [])
            if len(kept) < 3:
                kept.append((headers, body))
            self.arrivals.times.append(time.monotonic())
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")


def _key() -> tuple[ec.EllipticCurvePrivateKey, str, bytes]:
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
    return private, b64url(point), os.urandom(16)


async def _subscribe(client: httpx.AsyncClient, token: str, endpoint: str, p256dh: str, auth: bytes) -> None:
    answer = await client.post("/api/v1/push/subscription", headers={"Authorization": f"Bearer {token}"}, json={
        "subscription": {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": b64url(auth)},
                         "standard": True},
        "data": {"alerts": {"mention": True}, "policy": "all"}})
    answer.raise_for_status()


async def _floor(url: str, subscriptions: list[Subscription], vapid: VapidKey, seconds: float) -> float:
    """Pushes a second this process sends to the receiver, encrypting and signing each as the push service does."""
    notice = PushNotice(account_id=1, notification_id=2, type="mention", from_account_id=3, status_id=2)
    content = payload(notice, title_text="bench mentioned you", body="a status of some length " * 3, icon=url)
    sent = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=FLOOR_IN_FLIGHT)) as client:
        async def worker(offset: int) -> None:
            nonlocal sent
            index = offset
            while time.monotonic() < deadline:
                subscription = subscriptions[index % len(subscriptions)]
                request = encrypted_request(content, subscription, vapid, subject="mailto:bench@kicau.invalid")
                async with client.post(subscription.endpoint, data=request.body, headers=request.headers) as answer:
                    answer.raise_for_status()
                sent += 1
                index += FLOOR_IN_FLIGHT
        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(FLOOR_IN_FLIGHT)))
        return sent / (time.monotonic() - started)


async def run(opts: argparse.Namespace) -> dict[str, object]:
    arrivals = Arrivals()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Receiver(arrivals), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}/r"
    readers = list(range(PUSH_READERS, PUSH_READERS + opts.readers))
    authors = list(range(PUSH_AUTHORS, PUSH_AUTHORS + AUTHORS))
    seeder = Seeder()
    try:
        reader_tokens = seeder.accounts({r: f"bench_pr_{r - PUSH_READERS}" for r in readers})
        author_tokens = seeder.accounts({a: f"bench_pa_{a - PUSH_AUTHORS}" for a in authors})
    finally:
        seeder.close()
    keys = {r: _key() for r in readers}
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as client:
        for start in range(0, len(readers), 50):
            await asyncio.gather(*(_subscribe(client, reader_tokens[r], f"{base}/{r}", keys[r][1], keys[r][2])
                                   for r in readers[start:start + 50]))
        server_key = (await client.get("/api/v2/instance")).json()["configuration"]["vapid"]["public_key"]
    log(f"push: {len(readers)} readers subscribed; receiver on :{port}")
    push_pid = service_pid("push")
    assert push_pid is not None, "the push service is not running"
    metrics_url = "http://127.0.0.1:8085/metrics"
    poster = Poster()
    rows: list[dict[str, object]] = []
    try:
        for rate in opts.rates:
            before, received_before = scrape(metrics_url), arrivals.count()
            posts = int(rate * opts.seconds)
            expected = posts * opts.mentions
            started = time.monotonic()
            with CpuMeter({"push": push_pid}) as meter:
                tasks = []
                for i in range(posts):
                    await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                    named = random.sample(readers, opts.mentions)
                    text = " ".join(f"@bench_pr_{r - PUSH_READERS}" for r in named) + f" push bench {i}"
                    tasks.append(asyncio.ensure_future(poster.post(author_tokens[authors[i % AUTHORS]], text)))
                answers = await asyncio.gather(*tasks)
                deadline = time.monotonic() + 30
                while arrivals.count() - received_before < expected and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # polled: the receiver counts, it signals nothing
            received = arrivals.count() - received_before
            window = arrivals.times[received_before:]
            span = (window[-1] - started) if window else 0.0
            latency = Histogram.read(scrape(metrics_url), "kicau_push_delivery_latency_seconds").minus(
                Histogram.read(before, "kicau_push_delivery_latency_seconds"))
            p50, p99 = latency.quantile(0.5), latency.quantile(0.99)
            row = {"statuses_per_s": rate, "pushes_expected": expected, "pushes_received": received,
                   "posts_failed": sum(1 for status, _ in answers if status != 200),
                   "pushes_per_s": round(received / span, 1) if span else None,
                   "latency_p50_ms": None if p50 is None else round(p50 * 1000, 1),
                   "latency_p99_ms": None if p99 is None else round(p99 * 1000, 1),
                   "push_cpu_us_per_push": meter.per_request_us(received).get("push")}
            log(f"push: {row}")
            rows.append(row)
    finally:
        poster.close()
    # The pushes are the readers' own: a sample decrypts with their keys, as the right notification type.
    checked = 0
    for reader, kept in list(arrivals.bodies.items())[:20]:
        for headers, body in kept:
            said = json.loads(http_ece.decrypt(body, private_key=keys[reader][0], auth_secret=keys[reader][2],
                                               version="aes128gcm"))
            assert said["notification_type"] == "mention", said
            assert headers["authorization"].endswith(f",k={server_key}")
            checked += 1
    vapid, _ = VapidKey.generate()
    subscriptions = [Subscription(id=r, account_id=r, token_hash="", endpoint=f"{base}/{r}", p256dh=keys[r][1],
                                  auth=b64url(keys[r][2]), alerts=frozenset({"mention"}), policy="all",
                                  standard=True) for r in readers]
    floor = await _floor(base, subscriptions, vapid, opts.seconds)
    log(f"push: floor {floor:.0f} pushes/s; {checked} pushes decrypted and checked")
    server.close()
    return {"machine": machine_info(), "rows": rows, "floor_pushes_per_s": round(floor, 1), "decrypted": checked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--mentions", type=int, default=10)
    parser.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=[5.0, 20.0, 50.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
