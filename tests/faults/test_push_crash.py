"""The push service is killed (SIGKILL): notifications accepted while it is down wait in Kafka ``kicau.notices``,
and the restarted service pushes each of them once.

The kill comes once the push before it is marked sent: a kill between an endpoint's answer and the mark sends that
push again (services/push/README.md: at least once), which is not what this test is about."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from kicau import keys as kicau_keys
from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.push.receiver import Keys, decrypted, mention, running_receiver, subscribe

MENTIONS = 6


def test_push_service_sigkill_loses_and_repeats_no_push(http: httpx.Client, make_user: Callable[..., User],
                                                        faults: Faults) -> None:
    with running_receiver() as receiver:
        user, authors = make_user("pushkill"), [make_user("pk") for _ in range(3)]
        keys = Keys.new()
        endpoint = receiver.endpoint()
        subscription = subscribe(http, user, endpoint, keys)
        first = mention(http, authors[0], user, "before the kill")
        assert decrypted(receiver.next_for(endpoint), keys)["notification_id"] == first["id"]
        marks = harness.redis_client()
        sent = kicau_keys.push_sent(int(subscription["id"]), int(first["id"]))
        eventually(lambda: marks.exists(sent), timeout=10)

        faults.kill(harness.service_pid("push"))
        expected = [mention(http, authors[n % len(authors)], user, f"while down {n}")["id"] for n in range(MENTIONS)]
        restart_seconds = harness.stack_up()

        got = [decrypted(receiver.next_for(endpoint, timeout=60), keys)["notification_id"] for _ in expected]
        receiver.assert_quiet(endpoint, seconds=2.0)  # nothing pushed twice
        last = mention(http, authors[0], user, "after the restart")
        after = decrypted(receiver.next_for(endpoint), keys)["notification_id"]
        harness.figure(f"push SIGKILL: {len(expected)} mentions while down, pushed after a {restart_seconds:.1f}s "
                       f"restart: {len(set(got) & set(expected))} of them, {len(got) - len(set(got))} twice")
        assert sorted(got) == sorted(expected)
        assert after == last["id"]
