"""Status edits: ``PUT /api/v1/statuses/:id`` rewrites a status's text, spoiler, sensitivity, language and
attachments, and every version is kept for ``GET /api/v1/statuses/:id/history``.

The status's row is rewritten in place (its id, author, visibility, reply and creation time never change) and
the versions go to ``status_edits`` in the same logged batch: the first edit also keeps the status as posted,
under the status's own id, so a history is whole from its first edit on. A status never edited has no rows
there, and its history is its one version, as Mastodon answers it.

Home and list timelines hold ids, so nothing in them changes: the status's cached value is dropped and the next
read renders the new version from the row. The hashtags' timelines follow the new text and the streams that had
the status get a ``status.update`` (the fanout, on ``StatusEdited``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import msgspec
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from kicau.clients import execute, write_preparer
from kicau.ids import time_of_id
from kicau.media import StoredMedia


@dataclass(frozen=True)
class MediaAttributes:
    """An attachment's new description and focal point in an edit (``media_attributes[]``); None: unchanged."""

    id: int
    description: str | None = None
    focus: tuple[float, float] | None = None

    def applied_to(self, media: StoredMedia) -> StoredMedia:
        return msgspec.structs.replace(
            media, description=media.description if self.description is None else self.description,
            focus_x=media.focus_x if self.focus is None else self.focus[0],
            focus_y=media.focus_y if self.focus is None else self.focus[1])


# An attachment an edit describes anew: (as the edit leaves it, as it was).
Described = tuple[StoredMedia, StoredMedia]
# A write of another store's that goes into an edit's batch (or its undo's), as that store prepared it.
Alongside = tuple[PreparedStatement, tuple[Any, ...]]


@dataclass(frozen=True)
class StatusChange:
    """What an edit may change (Mastodon's update takes no visibility and no reply). Without a language the
    status keeps its own, as Mastodon's does; the spoiler and sensitivity are as given (absent: none)."""

    text: str
    sensitive: bool = False
    spoiler_text: str = ""
    language: str | None = None
    # A poll the edit names (clients send the status's own back): it must be the one the status has, as this
    # server does not change a poll (kicau/polls.py). None: not named.
    poll: Any = None
    # The attachments the status is to have, in order (services/post/media.py): its own kept, the account's
    # unattached uploads added, those left out removed (kept for the history). None: not named, unchanged.
    media_ids: tuple[int, ...] | None = None
    # New descriptions and focal points of attachments the status is to have (each once).
    media_attributes: tuple[MediaAttributes, ...] = ()
    # A quote post's (kicau/quotes.py): the status it quotes as the edit names it (None: not named; an edit may not
    # change it), and who may quote it from now on (None: unchanged).
    quoted_status_id: int | None = None
    quote_policy: str | None = None

    def applied_to(self, row: dict[str, Any]) -> StatusChange:
        """The change with the status's language where it names none."""
        return self if self.language is not None else replace(self, language=row.get("language"))


def changes_anything(row: dict[str, Any], change: StatusChange, media_column: str | None) -> bool:
    """Whether the edit differs from the status as it stands (``media_column``: the attachments it would have):
    an edit that changes nothing keeps no version (and a retried one, whose first try was written, finds it so)."""
    return ((row.get("text") or "", bool(row.get("sensitive")), row.get("spoiler_text") or "", row.get("language"),
             row.get("media")) != (change.text, change.sensitive, change.spoiler_text, change.language, media_column))


# A version's attachments when it had none (None in ``status_edits.media``: kept before versions held theirs).
NO_MEDIA = "[]"


def version_media(version: dict[str, Any], row: dict[str, Any]) -> str | None:
    """The attachments a version had: its own, or for a version kept before versions held theirs, the status's
    (its attachments had not changed then: the first edit that changes them writes them into such versions)."""
    kept = version.get("media")
    return row.get("media") if kept is None else kept


def version_time(status_id: int, version_id: int, created_at: datetime) -> datetime:
    """When a version was made: the status's own creation for the version as posted, else its snowflake's."""
    if version_id == status_id:
        return created_at
    return time_of_id(version_id)


_ENCODE_MEDIA = msgspec.json.Encoder().encode


