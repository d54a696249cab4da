"""Web push: Mastodon's push subscriptions (`/api/v1/push/subscription`), the notices the fanout hands to the
push service, and how a notice becomes an encrypted, signed request to a subscription's endpoint.

A subscription belongs to one access token (Mastodon: one per app session); it names an endpoint (the push
service of the user's browser or phone), the receiver's P-256 public key and auth secret, which notification
types it wants (``alerts``) and from whom (``policy``). The payload is encrypted to the receiver (RFC 8291's
``aes128gcm`` for a ``standard`` subscription, else the older ``aesgcm`` draft Mastodon has always sent and
clients such as Mastodon.py decrypt) and the request signed with the instance's VAPID key (RFC 8292).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import http_ece
import msgspec
from aiokafka import AIOKafkaProducer
from cassandra.cluster import Session
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute
from kicau.follower_lists import forget_versions

# The alerts a subscription may ask for, in Mastodon's order; each is false unless asked for.
ALERTS: Final = ("mention", "status", "reblog", "follow", "follow_request", "favourite", "poll", "update",
                 "admin.sign_up", "admin.report", "quote", "quoted_update")
# Whose notifications are pushed: anyone's, of accounts the user follows, of its followers, nobody's.
POLICIES: Final = ("all", "followed", "follower", "none")
DEFAULT_POLICY: Final = "all"

MAX_ENDPOINT_LENGTH: Final = 2048
P256_POINT_BYTES: Final = 65  # an uncompressed point: 0x04, x, y
AUTH_SECRET_BYTES: Final = 16
# How long a push service keeps a notice for a receiver that is offline (Mastodon's: two days).
PUSH_TTL_SECONDS: Final = 48 * 3600
VAPID_TOKEN_SECONDS: Final = 12 * 3600  # RFC 8292 allows at most 24 hours


class PushNotice(msgspec.Struct, frozen=True):
    """One accepted notification (kicau/notifications.py's ``Notification``), as the push service reads it."""

    account_id: int
    notification_id: int
    type: str
    from_account_id: int
    status_id: int | None = None
    occurred_at: float = 0.0  # wall-clock ms when its cause was accepted


_encode_notice = msgspec.json.Encoder().encode
_decode_notice = msgspec.json.Decoder(PushNotice).decode


def encode_notice(notice: PushNotice) -> bytes:
    return _encode_notice(notice)


def decode_notice(raw: bytes) -> PushNotice:
    """Raises msgspec.DecodeError / ValidationError on anything malformed."""
    return _decode_notice(raw)


class NoticeHandOver:
    """The fanout's side of the notices topic: each notice keyed by its notified account (one account's notices
    stay in order), every send of a batch awaited together (acks=all) before the batch's offsets are committed."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def hand_over(self, notices: Iterable[PushNotice]) -> None:
        sent = [await self._producer.send(self._topic, encode_notice(n), key=str(n.account_id).encode())
                for n in notices]
        await asyncio.gather(*sent)


class Subscription(msgspec.Struct, frozen=True):
    id: int
    account_id: int
    token_hash: str
    endpoint: str
    p256dh: str  # base64url, no padding
    auth: str
    alerts: frozenset[str]
    policy: str
    standard: bool

    def wants(self, notification_type: str) -> bool:
        return notification_type in self.alerts


def from_row(row: dict[str, Any]) -> Subscription:
    """A subscription as Cassandra's ``push_subscriptions`` keeps it."""
    alerts: Iterable[str] = row["alerts"] or ()
    return Subscription(
        id=int(row["id"]), account_id=int(row["account_id"]), token_hash=str(row["token_hash"]),
        endpoint=str(row["endpoint"]), p256dh=str(row["p256dh"]), auth=str(row["auth"]),
        alerts=frozenset(str(a) for a in alerts), policy=str(row["policy"] or DEFAULT_POLICY),
        standard=bool(row["standard"]),
    )



def entity(subscription: Subscription, server_key: str) -> dict[str, Any]:
    """Mastodon's WebPushSubscription entity."""
    return {
        "id": str(subscription.id),
        "endpoint": subscription.endpoint,
        "standard": subscription.standard,
        "alerts": {alert: alert in subscription.alerts for alert in ALERTS},
        "server_key": server_key,
        "policy": subscription.policy,
    }


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_b64(text: str) -> bytes | None:
    """A key as clients send it: browsers in base64url without padding, Mastodon.py in standard base64 with it;
    None if it is neither."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        # validate: the lenient default skips characters that are not base64 rather than refusing them
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


def receiver_key_problem(p256dh: str, auth: str) -> str | None:
    """What is wrong with a subscription's keys (a 422's message), or None: the public key must be a point on
    P-256 (a key that is not cannot be encrypted to; Mastodon checks it too) and the secret 16 bytes."""
    public = decode_b64(p256dh)
    if public is None or len(public) != P256_POINT_BYTES:
        return "Validation failed: keys[p256dh] must be an uncompressed P-256 public key, base64-encoded"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
    except ValueError:
        return "Validation failed: keys[p256dh] is not a point on P-256"
    secret = decode_b64(auth)
    if secret is None or len(secret) != AUTH_SECRET_BYTES:
        return "Validation failed: keys[auth] must be 16 bytes, base64-encoded"
    return None


def endpoint_problem(endpoint: str, *, allow_insecure: bool) -> str | None:
    """What is wrong with an endpoint (a 422's message), or None. An endpoint must be an https address of a
    public host: the push service POSTs to it, and a plain-http or private address would let any user aim the
    instance's requests at its own network. ``allow_insecure`` (development and tests, whose receivers listen
    on 127.0.0.1) lifts both."""
    if not endpoint or len(endpoint) > MAX_ENDPOINT_LENGTH or any(c.isspace() for c in endpoint):
        return f"Validation failed: Endpoint must be a URL of at most {MAX_ENDPOINT_LENGTH} characters"
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
        parts.port  # noqa: B018 (a port out of range raises)
    except ValueError:
        return "Validation failed: Endpoint is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "Validation failed: Endpoint is not a valid URL"
    if allow_insecure:
        return None
    if parts.scheme != "https":
        return "Validation failed: Endpoint must use https"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")) or "." not in host:
            return "Validation failed: Endpoint must be a public host"
        return None
    if not address.is_global:
        return "Validation failed: Endpoint must be a public host"
    return None


@dataclass(frozen=True)
class VapidKey:
    """The instance's VAPID key pair (RFC 8292): every subscription is bound to its public key (the
    ``server_key`` clients are given), so it is made once and kept in Cassandra for every process."""

    private: ec.EllipticCurvePrivateKey
    public: str  # base64url of the uncompressed point, as clients and push services take it

    @classmethod
    def from_pem(cls, pem: bytes) -> VapidKey:
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ValueError("the VAPID key is not an elliptic-curve key")
        point = private.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)
        return cls(private, b64url(point))

    @classmethod
    def generate(cls) -> tuple[VapidKey, bytes]:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cls.from_pem(pem), pem

    def token(self, endpoint: str, subject: str, now: float | None = None) -> str:
        """The signed JWT (ES256) a push service checks: for the endpoint's origin, for 12 hours."""
        parts = urlsplit(endpoint)
        claims = {"aud": f"{parts.scheme}://{parts.netloc}", "exp": int((now or time.time()) + VAPID_TOKEN_SECONDS),
                  "sub": subject}
        head = b64url(b'{"typ":"JWT","alg":"ES256"}') + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
        r, s = decode_dss_signature(self.private.sign(head.encode(), ec.ECDSA(hashes.SHA256())))
        return head + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


