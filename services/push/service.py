"""A batch of accepted notifications (the fanout's notices, kicau/web_push.py) made into web pushes.

For each batch: the subscriptions of the notified accounts (kept in memory under each account's version token:
one Redis round trip for the batch, a Cassandra read only for an account whose subscriptions changed), those that want
each notice (its type among the subscription's ``alerts``; its sender allowed by the ``policy``: ``followed``
asks whether the account follows the sender, ``follower`` whether the sender follows it, two reads an account
that has such a policy, kicau/notification_policies.py's ``Relations``), less those already pushed (a replayed
batch: ``keys.push_sent``, one round trip; the batch's deliveries are marked in another); then the sender's card
and the status's text for each notice, and every push at once (up to ``concurrency``). A subscription whose
endpoint answers 404 or 410 is removed, unless it was replaced meanwhile (``IF id = ?``). A push whose endpoint failed
every attempt, or whose push service is being given up on, is kept for a later round (services/push/later.py),
which ``retry_due`` tries as the subscription then is.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys
from kicau.account_cards import AccountCards
from kicau.account_standing import AccountStanding
from kicau.clients import execute, write_preparer
from kicau.follower_lists import KeptUnderVersions, claim_versions
from kicau.metrics import PUSH_DELIVERIES, PUSH_LATENCY, PUSH_LATER, PUSH_SKIPPED
from kicau.notification_policies import Relations
from kicau.notifications import FOLLOW, FOLLOW_REQUEST
from kicau.web_push import (
    PUSH_TTL_SECONDS,
    PushNotice,
    Subscription,
    VapidKey,
    body_text,
    encrypted_request,
    forget_subscriptions,
    from_row,
    payload,
    title,
)
from services.push.later import LaterPushes
from services.push.sender import Outcome, PushSender

log = logging.getLogger(__name__)

_TAG = re.compile(r"<[^>]*>")
# The outcomes that keep a push for a later round (services/push/later.py).
_TRIED_AGAIN = (Outcome.FAILED, Outcome.UNREACHABLE)


@dataclass(frozen=True)
class _Push:
    notice: PushNotice
    subscription: Subscription
    round: int = 0  # 0: the batch's own tries; then the later rounds (services/push/later.py)


@dataclass(frozen=True)
class _Said:
    """What a notice's push says, the same for each of its subscriptions."""

    title: str
    body: str
    icon: str


