"""Web push end to end: subscriptions through the public API, notifications pushed by the running push service
to a receiver on this host, decrypted here with the subscriber's private key as a browser would."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from mastodon import Mastodon

from kicau.web_push import ALERTS, PushNotice, encode_notice
from stack.services import by_name, service_env
from tests.conftest import User, eventually, narrow_token
from tests.faults.harness import metric_value
from tests.graph.test_admin import accounts_tool
from tests.push.receiver import Keys, Receiver, b64_bytes, decrypted, mention, running_receiver, subscribe, verify_vapid


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def test_a_subscription_is_made_read_changed_and_removed(http: httpx.Client, make_user: Callable[..., User],
                                                         receiver: Receiver, app_credentials: dict[str, Any]) -> None:
    user = make_user("push")
    missing = http.get("/api/v1/push/subscription", headers=user.auth)
    assert missing.status_code == 404 and missing.json() == {"error": "Record not found"}

    endpoint = receiver.endpoint()
    made = subscribe(http, user, endpoint, Keys.new(), alerts=("mention", "follow"), policy="followed")
    assert made["endpoint"] == endpoint and made["policy"] == "followed" and made["standard"] is True
    assert set(made["alerts"]) == set(ALERTS)
    assert [a for a, on in made["alerts"].items() if on] == ["mention", "follow"]
    # The key every client gets, wherever it asks.
    instance = http.get("/api/v2/instance").json()
    assert made["server_key"] == instance["configuration"]["vapid"]["public_key"]
    assert len(b64_bytes(made["server_key"])) == 65
    assert http.get("/api/v1/push/subscription", headers=user.auth).json() == made

    # PUT replaces the alerts and the policy, as Mastodon's does.
    changed = http.put("/api/v1/push/subscription", headers=user.auth,
                       data={"data[alerts][favourite]": "true", "data[alerts][mention]": "1"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["id"] == made["id"] and body["policy"] == "all"
    assert sorted(a for a, on in body["alerts"].items() if on) == ["favourite", "mention"]

    # Subscribing again replaces it (a new id); another token of the same user has its own.
    again = subscribe(http, user, receiver.endpoint(), Keys.new())
    assert again["id"] != made["id"]
    other_token = narrow_token(http, app_credentials, user, "push")
    assert http.get("/api/v1/push/subscription", headers=other_token).status_code == 404

    removed = http.delete("/api/v1/push/subscription", headers=user.auth)
    assert removed.status_code == 200 and removed.json() == {}
    assert http.get("/api/v1/push/subscription", headers=user.auth).status_code == 404
    assert http.delete("/api/v1/push/subscription", headers=user.auth).status_code == 200
    assert http.put("/api/v1/push/subscription", headers=user.auth,
                    json={"data": {"alerts": {"mention": True}}}).status_code == 404


def test_a_mention_is_pushed_encrypted_and_signed(http: httpx.Client, make_user: Callable[..., User],
                                                  receiver: Receiver) -> None:
    user, author = make_user("pushed"), make_user("mentioner")
    http.patch("/api/v1/accounts/update_credentials", headers=author.auth, data={"display_name": "Ana Mentions"})
    keys = Keys.new()
    endpoint = receiver.endpoint()
    made = subscribe(http, user, endpoint, keys)
    status = mention(http, author, user, "are you there? " + "x" * 200)

    push = receiver.next_for(endpoint)
    assert push.headers["content-encoding"] == "aes128gcm"
    assert push.headers["ttl"] == str(48 * 3600)
    scheme, _, credentials = push.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    parts = dict(part.split("=", 1) for part in credentials.split(","))
    assert parts["k"] == made["server_key"]
    verify_vapid(parts["t"], made["server_key"], receiver.url)

    said = decrypted(push, keys)
    listed = eventually(lambda: http.get("/api/v1/notifications", headers=user.auth).json())
    assert said["notification_id"] == listed[0]["id"] and listed[0]["status"]["id"] == status["id"]
    assert said["notification_type"] == "mention"
    assert said["title"] == "Ana Mentions mentioned you"
    assert said["body"].startswith(f"@{user.username} are you there? xxx") and len(said["body"]) == 140
    assert said["icon"].endswith("/avatars/original/missing.png")
    assert "access_token" not in said  # Kicau keeps only tokens' hashes (kicau/web_push.py)


def test_a_disabled_account_is_pushed_nothing_until_enabled(http: httpx.Client, make_user: Callable[..., User],
                                                            receiver: Receiver) -> None:
    """Staff disabling an account (its tokens refused) stops its pushes too, and enabling it gives them back: the
    push services read its subscriptions afresh with its standing (services/push/service.py)."""
    user, author = make_user("pdis"), make_user("pdis_a")
    keys = Keys.new()
    endpoint = receiver.endpoint()
    subscribe(http, user, endpoint, keys)
    mention(http, author, user, "before")
    assert decrypted(receiver.next_for(endpoint), keys)["body"] == f"@{user.username} before"
    accounts_tool("disable", user.username)
    mention(http, author, user, "while disabled")
    receiver.assert_quiet(endpoint, seconds=4.0)
    accounts_tool("enable", user.username)
    mention(http, author, user, "after")
    assert decrypted(receiver.next_for(endpoint), keys)["body"] == f"@{user.username} after"
    receiver.assert_quiet(endpoint, seconds=1.0)


def test_the_older_aesgcm_encoding_for_a_follow(http: httpx.Client, make_user: Callable[..., User],
                                                receiver: Receiver) -> None:
    user, follower = make_user("followed"), make_user("follower")
    http.patch("/api/v1/accounts/update_credentials", headers=follower.auth,
               data={"note": "I <3 <b>birds</b>\nand bees"})
    keys = Keys.new()
    endpoint = receiver.endpoint()
    made = subscribe(http, user, endpoint, keys, alerts=("follow",), standard=False)
    assert http.post(f"/api/v1/accounts/{user.id}/follow", headers=follower.auth).status_code == 200

    push = receiver.next_for(endpoint)
    assert push.headers["content-encoding"] == "aesgcm"
    assert push.headers["crypto-key"].endswith(f";p256ecdsa={made['server_key']}")
    assert push.headers["authorization"].startswith("WebPush ")
    verify_vapid(push.headers["authorization"].removeprefix("WebPush "), made["server_key"], receiver.url)
    said = decrypted(push, keys)
    assert said["notification_type"] == "follow"
    assert said["title"] == f"{follower.username} followed you"
    assert said["body"] == "I <3 <b>birds</b> and bees"  # the bio's text: its markup (a line break) goes


def test_the_staff_are_pushed_reports_and_sign_ups(http: httpx.Client, make_user: Callable[..., User],
                                                    receiver: Receiver) -> None:
    """The staff's notifications (kicau/notifications.py ``STAFF_TYPES``) are pushed as any other, by their own
    alerts (off unless asked for, as Mastodon's): a report's title names its reporter."""

    moderator, reporter, target = make_user("push_m"), make_user("push_r"), make_user("push_t")
    accounts_tool("role", moderator.username, "Moderator")
    keys = Keys.new()
    endpoint = receiver.endpoint()
    subscribe(http, moderator, endpoint, keys, alerts=("admin.report",))
    make_user("push_s")  # a sign-up: its alert is off
    filed = http.post("/api/v1/reports", headers=reporter.auth, data={"account_id": target.id, "comment": "spam"})
    assert filed.status_code == 200, filed.text
    said = decrypted(receiver.next_for(endpoint), keys)
    assert said["notification_type"] == "admin.report" and said["notification_id"] == filed.json()["id"], said
    assert said["title"] == f"{reporter.username} submitted a report" and said["body"] == ""
    receiver.assert_quiet(endpoint, seconds=1.0)

    http.put("/api/v1/push/subscription", headers=moderator.auth, json={"data": {"alerts": {"admin.sign_up": True}}})
    newcomer = make_user("push_n")
    said = decrypted(receiver.next_for(endpoint), keys)
    assert said["notification_type"] == "admin.sign_up" and said["notification_id"] == newcomer.id, said
    assert said["title"] == f"{newcomer.username} signed up"


def test_alerts_and_policy_decide_what_is_pushed(http: httpx.Client, make_user: Callable[..., User],
                                                 receiver: Receiver) -> None:
    user, stranger, friend = make_user("choosy"), make_user("stranger"), make_user("friend")
    assert http.post(f"/api/v1/accounts/{friend.id}/follow", headers=user.auth).status_code == 200
    keys = Keys.new()
    endpoint = receiver.endpoint()
    subscribe(http, user, endpoint, keys, alerts=("mention",), policy="followed")

    # Not pushed: a mention by someone the user does not follow, a favourite (its alert is off).
    mine = http.post("/api/v1/statuses", headers=user.auth, json={"status": "fave me"}).json()
    mention(http, stranger, user, "from a stranger")
    assert http.post(f"/api/v1/statuses/{mine['id']}/favourite", headers=friend.auth).status_code == 200
    # Pushed: the friend's mention, and nothing else.
    from_friend = mention(http, friend, user, "from a friend")
    said = decrypted(receiver.next_for(endpoint), keys)
    assert said["notification_type"] == "mention" and said["notification_id"] == from_friend["id"]
    receiver.assert_quiet(endpoint, seconds=1.0)

    # policy none: nothing, whatever the alerts.
    changed = http.put("/api/v1/push/subscription", headers=user.auth,
                       json={"data": {"alerts": {"mention": True, "favourite": True}, "policy": "none"}})
    assert changed.status_code == 200 and changed.json()["policy"] == "none"
    mention(http, friend, user, "not pushed")
    # The push service applies the subscription as it stands when it takes the notice: wait for that first.
    receiver.assert_quiet(endpoint, seconds=2.0)
    http.put("/api/v1/push/subscription", headers=user.auth, json={"data": {"alerts": {"mention": True}}})
    last = mention(http, stranger, user, "policy all again")
    said = decrypted(receiver.next_for(endpoint), keys)
    assert said["notification_id"] == last["id"]


def test_a_changed_subscription_is_used_at_once(http: httpx.Client, make_user: Callable[..., User],
                                                receiver: Receiver, app_credentials: dict[str, Any]) -> None:
    """The push service keeps each account's subscriptions in memory (services/push/service.py): a new
    subscription, a removed one and a revoked token apply to the very next notification."""
    user, author = make_user("keptsub"), make_user("keptauthor")
    first_keys, second_keys = Keys.new(), Keys.new()
    first, second = receiver.endpoint(), receiver.endpoint()
    subscribe(http, user, first, first_keys)
    posted = mention(http, author, user)
    assert decrypted(receiver.next_for(first), first_keys)["notification_id"] == posted["id"]
    # Subscribing again replaces it: the next push goes to the new endpoint only.
    subscribe(http, user, second, second_keys)
    posted = mention(http, author, user)
    assert decrypted(receiver.next_for(second), second_keys)["notification_id"] == posted["id"]
    receiver.assert_quiet(first, seconds=1.0)
    # Removed: nothing more.
    assert http.delete("/api/v1/push/subscription", headers=user.auth).status_code == 200
    mention(http, author, user, "after the removal")
    receiver.assert_quiet(second, seconds=2.0)
    # A token's subscription, pushed to once, then the token revoked: nothing more.
    token = narrow_token(http, app_credentials, user, "push read")
    third_keys, third = Keys.new(), receiver.endpoint()
    made = http.post("/api/v1/push/subscription", headers=token, json={
        "subscription": {"endpoint": third, "keys": {"p256dh": third_keys.p256dh, "auth": third_keys.auth_text}},
        "data": {"alerts": {"mention": True}}})
    assert made.status_code == 200, made.text
    posted = mention(http, author, user)
    assert decrypted(receiver.next_for(third), third_keys)["notification_id"] == posted["id"]
    revoked = http.post("/oauth/revoke", data={
        "client_id": app_credentials["client_id"], "client_secret": app_credentials["client_secret"],
        "token": token["Authorization"].removeprefix("Bearer ")})
    assert revoked.status_code == 200, revoked.text
    mention(http, author, user, "after the revoke")
    receiver.assert_quiet(third, seconds=2.0)


def test_a_replayed_notice_is_not_pushed_twice(http: httpx.Client, make_user: Callable[..., User],
                                               receiver: Receiver) -> None:
    """The fanout hands a batch's notices over again after a crash; the push service sends each once."""
    user, author = make_user("once"), make_user("twice")
    keys = Keys.new()
    endpoint = receiver.endpoint()
    subscribe(http, user, endpoint, keys)
    first = mention(http, author, user, "first")
    said = decrypted(receiver.next_for(endpoint), keys)
    assert said["notification_id"] == first["id"]

    async def replay() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=service_env()["KICAU_KAFKA_BOOTSTRAP"])
        await producer.start()
        try:
            notice = PushNotice(account_id=int(user.id), notification_id=int(first["id"]), type="mention",
                                from_account_id=int(author.id), status_id=int(first["id"]))
            await producer.send_and_wait("kicau.notices", encode_notice(notice), key=user.id.encode())
        finally:
            await producer.stop()

    asyncio.run(replay())
    second = mention(http, author, user, "second")
    said = decrypted(receiver.next_for(endpoint), keys)
    assert said["notification_id"] == second["id"]