VAPID_KEY_NAME: Final = "vapid"


async def load_vapid_key(session: Session) -> VapidKey:
    """The instance's VAPID key, made by the first process that asks (an LWT decides between two at once)."""
    read = session.prepare("SELECT value FROM instance_keys WHERE name = ?")
    rows = await execute(session, read, (VAPID_KEY_NAME,))
    if rows:
        return VapidKey.from_pem(rows[0]["value"])
    key, pem = VapidKey.generate()
    claim = session.prepare("INSERT INTO instance_keys (name, value) VALUES (?, ?) IF NOT EXISTS")
    answer = await execute(session, claim, (VAPID_KEY_NAME, pem))
    if answer[0]["[applied]"]:
        return key
    return VapidKey.from_pem(answer[0]["value"])


@dataclass(frozen=True)
class PushRequest:
    body: bytes
    headers: dict[str, str]


def encrypted_request(payload: bytes, subscription: Subscription, vapid: VapidKey, *, subject: str,
                      urgency: str = "normal") -> PushRequest:
    """The body and headers of one push: the payload encrypted to the receiver with a fresh key of our own (a
    key per message, as both encodings require), signed for the endpoint's origin."""
    receiver = decode_b64(subscription.p256dh)
    secret = decode_b64(subscription.auth)
    assert receiver is not None and secret is not None, "keys are checked when the subscription is saved"
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    jwt = vapid.token(subscription.endpoint, subject)
    headers = {"TTL": str(PUSH_TTL_SECONDS), "Urgency": urgency, "Content-Type": "application/octet-stream"}
    if subscription.standard:
        body = http_ece.encrypt(payload, private_key=ephemeral, dh=receiver, auth_secret=secret, version="aes128gcm")
        headers.update({"Content-Encoding": "aes128gcm", "Authorization": f"vapid t={jwt},k={vapid.public}"})
        return PushRequest(body, headers)
    salt = os.urandom(16)
    body = http_ece.encrypt(payload, salt=salt, private_key=ephemeral, dh=receiver, auth_secret=secret,
                            version="aesgcm")
    sender = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
    headers.update({
        "Content-Encoding": "aesgcm",
        "Encryption": f"salt={b64url(salt)}",
        "Crypto-Key": f"dh={b64url(sender)};p256ecdsa={vapid.public}",
        "Authorization": f"WebPush {jwt}",
    })
    return PushRequest(body, headers)


