"""What a process derives from objects it is handed again and again, remembered by the object itself.

The process-local copies (kicau/tracked_cache.py) hand out the same reply object for a key until Redis reports the
key changed, and the token copies the same TokenInfo for a token. Whatever is derived from one of those (a page's
parsed ids, a token's call headers, its rate-limit bucket) is the same for as long as the object is: deriving it
again on every request was measurable on the hottest paths (bench/README.md). An entry holds its object, so the
object's id cannot name another one while the entry lives; a changed value is a new object, so an entry is never
stale, only unused until it is pushed out (the oldest first, past ``max_entries``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class IdentityMemo(Generic[K, V]):
    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("an identity memo holds at least one entry")
        self._max_entries = max_entries
        self._held: dict[int, tuple[K, V]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def sources(self) -> list[K]:
        """The objects held, oldest first."""
        return [source for source, _ in self._held.values()]

    def get(self, source: K, derive: Callable[[K], V]) -> V:
        """``derive(source)``, derived once for as long as the entry is held (an error is raised, never kept)."""
        held = self._held.get(id(source))
        if held is not None and held[0] is source:
            return held[1]
        value = derive(source)
        self._held.pop(id(source), None)
        self._held[id(source)] = (source, value)
        if len(self._held) > self._max_entries:
            del self._held[next(iter(self._held))]
        return value
