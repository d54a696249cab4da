"""The operator's side of accounts: disabling one's login, as Mastodon's moderators can (``tootctl accounts modify
USERNAME --disable``).

    python -m services.graph.accounts disable USERNAME
    python -m services.graph.accounts enable USERNAME
    python -m services.graph.accounts show USERNAME
    python -m services.graph.accounts disabled
    python -m services.graph.accounts role USERNAME Moderator|Admin|Owner|none
    python -m services.graph.accounts staff

A disabled account's tokens are refused with 403 ``{"error": "Your login is currently disabled"}`` on every request,
and signing in (the password grant, the authorization form) answers the same to whoever gives its password. Its
statuses, follows and followers stay as they are, and its tokens are kept: ``enable`` gives it its sessions back.

How it takes effect at once: the flag is written to Cassandra (``accounts.disabled``), then every token cache entry of
the account is dropped from Redis, and with them the gateways' copies (kicau/tracked_cache.py), so the next request
with any of its tokens is resolved again from Cassandra by the graph service, which reads the flag. A resolution
that read the account just before the flag changed could put an old entry back after the drop; the graph service
caches nothing it took longer than ``FRESH_RESOLUTION_SECONDS`` to resolve, and this tool drops the entries a second
time after waiting longer than that.

``role`` makes the account staff (kicau/staff.py), who then moderate through Mastodon's admin API with a token of
an ``admin:*`` scope; ``none`` takes the role away; ``staff`` lists every staff account and its role. The first
owner is made here: no API gives a role.

The tokens are found by a scan of ``oauth_tokens`` (it has no index by account): fine for an operator's action, not
for a request. Last, every gateway is told to end the streams the account has open (``tokens.end_streams``, as a
token revoked through ``/oauth/revoke`` ends its own); the next one is refused. It reads and writes Cassandra and
Redis directly, with the services' settings (``KICAU_CASSANDRA_*``, ``KICAU_REDIS_URL``), as the reports and
announcements tools do.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

from redis.asyncio import Redis

from kicau import clients, tokens
from kicau.account_cards import AccountCards
from kicau.account_standing import AccountStanding
from kicau.settings import CommonSettings
from kicau.staff import EVERYONE, ROLES, StaffStore
from kicau.web_push import forget_subscriptions
from services.graph.store import GraphStore


async def set_disabled(store: GraphStore, standing: AccountStanding, redis: Redis, account_id: int,
                       disabled: bool) -> int:
    """Disable or enable the account's login; how many tokens it has."""
    await standing.set(account_id, disabled)
    return await _sessions_follow(store, redis, account_id, ended=disabled)


async def set_suspended(store: GraphStore, standing: AccountStanding, cards: AccountCards, redis: Redis,
                        account_id: int, since: datetime | None) -> int:
    """Suspend the account (since ``since``) or, with None, no longer: its login as ``set_disabled``'s, and its card
    (kicau/entities.py ``account_entity``), which every read of its statuses, notifications and profile goes by,
    dropped with every copy of it; how many tokens it has."""
    await standing.set_suspended(account_id, since)
    await cards.forget(account_id)
    held = await _sessions_follow(store, redis, account_id, ended=since is not None)
    # Again after the wait: a card loaded from the row as it was before the write may have been cached meanwhile.
    await cards.forget(account_id)
    return held


async def set_silenced(standing: AccountStanding, cards: AccountCards, account_id: int, since: datetime | None) -> None:
    """Limit (silence) the account since ``since`` or, with None, no longer: its card (``"limited":true``), which
    the public reads and streams go by, dropped with every copy of it."""
    await standing.set_silenced(account_id, since)
    await _card_changed(cards, account_id)


async def set_sensitized(standing: AccountStanding, cards: AccountCards, account_id: int,
                         since: datetime | None) -> None:
    """Mark the account sensitive since ``since`` or, with None, no longer: its card (``"sensitized":true``), which
    every read and stream of its statuses goes by, dropped with every copy of it."""
    await standing.set_sensitized(account_id, since)
    await _card_changed(cards, account_id)