def test_an_endpoint_that_is_gone_loses_its_subscription(http: httpx.Client, make_user: Callable[..., User],
                                                         receiver: Receiver) -> None:
    user, author = make_user("gone"), make_user("caller")
    endpoint = receiver.endpoint(status=410)
    subscribe(http, user, endpoint, Keys.new())
    mention(http, author, user)
    receiver.next_for(endpoint)
    eventually(lambda: http.get("/api/v1/push/subscription", headers=user.auth).status_code == 404)


def test_a_failing_push_service_is_given_up_on_for_a_while(http: httpx.Client, make_user: Callable[..., User],
                                                           receiver: Receiver) -> None:
    """A push service (an origin) that failed a push's every attempt is not called again for a while
    (services/push/sender.py ``Unreachable``), and pushes to other push services go on: its subscribers' pushes
    cost the batch nothing meanwhile. The notifications themselves are listed as ever."""
    unlucky, lucky, author = make_user("unlucky"), make_user("lucky"), make_user("caller")
    keys = Keys.new()
    live = receiver.endpoint()
    subscribe(http, lucky, live, keys)
    with running_receiver() as failing_service:
        failing = failing_service.endpoint(status=503)
        subscribe(http, unlucky, failing, Keys.new())
        mention(http, author, unlucky, "first")
        for _ in range(3):  # KICAU_PUSH_ATTEMPTS, each answered 503
            failing_service.next_for(failing)
        failing_service.assert_quiet(failing, seconds=1.0)
        both = http.post("/api/v1/statuses", headers=author.auth,
                         json={"status": f"@{unlucky.username} @{lucky.username} again"})
        assert both.status_code == 200, both.text
        said = decrypted(receiver.next_for(live), keys)
        assert said["notification_type"] == "mention"
        failing_service.assert_quiet(failing, seconds=3.0)  # not called: given up on for now

    def listed() -> list[str]:
        return [n["status"]["id"] for n in http.get("/api/v1/notifications", headers=unlucky.auth).json()]

    eventually(lambda: len(listed()) == 2)
    assert listed()[0] == both.json()["id"]