class Pusher:
    def __init__(self, *, session: Session, redis: Redis, sender: PushSender, vapid: VapidKey, cards: AccountCards,
                 relations: Relations, write_consistency: int, contact: str, concurrency: int, later: LaterPushes,
                 max_kept: int = 100_000) -> None:
        self._session = session
        self._later = later
        self._redis = redis
        self._sender = sender
        self._vapid = vapid
        self._cards = cards
        self._relations = relations
        self._contact = contact
        self._slots = asyncio.Semaphore(concurrency)
        self._subscriptions = session.prepare("SELECT * FROM push_subscriptions WHERE account_id = ?")
        self._standing = AccountStanding(session, write_consistency)
        # Each account's subscriptions as last read, kept under its version token (kicau/follower_lists.py's
        # protocol, which the graph service's changes follow): a batch costs one Redis round trip for all its
        # accounts, and Cassandra reads only for accounts whose subscriptions changed (or were never read).
        self._held: KeptUnderVersions[list[Subscription]] = KeptUnderVersions(self._read_subscriptions,
                                                                             max_kept=max_kept)
        self._status = session.prepare("SELECT text, spoiler_text, deleted_at FROM statuses WHERE id = ?")
        self._forget = write_preparer(session, write_consistency)(
            "DELETE FROM push_subscriptions WHERE account_id = ? AND token_hash = ? IF id = ?")

    async def push(self, notices: Sequence[PushNotice]) -> None:
        pushes = await self._wanted(notices)
        if pushes:
            await self._deliver(pushes)

    async def retry_due(self) -> int:
        """Try the later rounds that are due (services/push/later.py); how many were taken."""
        taken = await self._later.take_due()
        if not taken:
            return 0
        due = [(member, later) for member, later in taken if later is not None]
        accounts = sorted({later.notice.account_id for _, later in due})
        tokens = await claim_versions(self._redis, [keys.push_subscriptions_version(a) for a in accounts])
        held = await self._held.of(dict(zip(accounts, tokens, strict=True)))
        pushes: list[_Push] = []
        for _, later in due:
            # The subscription as it is now: gone, or replaced by another, and the push is not made.
            subscription = next((found for found in held.get(later.notice.account_id, ())
                                 if found.id == later.subscription_id), None)
            if subscription is None or not subscription.wants(later.notice.type) or subscription.policy == "none":
                PUSH_SKIPPED.labels("gone").inc()
                continue
            pushes.append(_Push(later.notice, subscription, later.round))
        # The policy as the follows are now too: a follow undone since the first try keeps its push from going.
        pushes = await self._by_policy(pushes)
        kept = await self._deliver(await self._unsent(pushes)) if pushes else set()
        await self._later.done([member for member, _ in taken], kept)
        return len(taken)

    async def _deliver(self, pushes: list[_Push]) -> set[bytes]:
        """Push each, mark those delivered, and keep those that failed for their next round; the members kept."""
        if not pushes:
            return set()
        said = await self._said({p.notice for p in pushes})
        sent = [p for p in pushes if p.notice in said]
        outcomes = await asyncio.gather(*(self._push_one(p, said[p.notice]) for p in sent))
        delivered = [p for p, outcome in zip(sent, outcomes, strict=True) if outcome is Outcome.DELIVERED]
        if delivered:  # marked together, one round trip a batch
            async with self._redis.pipeline(transaction=False) as pipe:
                for push in delivered:
                    pipe.set(keys.push_sent(push.subscription.id, push.notice.notification_id), b"1",
                             ex=PUSH_TTL_SECONDS)
                await pipe.execute()
        again = [(p, outcome) for p, outcome in zip(sent, outcomes, strict=True) if outcome in _TRIED_AGAIN]
        followed = [(p, found) for p, outcome in again if (found := self._later.after_failure(
            p.notice, p.subscription.id, p.round, attempted=outcome is Outcome.FAILED,
            paused=self._sender.paused_for(p.subscription.endpoint)))]
        later = [found for _, found in followed]
        kept = await self._later.keep(later)
        # A round spent (a real attempt failed), or the same round again (its push service still given up on).
        spent = sum(1 for p, (kept, _) in followed if kept.round > p.round)
        PUSH_LATER.labels("kept").inc(spent)
        PUSH_LATER.labels("deferred").inc(len(later) - spent)
        PUSH_LATER.labels("given_up").inc(len(again) - len(later))
        return kept

    async def _read_subscriptions(self, account_id: int) -> list[Subscription]:
        """The account's subscriptions; none while staff have it disabled or suspended (its tokens are refused
        meanwhile, and so are its pushes: the graph service moves the version of its subscriptions with its
        standing, services/graph/accounts.py)."""
        rows, standing = await asyncio.gather(execute(self._session, self._subscriptions, (account_id,)),
                                              self._standing.of(account_id))
        return [] if standing.login_refused else [from_row(row) for row in rows]

    async def _wanted(self, notices: Sequence[PushNotice]) -> list[_Push]:
        accounts = sorted({n.account_id for n in notices})
        tokens = await claim_versions(self._redis, [keys.push_subscriptions_version(a) for a in accounts])
        held = await self._held.of(dict(zip(accounts, tokens, strict=True)))
        pushes: list[_Push] = []
        for notice in notices:
            for subscription in held.get(notice.account_id, ()):
                if not subscription.wants(notice.type) or subscription.policy == "none":
                    PUSH_SKIPPED.labels("alert_off" if subscription.policy != "none" else "policy").inc()
                    continue
                pushes.append(_Push(notice, subscription))
        return await self._unsent(await self._by_policy(pushes))

    async def _by_policy(self, pushes: list[_Push]) -> list[_Push]:
        """Those whose subscription's policy lets their sender through as the follows are now: ``followed`` asks
        that its account follow the sender, ``follower`` that the sender follow it (one read of the follows for
        all the pushes that ask)."""
        senders: dict[int, set[int]] = defaultdict(set)  # of accounts with a policy that asks about follows
        for push in pushes:
            if push.subscription.policy in ("followed", "follower"):
                senders[push.notice.account_id].add(push.notice.from_account_id)
        if not senders:
            return pushes
        follows, followed_by = await self._relations.of(senders)
        allowed = []
        for push in pushes:
            pair = (push.notice.account_id, push.notice.from_account_id)
            policy = push.subscription.policy
            if (policy == "followed" and pair not in follows) or (policy == "follower" and pair not in followed_by):
                PUSH_SKIPPED.labels("policy").inc()
                continue
            allowed.append(push)
        return allowed

    async def _unsent(self, pushes: list[_Push]) -> list[_Push]:
        """Those not pushed already (a replayed batch, a later round of a push delivered meanwhile), each once (a
        batch may carry a notice twice: the notices topic is read at least once)."""
        pushes = list({(p.notice.notification_id, p.subscription.id): p for p in pushes}.values())
        if not pushes:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for push in pushes:
                pipe.exists(keys.push_sent(push.subscription.id, push.notice.notification_id))
            sent = await pipe.execute()
        fresh = [push for push, done in zip(pushes, sent, strict=True) if not done]
        PUSH_SKIPPED.labels("repeated").inc(len(pushes) - len(fresh))
        return fresh

    async def _said(self, notices: set[PushNotice]) -> dict[PushNotice, _Said]:
        """Each notice's title, body and icon: its sender's card (name, picture, and for a follow its bio) and the
        status it is about; a notice whose status was deleted meanwhile says nothing (it is not pushed)."""
        status_ids = sorted({n.status_id for n in notices if n.status_id is not None})
        cards, rows = await asyncio.gather(
            self._cards.cards({n.from_account_id for n in notices}),
            asyncio.gather(*(execute(self._session, self._status, (s,)) for s in status_ids)))
        texts = {status_id: found[0] for status_id, found in zip(status_ids, rows, strict=True)
                 if found and found[0]["deleted_at"] is None}
        said: dict[PushNotice, _Said] = {}
        for notice in notices:
            raw = cards.get(notice.from_account_id)
            if raw is None:
                PUSH_SKIPPED.labels("gone").inc()
                continue
            card: dict[str, Any] = json.loads(raw)
            name = card.get("display_name") or card.get("username") or ""
            if notice.status_id is not None:
                status = texts.get(notice.status_id)
                if status is None:
                    PUSH_SKIPPED.labels("gone").inc()
                    continue
                body = body_text(status["text"] or "", status["spoiler_text"] or "")
            elif notice.type in (FOLLOW, FOLLOW_REQUEST):
                body = body_text(html.unescape(_TAG.sub(" ", card.get("note") or "")))
            else:
                body = ""
            said[notice] = _Said(title(notice.type, name), body, card.get("avatar_static") or card.get("avatar") or "")
        return said

    async def _push_one(self, push: _Push, said: _Said) -> Outcome:
        notice, subscription = push.notice, push.subscription
        content = payload(notice, title_text=said.title, body=said.body, icon=said.icon)
        request = encrypted_request(content, subscription, self._vapid, subject=self._contact)
        async with self._slots:
            outcome = await self._sender.send(subscription.endpoint, request)
        PUSH_DELIVERIES.labels(outcome.value).inc()
        if outcome is Outcome.DELIVERED and notice.occurred_at:
            PUSH_LATENCY.observe(max(0.0, time.time() - notice.occurred_at / 1000))
        elif outcome is Outcome.GONE:
            log.info("subscription %d is gone (its endpoint said so): removed", subscription.id)
            await forget_subscriptions(self._redis, subscription.account_id)
            await execute(self._session, self._forget,
                          (subscription.account_id, subscription.token_hash, subscription.id))
            await forget_subscriptions(self._redis, subscription.account_id)
        return outcome
