"""An account's posting defaults, as Mastodon keeps them: what a new status is when its request does not say.

**The four defaults** (``PATCH /api/v1/accounts/update_credentials`` with ``source[privacy]``,
``source[sensitive]``, ``source[language]``, ``source[quote_policy]``; read back in verify_credentials' ``source``
and ``GET /api/v1/preferences``): the visibility (``public``, ``unlisted`` or ``private``; never ``direct``, as
Mastodon refuses it), whether attachments are marked sensitive, the language (an ISO 639-1 code, or none), and who
may quote (kicau/quotes.py). A status that names any of them keeps its own; Mastodon's rule. A scheduled status
takes them when it is scheduled (its params say what it will be posted with).

**The record** is the account's row (migration 0048: ``posting_*`` columns, none meaning Mastodon's default),
written by the graph service. The post service reads them on every post, so it reads them through the copies Redis
keeps true (kicau/reader_copies.py): a poster whose copy this process holds costs its post no round trip. A change
moves the copy's version and drops it before and after the write (``change_commands``), as filters and hides do.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys, quotes
from kicau.clients import execute
from kicau.languages import ISO_639_1
from kicau.reader_copies import COPY_SECONDS, ReaderCopies, change_commands
from kicau.tracked_cache import TrackedCache
from kicau.visibility import PRIVATE, PUBLIC, UNLISTED
from kicau.web import ApiError, flag

# The visibilities a default may be (Mastodon's ``source[privacy]``).
PRIVACIES: Final = (PUBLIC, UNLISTED, PRIVATE)
# ``source[...]`` as update_credentials takes them -> the accounts table's columns.
COLUMNS: Final = {"privacy": "posting_privacy", "sensitive": "posting_sensitive",
                  "language": "posting_language", "quote_policy": "posting_quote_policy"}


class PostingDefaults(msgspec.Struct, frozen=True):
    """What a new status of the account is unless its request says otherwise."""

    privacy: str = PUBLIC
    sensitive: bool = False
    language: str | None = None
    quote_policy: str = quotes.ANYONE


MASTODON: Final = PostingDefaults()
_encode: Final = msgspec.json.encode
_decode: Final = msgspec.json.Decoder(PostingDefaults).decode


def of_row(row: dict[str, Any] | None) -> PostingDefaults:
    """The defaults an accounts row holds (a column not set: Mastodon's)."""
    if not row:
        return MASTODON
    return PostingDefaults(privacy=row.get("posting_privacy") or PUBLIC,
                           sensitive=bool(row.get("posting_sensitive")),
                           language=row.get("posting_language") or None,
                           quote_policy=row.get("posting_quote_policy") or quotes.ANYONE)


def applied(defaults: PostingDefaults, *, visibility: str | None, sensitive: bool | None, language: str | None,
            quote_policy: str | None) -> tuple[str, bool, str | None, str | None]:
    """A new status's visibility, sensitivity, language and quote policy: each as its request gave it, else the
    account's default. A quote policy left at Mastodon's default stays None (the row keeps none: what its
    visibility allows, kicau/quotes.py)."""
    return (visibility or defaults.privacy, defaults.sensitive if sensitive is None else sensitive,
            language or defaults.language,
            quote_policy or (defaults.quote_policy if defaults.quote_policy != quotes.ANYONE else None))


def checked(given: dict[str, Any]) -> dict[str, Any]:
    """The columns to write for the ``source[...]`` values given (by their short names, ``COLUMNS``), each checked:
    a 422 names the first that is not one Mastodon allows. A blank language clears it (written as an empty
    string, read as none)."""
    columns: dict[str, Any] = {}
    privacy = given.get("privacy")
    if privacy is not None:
        if privacy not in PRIVACIES:
            raise ApiError(422, "Validation failed: source[privacy] must be public, unlisted or private")
        columns[COLUMNS["privacy"]] = privacy
    sensitive = given.get("sensitive")
    if sensitive is not None:
        columns[COLUMNS["sensitive"]] = flag(sensitive, "source[sensitive]")
    language = given.get("language")
    if language is not None:
        if not isinstance(language, str) or (language and language.lower() not in ISO_639_1):
            raise ApiError(422, "Validation failed: source[language] is not a valid language code")
        columns[COLUMNS["language"]] = language.lower()
    policy = given.get("quote_policy")
    if policy is not None:
        if policy not in quotes.POLICIES:
            raise ApiError(422, "Validation failed: source[quote_policy] must be public, followers or nobody")
        columns[COLUMNS["quote_policy"]] = policy
    return columns


def source(defaults: PostingDefaults) -> dict[str, Any]:
    """Their part of verify_credentials' ``source``."""
    return {"privacy": defaults.privacy, "sensitive": defaults.sensitive, "language": defaults.language,
            "quote_policy": defaults.quote_policy}


def preferences(source_block: dict[str, Any]) -> dict[str, Any]:
    """``GET /api/v1/preferences`` from verify_credentials' ``source`` (Kicau keeps no reading preferences: Mastodon's
    defaults)."""
    return {
        "posting:default:visibility": source_block.get("privacy") or PUBLIC,
        "posting:default:quote_policy": source_block.get("quote_policy") or quotes.ANYONE,
        "posting:default:sensitive": bool(source_block.get("sensitive")),
        "posting:default:language": source_block.get("language") or None,
        "reading:expand:media": "default",
        "reading:expand:spoilers": False,
    }


def change_commands_of(account_id: int) -> list[bytes]:
    """Sent before and after a change's write (kicau/reader_copies.py)."""
    return change_commands((keys.posting_defaults(account_id), keys.posting_defaults_version(account_id)))


class DefaultsStore:
    """Cassandra's side, read by the post service (the graph service writes the row with the profile)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._read = session.prepare(f"SELECT {', '.join(COLUMNS.values())} FROM accounts WHERE id = ?")

    async def of(self, account_id: int) -> PostingDefaults:
        rows = await execute(self._session, self._read, (account_id,))
        return of_row(rows[0] if rows else None)


class DefaultsCopies:
    """An account's defaults as posters read them (``ReaderCopies``: a tracked copy held here, else Redis's copy,
    else Cassandra's row)."""

    def __init__(self, redis: Redis, store: DefaultsStore, copies: TrackedCache | None = None) -> None:
        self._copies = ReaderCopies(redis, copies, key=keys.posting_defaults, version=keys.posting_defaults_version,
                                    build=self._build, decode=_decode)
        self._store = store

    async def _build(self, account_id: int) -> tuple[bytes, int]:
        return _encode(await self._store.of(account_id)), COPY_SECONDS

    async def of(self, account_id: int) -> PostingDefaults:
        return await self._copies.of(account_id)
