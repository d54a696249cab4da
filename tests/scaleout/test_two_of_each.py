"""Scale-out on one machine: two fanout workers in one consumer group and two gateways behind a round-robin
balancer, under a burst of posts. Nothing is lost, nothing duplicated, and every stream — whichever gateway
holds it — receives exactly the events of its own user."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from stack.procs import free_port
from tests.conftest import GATEWAY, User, eventually
from tests.timeline.test_home_invariant import home_ids

ROOT = Path(__file__).resolve().parents[2]
READERS = 12
POSTS = 120



def start_service(name: str, port: int, log_name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, f"KICAU_{name.upper()}_PORT": str(port)}
    log = open(ROOT / ".stack" / "services" / log_name, "wb")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


class RoundRobin:
    """A TCP balancer on loopback: each new connection goes to the next backend."""

    def __init__(self, backends: list[int]) -> None:
        self.port = free_port()
        self._backends = itertools.cycle(backends)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RoundRobin:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def cancel_connections() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(cancel_connections(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", next(self._backends))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(Exception):
                sink.close()

        await asyncio.gather(pipe(reader, backend_writer), pipe(backend_reader, writer))


@pytest.fixture(scope="module")
def second_fanout_and_gateway() -> Iterator[int]:
    fanout_port, gateway_port = free_port(), free_port()
    processes = [start_service("fanout", fanout_port, "fanout-second.log"),
                 start_service("gateway", gateway_port, "gateway-second.log")]
    try:
        for port in (fanout_port, gateway_port):
            eventually(lambda p=port: httpx.get(f"http://127.0.0.1:{p}/readyz", timeout=2).status_code == 200,  # type: ignore[misc]
                       timeout=120, interval=0.5)
        yield gateway_port
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def collect(url: str, user: User, want: int, into: dict[str, list[str]], opened: threading.Event) -> None:
    with httpx.Client(timeout=httpx.Timeout(60, read=60)) as client, \
            client.stream("GET", f"{url}/api/v1/streaming/user", headers=user.auth) as stream:
        assert stream.status_code == 200
        opened.set()
        seen: list[str] = into.setdefault(user.id, [])
        frame: dict[str, str] = {}
        for line in stream.iter_lines():
            if line == "":
                if frame.get("event") == "update":
                    seen.append(frame["id"])
                    if len(seen) >= want:
                        return
                frame = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                frame[key] = value


@pytest.mark.timeout(600)
def test_two_fanouts_two_gateways_no_loss_every_stream_served(
    http: httpx.Client, make_user: Callable[..., User], second_fanout_and_gateway: int
) -> None:
    author = make_user("so")
    readers = [make_user("sr") for _ in range(READERS)]
    main_port = int(GATEWAY.rsplit(":", 1)[1])
    with RoundRobin([main_port, second_fanout_and_gateway]) as balancer:
        url = f"http://127.0.0.1:{balancer.port}"
        for reader in readers:
            assert httpx.post(f"{url}/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
        received: dict[str, list[str]] = {}
        opened = [threading.Event() for _ in readers]
        listeners = [threading.Thread(target=collect, args=(url, r, POSTS, received, o), daemon=True)
                     for r, o in zip(readers, opened, strict=True)]
        for listener in listeners:
            listener.start()
        for event in opened:
            assert event.wait(30)

        def post(n: int) -> str:
            with httpx.Client(base_url=url, timeout=30) as client:
                answer = client.post("/api/v1/statuses", headers=author.auth, json={"status": f"scale {n}"})
                assert answer.status_code == 200, answer.text
                return str(answer.json()["id"])

        with ThreadPoolExecutor(8) as pool:
            posted = list(pool.map(post, range(POSTS)))
        for listener in listeners:
            listener.join(timeout=120)

    assert len(set(posted)) == POSTS
    for reader in readers:
        got = received.get(reader.id, [])
        assert sorted(got) == sorted(posted), f"{reader.username}: {len(got)} events, {len(set(got))} distinct"
    newest_first = sorted(posted, key=int, reverse=True)
    for reader in readers[:3]:
        eventually(lambda r=reader: home_ids(http, r) == newest_first)  # type: ignore[misc]
