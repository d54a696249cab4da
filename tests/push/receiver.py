"""A push service of the tests' own (a receiver on this host) and a subscriber's side of web push: its keys,
subscribing through the public API, decrypting what arrives, and checking the instance's VAPID signature."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.conftest import User


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.monotonic() as it arrived


@dataclass
class Receiver:
    """A push service of our own: records every push and answers each path's status (201 unless told), after
    answering 503 to as many of its first pushes as told (``failing_first``)."""

    url: str
    pushes: queue.Queue[Received] = field(default_factory=queue.Queue)
    answers: dict[str, int] = field(default_factory=dict)
    failing: dict[str, int] = field(default_factory=dict)

    def endpoint(self, status: int = 201, failing_first: int = 0) -> str:
        path = f"/push/{uuid.uuid4().hex}"
        self.answers[path] = status
        self.failing[path] = failing_first
        return self.url + path

    def answer_to(self, path: str) -> int:
        if self.failing.get(path, 0) > 0:
            self.failing[path] -= 1
            return 503
        return self.answers.get(path, 201)

    def next_for(self, endpoint: str, timeout: float = 30.0) -> Received:
        """The next push to ``endpoint`` (pushes to others are put back for their own tests)."""
        path = endpoint.removeprefix(self.url)
        deadline = time.monotonic() + timeout
        others: list[Received] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no push reached {path} within {timeout}s")
                try:
                    got = self.pushes.get(timeout=left)
                except queue.Empty:
                    continue
                if got.path == path:
                    return got
                others.append(got)
        finally:
            for other in others:
                self.pushes.put(other)


    def assert_quiet(self, endpoint: str, seconds: float) -> None:
        """No (further) push reaches ``endpoint`` within ``seconds``."""
        try:
            extra = self.next_for(endpoint, timeout=seconds)
        except AssertionError:
            return
        raise AssertionError(f"an unexpected push reached {extra.path}")


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 (a free port) while the block runs."""
    holder: dict[str, Receiver] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            own = holder["receiver"]
            with lock:
                status = own.answer_to(self.path)
            own.pushes.put(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                    time.monotonic()))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["receiver"]
    server.shutdown()


@dataclass
class Keys:
    """A subscriber's keys, as a browser makes them."""

    private: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> Keys:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> str:
        point = self.private.public_key().public_bytes(serialization.Encoding.X962,
                                                       serialization.PublicFormat.UncompressedPoint)
        return base64.urlsafe_b64encode(point).rstrip(b"=").decode()

    @property
    def auth_text(self) -> str:
        return base64.urlsafe_b64encode(self.auth).rstrip(b"=").decode()


def b64_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def subscribe(http: httpx.Client, user: User, endpoint: str, keys: Keys, alerts: tuple[str, ...] = ("mention",),
              policy: str = "all", standard: bool = True) -> dict[str, Any]:
    answer = http.post("/api/v1/push/subscription", headers=user.auth, json={
        "subscription": {"endpoint": endpoint, "keys": {"p256dh": keys.p256dh, "auth": keys.auth_text},
                         "standard": standard},
        "data": {"alerts": {alert: True for alert in alerts}, "policy": policy},
    })
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def decrypted(push: Received, keys: Keys) -> dict[str, Any]:
    """The payload, decrypted as the subscriber does, by the encoding the push names."""
    encoding = push.headers["content-encoding"]
    if encoding == "aes128gcm":
        plain = http_ece.decrypt(push.body, private_key=keys.private, auth_secret=keys.auth, version="aes128gcm")
    else:
        assert encoding == "aesgcm"
        salt = b64_bytes(push.headers["encryption"].removeprefix("salt="))
        dh = b64_bytes(push.headers["crypto-key"].split(";")[0].removeprefix("dh="))
        plain = http_ece.decrypt(push.body, salt=salt, private_key=keys.private, dh=dh, auth_secret=keys.auth,
                                 version="aesgcm")
    return dict(json.loads(plain))


def verify_vapid(jwt: str, server_key: str, audience: str) -> dict[str, Any]:
    """The JWT's ES256 signature checked against the instance's key (as a push service does); its claims."""
    head, claims, signature = jwt.split(".")
    raw = b64_bytes(signature)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64_bytes(server_key))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        pytest.fail("the VAPID signature does not verify with the instance's key")
    assert json.loads(b64_bytes(head)) == {"typ": "JWT", "alg": "ES256"}
    decoded = dict(json.loads(b64_bytes(claims)))
    assert decoded["aud"] == audience
    assert decoded["exp"] > time.time() + 3600
    assert decoded["sub"].startswith(("mailto:", "https:"))
    return decoded


def mention(http: httpx.Client, author: User, target: User, text: str = "hello") -> dict[str, Any]:
    posted = http.post("/api/v1/statuses", headers=author.auth, json={"status": f"@{target.username} {text}"})
    assert posted.status_code == 200, posted.text
    return dict(posted.json())
