"""Web push's pure parts (kicau/web_push.py): what an endpoint and keys may be, what a push says, and that its
encryption and signature are what a receiver and a push service check (the end-to-end tests: tests/push/)."""

from __future__ import annotations

import base64
import json

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kicau.web_push import (
    BODY_CHARACTERS,
    PushNotice,
    Subscription,
    VapidKey,
    body_text,
    decode_b64,
    decode_notice,
    encode_notice,
    encrypted_request,
    endpoint_problem,
    receiver_key_problem,
    title,
)


@pytest.mark.parametrize("endpoint", [
    "https://fcm.googleapis.com/fcm/send/abc:def", "https://updates.push.services.mozilla.com/wpush/v2/gAAA",
    "https://push.example:8443/x?y=z", "https://8.8.8.8/push",
])
def test_public_https_endpoints_are_taken(endpoint: str) -> None:
    assert endpoint_problem(endpoint, allow_insecure=False) is None


@pytest.mark.parametrize("endpoint", [
    "http://push.example/x", "https://127.0.0.1/x", "https://10.1.2.3/x", "https://[::1]/x", "https://localhost/x",
    "https://metadata.internal/x", "https://169.254.169.254/latest", "https://intranet/x", "ftp://push.example/x",
    "https://", "push.example/x", "", "https://push.example/a b", "https://push.example:99999/x",
    "https://push.example/" + "x" * 2048,
])
def test_other_endpoints_are_refused(endpoint: str) -> None:
    assert endpoint_problem(endpoint, allow_insecure=False) is not None


def test_a_development_stack_may_push_to_its_own_host() -> None:
    assert endpoint_problem("http://127.0.0.1:9999/push", allow_insecure=True) is None
    assert endpoint_problem("ftp://127.0.0.1/push", allow_insecure=True) is not None


def _keys() -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return private, point, b"0123456789abcdef"


def test_keys_are_read_in_either_base64() -> None:
    _, point, secret = _keys()
    for encode in (base64.urlsafe_b64encode, base64.b64encode):
        text = encode(point).decode()
        assert decode_b64(text) == point and decode_b64(text.rstrip("=")) == point
        assert receiver_key_problem(text, encode(secret).decode()) is None
    assert decode_b64("!!!") is None
    assert receiver_key_problem(base64.b64encode(b"\x04" + bytes(64)).decode(), "MDEyMzQ1Njc4OWFiY2RlZg")
    assert receiver_key_problem(base64.b64encode(point).decode(), "c2hvcnQ")


def _subscription(point: bytes, secret: bytes, standard: bool) -> Subscription:
    return Subscription(id=1, account_id=2, token_hash="0" * 64, endpoint="https://push.example/x",
                        p256dh=base64.urlsafe_b64encode(point).decode().rstrip("="),
                        auth=base64.b64encode(secret).decode(), alerts=frozenset({"mention"}), policy="all",
                        standard=standard)


@pytest.mark.parametrize("standard", [True, False])
def test_a_push_decrypts_with_the_receivers_key_only(standard: bool) -> None:
    private, point, secret = _keys()
    vapid, _ = VapidKey.generate()
    request = encrypted_request(b'{"title":"hi"}', _subscription(point, secret, standard), vapid,
                                subject="mailto:admin@kicau.test")
    if standard:
        plain = http_ece.decrypt(request.body, private_key=private, auth_secret=secret, version="aes128gcm")
    else:
        salt = decode_b64(request.headers["Encryption"].removeprefix("salt="))
        dh = decode_b64(request.headers["Crypto-Key"].split(";")[0].removeprefix("dh="))
        plain = http_ece.decrypt(request.body, salt=salt, private_key=private, dh=dh, auth_secret=secret,
                                 version="aesgcm")
    assert plain == b'{"title":"hi"}'
    assert b"title" not in request.body
    stranger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Exception):  # noqa: B017 (http_ece raises the cipher's InvalidTag)
        http_ece.decrypt(request.body, private_key=stranger, auth_secret=secret, version="aes128gcm",
                         **({} if standard else {"salt": b"x" * 16, "dh": point}))


def test_the_vapid_key_survives_its_storage() -> None:
    key, pem = VapidKey.generate()
    again = VapidKey.from_pem(pem)
    assert again.public == key.public and len(decode_b64(key.public) or b"") == 65
    token = key.token("https://push.example:8443/some/path", "mailto:a@b.test", now=1_000_000.0)
    claims = json.loads(decode_b64(token.split(".")[1]) or b"")
    assert claims == {"aud": "https://push.example:8443", "exp": 1_000_000 + 12 * 3600, "sub": "mailto:a@b.test"}


def test_what_a_push_says() -> None:
    assert title("mention", "Ana") == "Ana mentioned you"
    assert title("favourite", "Ana") == "Ana favorited your post"
    assert title("something-new", "Ana") == "New notification"
    assert body_text("  many\n\nlines  here ") == "many lines here"
    assert body_text("the text", "a content warning") == "a content warning"
    long = body_text("word " * 100)
    assert len(long) == BODY_CHARACTERS and long.endswith("…")


def test_notices_cross_kafka_unchanged() -> None:
    notice = PushNotice(account_id=1, notification_id=2, type="mention", from_account_id=3, status_id=2,
                        occurred_at=12.5)
    assert decode_notice(encode_notice(notice)) == notice
