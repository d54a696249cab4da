"""The operator's side of reports (kicau/reports.py), which accounts file with ``POST /api/v1/reports``:

    python -m services.graph.reports list [--days 7] [--limit 50] [--open]
    python -m services.graph.reports resolve ID

``list`` prints the newest first, a line each: id, when, reporter, target, category, whether resolved, the statuses
and rules named, the comment. ``resolve`` marks one acted on (its ``action_taken``). It reads and writes Cassandra
directly, with the services' settings (``KICAU_CASSANDRA_*``), as the announcements tool does.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from kicau import clients
from kicau.entities import iso_time
from kicau.reports import ReportStore
from kicau.settings import CommonSettings


async def _run(args: argparse.Namespace, settings: CommonSettings) -> int:
    session = clients.cassandra_session(settings)
    try:
        store = ReportStore(session, clients.write_consistency(settings))
        if args.command == "list":
            for each in await store.newest(args.days, args.limit):
                if args.open and each.action_taken_at is not None:
                    continue
                state = f"resolved {iso_time(each.action_taken_at)}" if each.action_taken_at else "open"
                print(f"{each.id}\t{iso_time(each.created_at)}\t{each.account_id}\t{each.target_account_id}\t"
                      f"{each.category}\t{state}\tstatuses={','.join(map(str, each.status_ids)) or '-'}\t"
                      f"rules={','.join(map(str, each.rule_ids)) or '-'}\t{each.comment!r}")
            return 0
        found = await store.one(args.id)
        if found is None:
            print(f"no report {args.id}")
            return 1
        await store.resolve(found, datetime.now(UTC))
        return 0
    finally:
        clients.close_cassandra(session)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.graph.reports", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the newest reports")
    listing.add_argument("--days", type=int, default=7, help="how many days back (default 7)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--open", action="store_true", help="only those not resolved")
    resolve = commands.add_parser("resolve", help="mark a report acted on")
    resolve.add_argument("id", type=int)
    args = parser.parse_args(argv)
    if args.command == "list" and not (1 <= args.days <= 366 and 1 <= args.limit <= 10_000):
        parser.error("--days must be 1 to 366 and --limit 1 to 10000")
    return asyncio.run(_run(args, CommonSettings()))


if __name__ == "__main__":
    raise SystemExit(main())