# What a push says, in Mastodon's English (its notification mailer's subjects).
TITLES: Final = {
    "mention": "{name} mentioned you",
    "status": "{name} just posted",
    "reblog": "{name} boosted your post",
    "follow": "{name} followed you",
    "follow_request": "Pending follower: {name}",
    "favourite": "{name} favorited your post",
    "poll": "A poll has ended",
    "update": "{name} edited a post",
    "admin.sign_up": "{name} signed up",
    "admin.report": "{name} submitted a report",
}
BODY_CHARACTERS: Final = 140


def title(notification_type: str, name: str) -> str:
    return TITLES.get(notification_type, "New notification").format(name=name)


def body_text(text: str, spoiler_text: str = "") -> str:
    """The status's text (its content warning instead, when it has one), cut to Mastodon's 140 characters."""
    shown = " ".join((spoiler_text or text).split())
    return shown if len(shown) <= BODY_CHARACTERS else shown[:BODY_CHARACTERS - 1].rstrip() + "…"


def payload(notice: PushNotice, *, title_text: str, body: str, icon: str, locale: str = "en") -> bytes:
    """Mastodon's push payload (what its web app's service worker and native clients read). Mastodon also
    sends the subscription's access token in it; Kicau keeps only tokens' hashes, so it sends none, and clients
    fetch the notification by its id with their own token."""
    return json.dumps({
        "notification_id": str(notice.notification_id),
        "notification_type": notice.type,
        "preferred_locale": locale,
        "icon": icon,
        "title": title_text,
        "body": body,
    }, ensure_ascii=False).encode()


async def forget_subscriptions(redis: Redis, account_id: int) -> None:
    """Invalidate every push service's copy of the account's subscriptions (kicau/follower_lists.py's version
    protocol): called before and after each change of them."""
    await forget_versions(redis, [keys.push_subscriptions_version(account_id)])