class EditStore:
    """Cassandra's side of an edit: the row rewritten and the versions kept, in one logged batch (both or
    neither: a history never shows a version the status does not have, nor the reverse)."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._consistency = write_consistency
        write = write_preparer(session, write_consistency)
        self._rewrite = write(
            "UPDATE statuses SET text = ?, content = ?, spoiler_text = ?, sensitive = ?, language = ?, mentions = ?,"
            " media = ?, card = ?, edited_at = ? WHERE id = ?")
        self._keep_version = write(
            "INSERT INTO status_edits (status_id, version_id, text, content, spoiler_text, sensitive, language,"
            " media) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        self._version_media = write("UPDATE status_edits SET media = ? WHERE status_id = ? AND version_id = ?")
        self._forget_version = write("DELETE FROM status_edits WHERE status_id = ? AND version_id = ?")
        # An attachment's own row (services/post/media.py) follows the description an edit gives it: it is what
        # the attachment shows if it is attached again, and what ``GET /api/v1/media/:id`` answers.
        self._describe_media = write("UPDATE media_attachments SET media = ? WHERE id = ?")
        # A follow's languages are matched against the author's list entries (kicau/follow_options.py).
        self._entry_language = write(
            "UPDATE statuses_by_account SET language = ? WHERE account_id = ? AND status_id = ?")
        self._versions = session.prepare(
            "SELECT version_id, text, content, spoiler_text, sensitive, language, media FROM status_edits"
            " WHERE status_id = ?")

    def _batch(self) -> BatchStatement:
        return BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)

    def _version_values(self, status_id: int, version_id: int, row: dict[str, Any]) -> tuple[Any, ...]:
        return (status_id, version_id, row.get("text") or "", row.get("content") or "",
                row.get("spoiler_text") or "", bool(row.get("sensitive")), row.get("language"),
                row.get("media") or NO_MEDIA)

    def _row_values(self, status_id: int, row: dict[str, Any], edited_at: datetime | None) -> tuple[Any, ...]:
        return (row.get("text") or "", row.get("content") or "", row.get("spoiler_text") or "",
                bool(row.get("sensitive")), row.get("language"), row.get("mentions") or None, row.get("media"),
                row.get("card"), edited_at, status_id)

    async def write(self, before: dict[str, Any], after: dict[str, Any], version_id: int,
                    edited_at: datetime, described: Sequence[Described] = (), alongside: Sequence[Alongside] = ()
                    ) -> None:
        """The row rewritten to ``after`` and the new version kept (with the one as posted, on a first edit), the
        rows of the attachments ``described`` anew, and the writes ``alongside`` (the link preview's plan and the
        old link's timeline, services/post/service.py). An edit that changes the attachments first writes the
        status's old ones into the versions kept before versions held theirs (one read of the versions)."""
        status_id = before["id"]
        batch = self._batch()
        if before.get("edited_at") is None:
            batch.add(self._keep_version, self._version_values(status_id, status_id, before))
        elif after.get("media") != before.get("media"):
            for version in await self.versions(status_id):
                if version.get("media") is None:
                    batch.add(self._version_media, (before.get("media") or NO_MEDIA, status_id, version["version_id"]))
        batch.add(self._keep_version, self._version_values(status_id, version_id, after))
        batch.add(self._rewrite, self._row_values(status_id, after, edited_at))
        if after.get("language") != before.get("language"):
            batch.add(self._entry_language, (after.get("language"), before["account_id"], status_id))
        for now, _ in described:
            batch.add(self._describe_media, (_ENCODE_MEDIA(now).decode(), now.id))
        for statement, values in alongside:
            batch.add(statement, values)
        await execute(self._session, batch)

    async def undo(self, before: dict[str, Any], version_id: int, described: Sequence[Described] = (),
                   alongside: Sequence[Alongside] = ()) -> None:
        """An edit whose event could not be published, taken back: the row as it was, the new version gone (the
        version as posted may stay: a history reads versions only once the row says it was edited), the
        attachments ``described`` as they were, and the writes ``alongside`` that restore what the edit's own
        changed besides."""
        status_id = before["id"]
        batch = self._batch()
        batch.add(self._forget_version, (status_id, version_id))
        batch.add(self._rewrite, self._row_values(status_id, before, before.get("edited_at")))
        batch.add(self._entry_language, (before.get("language"), before["account_id"], status_id))
        for _, was in described:
            batch.add(self._describe_media, (_ENCODE_MEDIA(was).decode(), was.id))
        for statement, values in alongside:
            batch.add(statement, values)
        await execute(self._session, batch)

    async def versions(self, status_id: int) -> list[dict[str, Any]]:
        """Every kept version, oldest first."""
        return list(await execute(self._session, self._versions, (status_id,)))