def test_a_push_that_failed_is_tried_again_later(http: httpx.Client, make_user: Callable[..., User]) -> None:
    """A push whose push service failed every attempt of its batch is kept for a later round
    (services/push/later.py): once the push service answers again (and is no longer given up on), the push arrives,
    once. A later round finds its subscription and the follows as they are then: one removed meanwhile is pushed
    nothing, nor one whose policy (``followed``) no longer lets the sender through."""
    patient, leaving, picky, author = (make_user(p) for p in ("patient", "leaving", "picky", "caller"))
    keys = Keys.new()
    push = by_name("push")
    assert push is not None

    def later(event: str) -> float:
        return metric_value(push.port, f'kicau_push_later_total{{event="{event}"}}', default=0.0)

    def policy_skips() -> float:
        return metric_value(push.port, 'kicau_push_notices_skipped_total{reason="policy"}', default=0.0)

    kept_before, skipped_before = later("kept"), policy_skips()
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=picky.auth).status_code == 200
    # Each on a push service of its own: one given up on after its failures does not keep the other's first push
    # from being tried (the mentions' notices may come in different batches).
    with running_receiver() as flaky_service, running_receiver() as failing_service, \
            running_receiver() as picky_service:
        recovering = flaky_service.endpoint(failing_first=3)  # KICAU_PUSH_ATTEMPTS, each answered 503
        unfollowing = picky_service.endpoint(failing_first=3)
        failing = failing_service.endpoint(status=503)
        subscribe(http, patient, recovering, keys)
        subscribe(http, leaving, failing, Keys.new())
        subscribe(http, picky, unfollowing, Keys.new(), policy="followed")
        posted = http.post("/api/v1/statuses", headers=author.auth, json={
            "status": f"@{patient.username} @{leaving.username} @{picky.username} are you there?"})
        assert posted.status_code == 200, posted.text
        for _ in range(3):
            flaky_service.next_for(recovering)
            picky_service.next_for(unfollowing)
        removed = http.delete("/api/v1/push/subscription", headers=leaving.auth)
        assert removed.status_code == 200, removed.text
        assert http.post(f"/api/v1/accounts/{author.id}/unfollow", headers=picky.auth).status_code == 200
        left_at = time.monotonic()
        # The push service was given up on for 30 s after the batch failed; the later rounds (3 s apart in a
        # development stack) find it given up on, spend no round, and try it once it is not.
        arrived = flaky_service.next_for(recovering, timeout=90)
        said = decrypted(arrived, keys)
        assert (said["notification_type"], said["title"]) == ("mention", f"{author.username} mentioned you")
        flaky_service.assert_quiet(recovering, seconds=4.0)  # delivered once
        # Its later round came once its push service was tried again: no longer followed, so not pushed.
        eventually(lambda: policy_skips() > skipped_before, timeout=90)
        picky_service.assert_quiet(unfollowing, seconds=1.0)
        # Three kept for their first later round (more if an earlier test's pushes are still in their rounds); the
        # rounds that met their push service given up on spent nothing, and are counted apart.
        assert later("kept") - kept_before >= 3
        assert later("deferred") > 0
        late = []
        while not failing_service.pushes.empty():
            got = failing_service.pushes.get()
            if got.at > left_at + 1.0:
                late.append(got)
        assert late == []  # its subscription was gone by its later round


