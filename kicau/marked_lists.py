"""The lists of what accounts mark (favourites, bookmarks), paged by the mark's own id with Mastodon's cursors.

A mark's id is a snowflake taken when it is made, so the lists are in the order the marks were made, and the Link
headers Mastodon gives for them (``max_id``, ``since_id``, ``min_id``) are those ids, not the statuses'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from kicau.clients import execute
from kicau.ids import ABOVE_EVERY_ID

Held = TypeVar("Held")


@dataclass(frozen=True)
class MarkedList(Generic[Held]):
    """One list: its table, partitioned by ``key``, clustered by the ``mark`` id, holding ``column`` (read as
    ``held`` reads it: a status or account id by default, a hashtag's name for followed hashtags)."""

    newest: PreparedStatement  # newest first below a cursor (max_id, since_id)
    oldest: PreparedStatement  # oldest first just above one (min_id)
    mark: str
    column: str
    held: Callable[[Any], Held]

    @classmethod
    def prepare(cls, prepare: Callable[[str], PreparedStatement], table: str, key: str, mark: str,
                column: str) -> MarkedList[int]:
        return MarkedList.prepare_of(int, prepare, table, key, mark, column)

    @staticmethod
    def prepare_of(held: Callable[[Any], Held], prepare: Callable[[str], PreparedStatement], table: str, key: str,
                   mark: str, column: str) -> MarkedList[Held]:
        head = f"SELECT {mark}, {column} FROM {table} WHERE {key} = ? AND {mark}"
        return MarkedList(prepare(f"{head} < ? AND {mark} > ? LIMIT ?"),
                          prepare(f"{head} > ? AND {mark} < ? ORDER BY {mark} ASC LIMIT ?"), mark, column, held)

    async def page(self, session: Session, key: int, *, max_id: int | None, since_id: int | None,
                   min_id: int | None, limit: int) -> list[tuple[int, Held]]:
        """(mark id, the other column) newest first, with Mastodon's cursors (``min_id``: the page just above
        it, as Mastodon gives it)."""
        upper = max_id if max_id is not None else ABOVE_EVERY_ID
        if min_id is not None:
            rows = await execute(session, self.oldest, (key, min_id, upper, limit))
            rows.reverse()
        else:
            rows = await execute(session, self.newest, (key, upper, since_id if since_id is not None else -1, limit))
        return [(int(row[self.mark]), self.held(row[self.column])) for row in rows]
