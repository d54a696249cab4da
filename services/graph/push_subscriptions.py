"""Push subscriptions (Mastodon's ``/api/v1/push/subscription``, kicau/web_push.py): one an access token, in
its account's partition of ``push_subscriptions``, read by the push service (services/push/) for each
notification of the account.

* **Subscribing** replaces whatever the token had (a new id, as Mastodon makes a new one): one write, so a
  retry leaves the same state.
* **Changing** rewrites only the alerts and the policy, as Mastodon's ``PUT`` replaces its ``data``: alerts not
  named are off again, a policy not named is ``all``.
* **Revoking** the token removes its subscription (services/graph/service.py, ``revoke``).

Push services keep each account's subscriptions in memory under a version token (kicau/follower_lists.py's
protocol): every change here deletes the account's version key before and after its write
(``kicau.web_push.forget_subscriptions``), so no copy outlives it.

The gateway checked the endpoint and keys (kicau/web_push.py); this keeps what it was given.
"""

from __future__ import annotations

from collections.abc import Iterable

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau.clients import execute, write_preparer
from kicau.ids import SnowflakeGenerator
from kicau.web import ApiError
from kicau.web_push import Subscription, VapidKey, entity, forget_subscriptions, from_row

NOT_FOUND = "Record not found"


class PushSubscriptions:
    def __init__(self, session: Session, redis: Redis, write_consistency: int, ids: SnowflakeGenerator,
                 vapid: VapidKey) -> None:
        self._session = session
        self._redis = redis
        self._ids = ids
        self.vapid = vapid
        write = write_preparer(session, write_consistency)
        self._save = write("INSERT INTO push_subscriptions (account_id, token_hash, id, endpoint, p256dh, auth, alerts,"
                           " policy, standard) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        # IF EXISTS: a change must not bring back a subscription deleted meanwhile as a row of nulls.
        self._change = write("UPDATE push_subscriptions SET alerts = ?, policy = ? WHERE account_id = ? AND"
                             " token_hash = ? IF EXISTS")
        self._forget = write("DELETE FROM push_subscriptions WHERE account_id = ? AND token_hash = ?")
        self._one = session.prepare("SELECT * FROM push_subscriptions WHERE account_id = ? AND token_hash = ?")

    async def get(self, account_id: int, token_hash: str) -> Subscription:
        rows = await execute(self._session, self._one, (account_id, token_hash))
        if not rows:
            raise ApiError(404, NOT_FOUND)
        return from_row(rows[0])

    async def subscribe(self, account_id: int, token_hash: str, *, endpoint: str, p256dh: str, auth: str,
                        alerts: Iterable[str], policy: str, standard: bool) -> Subscription:
        subscription = Subscription(id=self._ids.next_id(), account_id=account_id, token_hash=token_hash,
                                    endpoint=endpoint, p256dh=p256dh, auth=auth, alerts=frozenset(alerts),
                                    policy=policy, standard=standard)
        await forget_subscriptions(self._redis, account_id)
        await execute(self._session, self._save, (
            account_id, token_hash, subscription.id, endpoint, p256dh, auth, set(subscription.alerts), policy,
            standard))
        await forget_subscriptions(self._redis, account_id)
        return subscription

    async def change(self, account_id: int, token_hash: str, *, alerts: Iterable[str], policy: str) -> Subscription:
        wanted = set(alerts)
        await forget_subscriptions(self._redis, account_id)
        rows = await execute(self._session, self._change, (wanted, policy, account_id, token_hash))
        await forget_subscriptions(self._redis, account_id)
        if not rows[0]["[applied]"]:
            raise ApiError(404, NOT_FOUND)
        return await self.get(account_id, token_hash)

    async def forget(self, account_id: int, token_hash: str) -> None:
        await forget_subscriptions(self._redis, account_id)
        await execute(self._session, self._forget, (account_id, token_hash))
        await forget_subscriptions(self._redis, account_id)

    def shown(self, subscription: Subscription) -> dict[str, object]:
        return entity(subscription, self.vapid.public)