def test_revoking_the_token_removes_its_subscription(http: httpx.Client, make_user: Callable[..., User],
                                                     receiver: Receiver, stack_cassandra: Any,
                                                     app_credentials: dict[str, Any]) -> None:
    user = make_user("revoker")
    app = app_credentials
    token = narrow_token(http, app, user, "push read")
    made = http.post("/api/v1/push/subscription", headers=token, json={
        "subscription": {"endpoint": receiver.endpoint(), "keys": {"p256dh": Keys.new().p256dh,
                                                                   "auth": Keys.new().auth_text}}})
    assert made.status_code == 200, made.text

    def rows() -> list[Any]:
        return list(stack_cassandra.execute("SELECT id FROM push_subscriptions WHERE account_id = %s",
                                            (int(user.id),)))

    assert [row["id"] for row in rows()] == [int(made.json()["id"])]
    revoked = http.post("/oauth/revoke", data={"client_id": app["client_id"], "client_secret": app["client_secret"],
                                               "token": token["Authorization"].removeprefix("Bearer ")})
    assert revoked.status_code == 200, revoked.text
    assert rows() == []


@pytest.mark.parametrize(("body", "message"), [
    ({}, "subscription[endpoint] can't be blank"),
    ({"subscription": {"endpoint": "not a url", "keys": {"p256dh": "x", "auth": "y"}}}, "Endpoint"),
    ({"subscription": {"endpoint": "ftp://push.example/x", "keys": {"p256dh": "x", "auth": "y"}}}, "Endpoint"),
    ({"subscription": {"endpoint": "https://push.example/x", "keys": {"auth": "y"}}},
     "subscription[keys][p256dh] can't be blank"),
    ({"subscription": {"endpoint": "https://push.example/x", "keys": {"p256dh": "AAAA", "auth": "y"}}}, "p256dh"),
    # 65 bytes that are no point on the curve
    ({"subscription": {"endpoint": "https://push.example/x",
                       "keys": {"p256dh": base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).decode(), "auth": "y"}}},
     "not a point on P-256"),
    ({"subscription": {"endpoint": "https://push.example/x", "keys": {"p256dh": "GOOD", "auth": "c2hvcnQ"}}},
     "keys[auth]"),
    ({"subscription": {"endpoint": "https://push.example/x", "keys": {"p256dh": "GOOD", "auth": "GOOD"}},
      "data": {"policy": "friends"}}, "policy"),
    ({"subscription": {"endpoint": "https://push.example/x", "keys": {"p256dh": "GOOD", "auth": "GOOD"}},
      "data": {"alerts": {"mention": "maybe"}}}, "data[alerts][mention]"),
    ({"subscription": {"endpoint": ["https://push.example/x"], "keys": {"p256dh": "GOOD", "auth": "GOOD"}}},
     "must be a string"),
])
def test_bad_subscriptions_are_422s_and_keep_nothing(http: httpx.Client, make_user: Callable[..., User],
                                                     body: dict[str, Any], message: str) -> None:
    user = make_user("badpush")
    good = Keys.new()
    text = json.dumps(body).replace('"GOOD"', json.dumps(good.p256dh), 1).replace('"GOOD"', json.dumps(good.auth_text))
    answer = http.post("/api/v1/push/subscription", headers={**user.auth, "Content-Type": "application/json"},
                       content=text)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]
    assert http.get("/api/v1/push/subscription", headers=user.auth).status_code == 404


