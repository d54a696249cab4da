"""The operator's side of accounts: disabling one's login, as Mastodon's moderators can (``tootctl accounts modify
USERNAME --disable``).

    python -m services.graph.accounts disable USERNAME
    python -m services.graph.accounts enable USERNAME
    python -m services.graph.accounts show USERNAME
    python -m services.graph.accounts disabled

A disabled account's tokens are refused with 403 ``{"error": "Your login is currently disabled"}`` on every request,
and signing in (the password grant, the authorization form) answers the same to whoever gives its password. Its
statuses, follows and followers stay as they are, and its tokens are kept: ``enable`` gives it its sessions back.

How it takes effect at once: the flag is written to Cassandra (``accounts.disabled``), then every token cache entry of
the account is dropped from Redis, and with them the gateways' copies (kicau/tracked_cache.py), so the next request
with any of its tokens is resolved again from Cassandra by the graph service, which reads the flag. A resolution
that read the account just before the flag changed could put an old entry back after the drop; the graph service
caches nothing it took longer than ``FRESH_RESOLUTION_SECONDS`` to resolve, and this tool drops the entries a second
time after waiting longer than that.

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

from redis.asyncio import Redis

from kicau import clients, tokens
from kicau.disabled_accounts import DisabledAccounts
from kicau.settings import CommonSettings
from services.graph.store import GraphStore


async def set_disabled(store: GraphStore, flags: DisabledAccounts, redis: Redis, account_id: int,
                       disabled: bool) -> int:
    """Disable or enable the account's login; how many tokens it has."""
    await flags.set(account_id, disabled)
    token_hashes = await store.token_hashes_of(account_id)
    await tokens.forget(redis, *token_hashes)
    await asyncio.sleep(tokens.FRESH_RESOLUTION_SECONDS + 0.5)
    await tokens.forget(redis, *token_hashes)
    if disabled:  # last: a stream opened meanwhile on a resolution made before the flag ends too
        await tokens.end_streams(redis, account_id=account_id)
    return len(token_hashes)


async def _run(args: argparse.Namespace, settings: CommonSettings) -> int:
    session = clients.cassandra_session(settings)
    redis = clients.redis_client(settings, name="accounts", max_connections=2)
    try:
        store = GraphStore(session, clients.write_consistency(settings))
        flags = DisabledAccounts(session, clients.write_consistency(settings))
        if args.command == "disabled":
            for disabled_id, disabled_name in await flags.every():
                print(f"@{disabled_name}\tid {disabled_id}")
            return 0
        username = args.username.removeprefix("@").lower()
        account_id = await store.account_id_by_username(username)
        if account_id is None:
            print(f"no account @{username}", file=sys.stderr)
            return 1
        if args.command == "show":
            disabled = await flags.disabled(account_id)
            held = len(await store.token_hashes_of(account_id))
            print(f"@{username}\tid {account_id}\t{'disabled' if disabled else 'enabled'}\t{held} tokens")
            return 0
        held = await set_disabled(store, flags, redis, account_id, args.command == "disable")
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
                       ("show", "whether the account is disabled, and how many tokens it has")):
        commands.add_parser(name, help=what).add_argument("username", help="the account's username (@ optional)")
    commands.add_parser("disabled", help="every disabled account, by username (a scan of all accounts)")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args, CommonSettings()))


if __name__ == "__main__":
    raise SystemExit(main())
