"""The gateway's copies of attachments' files (kicau/media.py): a file never changes under its name (a new upload
is a new id), so the small ones a timeline shows over and over (previews, avatars) are kept in memory a while
instead of read from Cassandra through the post service each time (two reads and a hop: ~850 files a second on
the development machine).

Bounded by bytes (least recently used out first) and by age: a file removed (its upload deleted, or expired
unattached) may still be served from here for up to ``seconds``, as from any cache in front of Mastodon's files;
the gateway drops its own copy when it relays the delete.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import NamedTuple


class CachedFile(NamedTuple):
    data: bytes
    content_type: str
    kept_until: float


class MediaFiles:
    def __init__(self, *, most_bytes: int, largest: int, seconds: float) -> None:
        self._most_bytes = most_bytes
        self._largest = largest
        self._seconds = seconds
        self._files: OrderedDict[str, CachedFile] = OrderedDict()
        self._bytes = 0

    def get(self, path: str) -> CachedFile | None:
        found = self._files.get(path)
        if found is None:
            return None
        if found.kept_until < time.monotonic():
            self._drop(path)
            return None
        self._files.move_to_end(path)
        return found

    def put(self, path: str, data: bytes, content_type: str) -> None:
        if len(data) > self._largest or self._most_bytes <= 0:
            return
        self._drop(path)
        self._files[path] = CachedFile(data, content_type, time.monotonic() + self._seconds)
        self._bytes += len(data)
        while self._bytes > self._most_bytes:
            oldest = next(iter(self._files))
            self._drop(oldest)

    def forget(self, prefix: str) -> None:
        """Drop every file whose path starts with ``prefix`` (an attachment's, deleted)."""
        for path in [p for p in self._files if p.startswith(prefix)]:
            self._drop(path)

    def _drop(self, path: str) -> None:
        gone = self._files.pop(path, None)
        if gone is not None:
            self._bytes -= len(gone.data)