def test_push_needs_the_push_scope(http: httpx.Client, make_user: Callable[..., User],
                                   app_credentials: dict[str, Any]) -> None:
    user = make_user("scoped")
    no_push = narrow_token(http, app_credentials, user, "read write follow")
    refused = http.get("/api/v1/push/subscription", headers=no_push)
    assert refused.status_code == 403 and "error" in refused.json()
    assert http.get("/api/v1/push/subscription").status_code == 401


def test_mastodon_py_subscribes_and_decrypts(gateway_url: str, make_user: Callable[..., User],
                                             http: httpx.Client, receiver: Receiver) -> None:
    user, author = make_user("mpy"), make_user("mpyauthor")
    client = Mastodon(access_token=user.token, api_base_url=gateway_url, version_check_mode="none")
    private, public = client.push_subscription_generate_keys()
    endpoint = receiver.endpoint()
    made = client.push_subscription_set(endpoint, public, mention_events=True, favourite_events=False)
    assert made.endpoint == endpoint and made.alerts.mention is True and made.alerts.favourite is False
    assert client.push_subscription().id == made.id
    updated = client.push_subscription_update(mention_events=True, reblog_events=True)
    assert updated.alerts.reblog is True

    status = mention(http, author, user, "via Mastodon.py")
    push = receiver.next_for(endpoint)
    said = client.push_subscription_decrypt_push(push.body, private, push.headers["encryption"],
                                                 push.headers["crypto-key"])
    assert said.notification_type == "mention" and str(said.notification_id) == status["id"]
    assert said.title == f"{author.username} mentioned you"
    client.push_subscription_delete()
    assert http.get("/api/v1/push/subscription", headers=user.auth).status_code == 404