async def _card_changed(cards: AccountCards, account_id: int) -> None:
    """The account's card dropped, with every copy of it, after a change of the row it is rendered from."""
    await cards.forget(account_id)
    # Again a moment later: a card loaded from the row as it was before the write may have been cached meanwhile.
    await asyncio.sleep(tokens.FRESH_RESOLUTION_SECONDS)
    await cards.forget(account_id)


async def _sessions_follow(store: GraphStore, redis: Redis, account_id: int, *, ended: bool) -> int:
    """Every token of the account resolved afresh (module doc), and its push subscriptions read afresh by every push
    service (which pushes nothing to a refused account, services/push/service.py), and with ``ended`` its streams
    ended; how many tokens it has."""
    token_hashes = await store.token_hashes_of(account_id)
    await tokens.forget(redis, *token_hashes)
    await forget_subscriptions(redis, account_id)
    await asyncio.sleep(tokens.FRESH_RESOLUTION_SECONDS + 0.5)
    await tokens.forget(redis, *token_hashes)
    await forget_subscriptions(redis, account_id)
    if ended:  # last: a stream opened meanwhile on a resolution made before the flag ends too
        await tokens.end_streams(redis, account_id=account_id)
    return len(token_hashes)


async def _run(args: argparse.Namespace, settings: CommonSettings) -> int:
    session = clients.cassandra_session(settings)
    redis = clients.redis_client(settings, name="accounts", max_connections=2)
    try:
        store = GraphStore(session, clients.write_consistency(settings))
        standing = AccountStanding(session, clients.write_consistency(settings))
        staff = StaffStore(session, clients.write_consistency(settings))
        if args.command == "disabled":
            for disabled_id, disabled_name in await standing.every():
                print(f"@{disabled_name}\tid {disabled_id}")
            return 0
        if args.command == "staff":
            for staff_id, role in sorted((await staff.every()).items(), key=lambda member: -member[1].position):
                found = await store.account(staff_id)
                print(f"@{found['username'] if found else '?'}\tid {staff_id}\t{role.name}")
            return 0
        username = args.username.removeprefix("@").lower()
        account_id = await store.account_id_by_username(username)
        if account_id is None:
            print(f"no account @{username}", file=sys.stderr)
            return 1
        if args.command == "show":
            now, role = await asyncio.gather(standing.of(account_id), staff.role_of(account_id))
            held = len(await store.token_hashes_of(account_id))
            state = "suspended" if now.suspended else "disabled" if now.disabled else "enabled"
            print(f"@{username}\tid {account_id}\t{state}\t{held} tokens\t{role.name or 'not staff'}")
            return 0
        if args.command == "role":
            role = EVERYONE if args.role == "none" else ROLES[args.role]
            await staff.set(account_id, role)
            # The profile shows the role (the Account's ``roles``): every copy of the card goes with the cached one.
            await AccountCards(redis, session, settings.public_url).forget(account_id)
            print(f"@{username} (id {account_id}) {'is no longer staff' if role == EVERYONE else 'is ' + role.name}")
            return 0
        held = await set_disabled(store, standing, redis, account_id, args.command == "disable")
        print(f"@{username} (id {account_id}) {args.command}d; its {held} tokens "
              f"{'refused from now on' if args.command == 'disable' else 'work again'}")
        return 0
    finally:
        await redis.aclose()
        clients.close_cassandra(session)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.graph.accounts", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, what in (("disable", "refuse the account's tokens and sign-ins"),
                       ("enable", "give the account its tokens and sign-ins back"),
                       ("show", "whether the account is enabled, disabled or suspended, and how many tokens it has")):
        commands.add_parser(name, help=what).add_argument("username", help="the account's username (@ optional)")
    commands.add_parser("disabled", help="every disabled account, by username (a scan of all accounts)")
    giving = commands.add_parser("role", help="make the account staff, or (none) no longer")
    giving.add_argument("username", help="the account's username (@ optional)")
    giving.add_argument("role", choices=[*ROLES, "none"])
    commands.add_parser("staff", help="every staff account and its role, highest first")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args, CommonSettings()))


if __name__ == "__main__":
    raise SystemExit(main())
