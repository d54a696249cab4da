"""The operator's announcements (kicau/announcements.py), which every account then reads
(``GET /api/v1/announcements``):

    python -m services.graph.announce add "Maintenance tonight, 22:00 UTC" [--starts-at ISO] [--ends-at ISO] [--all-day]
    python -m services.graph.announce list
    python -m services.graph.announce remove ID

It writes Cassandra directly, with the services' settings (``KICAU_CASSANDRA_*``), as the seeding tool does.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from datetime import UTC, datetime

from kicau import clients
from kicau.announcements import MAX_TEXT, Announcement, AnnouncementStore, entity, tell
from kicau.ids import id_from_ms
from kicau.settings import CommonSettings


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def _run(args: argparse.Namespace, settings: CommonSettings) -> int:
    session = clients.cassandra_session(settings)
    redis = clients.redis_client(settings, name="announce", max_connections=2)
    try:
        store = AnnouncementStore(session, clients.write_consistency(settings))
        if args.command == "add":
            now = datetime.now(UTC)
            # An id of its moment, its low bits random: an operator's few never meet.
            made = Announcement(id_from_ms(int(now.timestamp() * 1000)) | secrets.randbits(16), args.text,
                                args.starts_at, args.ends_at, args.all_day, now, now)
            await store.add(made)
            if made.shown(now):  # one shown later is seen when clients next ask
                await tell(redis, "announcement", entity(made, read=False, reactions={},
                                                         public_url=settings.public_url))
            print(made.id)
        elif args.command == "list":
            for each in await store.every():
                print(f"{each.id}\t{each.starts_at or '-'}\t{each.ends_at or '-'}\t{each.text}")
        else:
            await store.remove(args.id)
            await tell(redis, "announcement.delete", str(args.id))
    finally:
        await redis.aclose()
        clients.close_cassandra(session)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.graph.announce", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="publish an announcement")
    add.add_argument("text")
    add.add_argument("--starts-at", type=_moment, default=None, help="shown from then (ISO 8601); default: now")
    add.add_argument("--ends-at", type=_moment, default=None, help="shown until then (ISO 8601); default: always")
    add.add_argument("--all-day", action="store_true", help="the times name days, not moments")
    commands.add_parser("list", help="every announcement, newest first")
    remove = commands.add_parser("remove", help="take an announcement down")
    remove.add_argument("id", type=int)
    args = parser.parse_args(argv)
    if args.command == "add" and not 0 < len(args.text.strip()) <= MAX_TEXT:
        parser.error(f"the text must be 1 to {MAX_TEXT} characters")
    return asyncio.run(_run(args, CommonSettings()))


if __name__ == "__main__":
    raise SystemExit(main())
