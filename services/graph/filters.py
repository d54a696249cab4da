"""The graph service's side of filters (kicau/filters.py): making, changing and deleting an account's filters and
their rules, each change written to Cassandra, then the readers' copy dropped under a new version, then announced
to the gateways (whose streams filter again and tell their clients ``filters_changed``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute
from kicau.durations import whole_seconds
from kicau.filters import (
    ACTIONS,
    CONTEXTS,
    MAX_EXPIRES_IN,
    MAX_FILTERS,
    MAX_KEYWORD,
    MAX_RULES,
    MAX_TITLE,
    Filter,
    FilterStore,
    Keyword,
    StatusRule,
    change_commands,
    encode,
    filter_entity,
    keyword_entity,
    status_entity,
    v1_entities,
)
from kicau.ids import SnowflakeGenerator
from kicau.resp import round_trip
from kicau.web import ApiError

# Mastodon's: a keyword given without ``whole_word`` matches whole words (the column's default).
DEFAULT_WHOLE_WORD = True


def _invalid(message: str) -> ApiError:
    return ApiError(422, f"Validation failed: {message}")


def _title(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("Title can't be blank")
    if len(value) > MAX_TITLE:
        raise _invalid(f"Title is too long (maximum is {MAX_TITLE} characters)")
    return value.strip()


def _contexts(value: Any) -> tuple[str, ...]:
    named = [value] if isinstance(value, str) else value
    if not isinstance(named, list) or not named or not all(isinstance(c, str) for c in named):
        raise _invalid("Context can't be blank")
    unknown = [c for c in named if c not in CONTEXTS]
    if unknown:
        raise _invalid(f"Context contains invalid context values: {', '.join(unknown)[:200]}")
    return tuple(c for c in CONTEXTS if c in named)


def _action(value: Any) -> str:
    if value not in ACTIONS:
        raise _invalid("Filter action is not included in the list")
    return str(value)


def _expires_at(value: Any) -> datetime | None:
    """``expires_in`` seconds from now; none (or an empty value) for a filter that never expires."""
    if value is None or value == "":
        return None
    seconds = whole_seconds(value)
    if seconds is None or not 0 < seconds <= MAX_EXPIRES_IN:
        raise _invalid(f"Expires in must be a number of seconds from 1 to {MAX_EXPIRES_IN}")
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "t", "true", "y", "yes", "on", "0", "f", "false", "n",
                                                    "no", "off"):
        return value.lower() in ("1", "t", "true", "y", "yes", "on")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _invalid("whole_word must be true or false")


def _keyword(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("Keyword can't be blank")
    if len(value) > MAX_KEYWORD:
        raise _invalid(f"Keyword is too long (maximum is {MAX_KEYWORD} characters)")
    return value.strip()


@dataclass(frozen=True, slots=True)
class _Given:
    """One keyword of ``keywords_attributes``, checked whole (a dropped one too)."""

    id: int | None
    keyword: str | None
    whole_word: bool | None
    destroy: bool


def _attributes(value: Any, *, adding: bool) -> list[_Given]:
    """``keywords_attributes``: a list of keywords (a form's indexed keys come as one, services/gateway); each
    checked whole, ``keyword`` required where it makes one (``adding``, or an item without an ``id``)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _invalid("keywords_attributes must be a list of keywords")
    if len(value) > MAX_RULES:
        raise _invalid(f"a filter holds at most {MAX_RULES} keywords")
    found = []
    for item in value:
        raw_id = None if adding else item.get("id")
        keyword_id = None
        if raw_id is not None and raw_id != "":
            keyword_id = int(raw_id) if isinstance(raw_id, str | int) and str(raw_id).isdigit() else -1
        whole = item.get("whole_word")
        found.append(_Given(
            keyword_id,
            _keyword(item.get("keyword")) if keyword_id is None or item.get("keyword") is not None else None,
            None if whole is None else _flag(whole, DEFAULT_WHOLE_WORD), _flag(item.get("_destroy"), False)))
    return found


@dataclass
class FilterService:
    store: FilterStore
    redis: Redis
    ids: SnowflakeGenerator
    session: Session

    def __post_init__(self) -> None:
        self._status = self.session.prepare("SELECT id, deleted_at FROM statuses WHERE id = ?")

    async def _changing(self, account_id: int) -> None:
        """Before Cassandra's write: a copy built meanwhile is not stored (kicau/filters.py, ``COPY_SECONDS``)."""
        await round_trip(self.redis, change_commands(account_id))

    async def _changed(self, account_id: int) -> None:
        """After Cassandra's write: the readers' copy dropped under a new version, and the filters as they now are
        announced to the gateways (``<account>:<filters>``), which filter its streams with them from then on."""
        await round_trip(self.redis, change_commands(account_id))
        now = encode(await self.store.all(account_id))
        await self.redis.publish(keys.FILTERS_CHANNEL, str(account_id).encode() + b":" + now)

    async def all(self, account_id: int) -> list[Filter]:
        return await self.store.all(account_id)

    async def one(self, account_id: int, filter_id: int) -> Filter:
        for found in await self.store.all(account_id):
            if found.id == filter_id:
                return found
        raise ApiError(404, "Record not found")

    async def entities(self, account_id: int) -> list[dict[str, Any]]:
        return [filter_entity(f) for f in await self.all(account_id)]

    async def create(self, account_id: int, given: dict[str, Any]) -> dict[str, Any]:
        """A new filter with its keywords; 422 for anything Mastodon would refuse, or past ``MAX_FILTERS``."""
        made = Filter(self.ids.next_id(), _title(given.get("title")), _contexts(given.get("context")),
                      "warn" if given.get("filter_action") is None else _action(given["filter_action"]),
                      _expires_at(given.get("expires_in")))
        words = [Keyword(self.ids.next_id(), made.id, item.keyword or "",
                         DEFAULT_WHOLE_WORD if item.whole_word is None else item.whole_word)
                 for item in _attributes(given.get("keywords_attributes"), adding=True) if not item.destroy]
        if len(await self.store.all(account_id)) >= MAX_FILTERS:
            raise _invalid(f"You cannot have more than {MAX_FILTERS} filters")
        made = replace(made, keywords=tuple(words))
        await self._changing(account_id)
        await self.store.write(account_id, made, keywords=words)
        await self._changed(account_id)
        return filter_entity(made)

    async def update(self, account_id: int, filter_id: int, given: dict[str, Any]) -> dict[str, Any]:
        """Change what is given: title, contexts, action, expiry (``expires_in`` empty: never), and keywords
        (``keywords_attributes``: with an ``id``, that keyword changed, or dropped with ``_destroy``; without one, a
        new keyword)."""
        current = await self.one(account_id, filter_id)
        changed = replace(
            current,
            title=current.title if given.get("title") is None else _title(given["title"]),
            contexts=current.contexts if given.get("context") is None else _contexts(given["context"]),
            action=current.action if given.get("filter_action") is None else _action(given["filter_action"]),
            expires_at=current.expires_at if "expires_in" not in given else _expires_at(given["expires_in"]))
        kept = {k.id: k for k in current.keywords}
        written: list[Keyword] = []
        dropped: list[int] = []
        for item in _attributes(given.get("keywords_attributes"), adding=False):
            if item.id is None:
                if not item.destroy:
                    written.append(Keyword(self.ids.next_id(), filter_id, item.keyword or "",
                                           DEFAULT_WHOLE_WORD if item.whole_word is None else item.whole_word))
                continue
            if item.id not in kept:
                raise ApiError(404, "Record not found")
            if item.destroy:
                dropped.append(item.id)
                continue
            old = kept[item.id]
            written.append(replace(old, keyword=item.keyword or old.keyword,
                                   whole_word=old.whole_word if item.whole_word is None else item.whole_word))
        words = {**kept, **{k.id: k for k in written}}
        for keyword_id in dropped:
            words.pop(keyword_id, None)
        if len(words) + len(current.statuses) > MAX_RULES:
            raise _invalid(f"a filter holds at most {MAX_RULES} keywords and statuses")
        changed = replace(changed, keywords=tuple(sorted(words.values(), key=lambda k: k.id)))
        await self._changing(account_id)
        await self.store.write(account_id, changed, keywords=written, dropped_keywords=dropped)
        await self._changed(account_id)
        return filter_entity(changed)

    async def delete(self, account_id: int, filter_id: int) -> None:
        found = await self.one(account_id, filter_id)
        await self._changing(account_id)
        await self.store.delete(account_id, found)
        await self._changed(account_id)

    # A filter's rules, one at a time --------------------------------------------------------------------------

    async def keywords(self, account_id: int, filter_id: int) -> list[dict[str, Any]]:
        return [keyword_entity(k) for k in (await self.one(account_id, filter_id)).keywords]

    async def _keyword(self, account_id: int, keyword_id: int) -> Keyword:
        return (await self._holding(account_id, keyword_id))[1]

    async def keyword(self, account_id: int, keyword_id: int) -> dict[str, Any]:
        return keyword_entity(await self._keyword(account_id, keyword_id))

    async def add_keyword(self, account_id: int, filter_id: int, given: dict[str, Any]) -> dict[str, Any]:
        found = await self.one(account_id, filter_id)
        self._room(found)
        made = Keyword(self.ids.next_id(), filter_id, _keyword(given.get("keyword")),
                       _flag(given.get("whole_word"), DEFAULT_WHOLE_WORD))
        await self._changing(account_id)
        await self.store.rules(account_id, keywords=[made])
        await self._changed(account_id)
        return keyword_entity(made)

    async def update_keyword(self, account_id: int, keyword_id: int, given: dict[str, Any]) -> dict[str, Any]:
        old = await self._keyword(account_id, keyword_id)
        changed = replace(old, keyword=old.keyword if given.get("keyword") is None else _keyword(given["keyword"]),
                          whole_word=_flag(given.get("whole_word"), old.whole_word))
        await self._changing(account_id)
        await self.store.rules(account_id, keywords=[changed])
        await self._changed(account_id)
        return keyword_entity(changed)

    async def delete_keyword(self, account_id: int, keyword_id: int) -> None:
        await self._keyword(account_id, keyword_id)
        await self._changing(account_id)
        await self.store.rules(account_id, dropped_keywords=[keyword_id])
        await self._changed(account_id)

    async def statuses(self, account_id: int, filter_id: int) -> list[dict[str, Any]]:
        return [status_entity(s) for s in (await self.one(account_id, filter_id)).statuses]

    async def _status_rule(self, account_id: int, rule_id: int) -> StatusRule:
        for found in await self.store.all(account_id):
            for rule in found.statuses:
                if rule.id == rule_id:
                    return rule
        raise ApiError(404, "Record not found")

    async def status_rule(self, account_id: int, rule_id: int) -> dict[str, Any]:
        return status_entity(await self._status_rule(account_id, rule_id))

    async def add_status(self, account_id: int, filter_id: int, status_id: int) -> dict[str, Any]:
        """A status filtered by the filter: 404 for a status that does not exist, 422 for one it already holds."""
        found = await self.one(account_id, filter_id)
        self._room(found)
        rows = await execute(self.session, self._status, (status_id,))
        if not rows or rows[0].get("deleted_at") is not None:
            raise ApiError(404, "Record not found")
        if any(rule.status_id == status_id for rule in found.statuses):
            raise _invalid("Status has already been taken")
        made = StatusRule(self.ids.next_id(), filter_id, status_id)
        await self._changing(account_id)
        await self.store.rules(account_id, statuses=[made])
        await self._changed(account_id)
        return status_entity(made)

    async def delete_status(self, account_id: int, rule_id: int) -> None:
        await self._status_rule(account_id, rule_id)
        await self._changing(account_id)
        await self.store.rules(account_id, dropped_statuses=[rule_id])
        await self._changed(account_id)

    # The v1 API: a filter of one keyword, named by the keyword's id ---------------------------------------------

    async def create_v1(self, account_id: int, given: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/filters``: a filter titled by its ``phrase``, of that one keyword (``hide`` when
        ``irreversible``), as Mastodon makes one for a v1 client."""
        phrase = _keyword(given.get("phrase"))
        made = await self.create(account_id, {
            "title": phrase[:MAX_TITLE], "context": given.get("context"), "expires_in": given.get("expires_in"),
            "filter_action": "hide" if _flag(given.get("irreversible"), False) else "warn",
            "keywords_attributes": [{"keyword": phrase, "whole_word": _flag(given.get("whole_word"), True)}]})
        return v1_entities([made])[0]

    async def _holding(self, account_id: int, keyword_id: int) -> tuple[Filter, Keyword]:
        for found in await self.store.all(account_id):
            for keyword in found.keywords:
                if keyword.id == keyword_id:
                    return found, keyword
        raise ApiError(404, "Record not found")

    async def update_v1(self, account_id: int, keyword_id: int, given: dict[str, Any]) -> dict[str, Any]:
        """``PUT /api/v1/filters/:id``: the keyword's phrase and whole-word, and its filter's contexts, action and
        expiry (those given)."""
        found, _ = await self._holding(account_id, keyword_id)
        changes: dict[str, Any] = {"keywords_attributes": [{
            "id": str(keyword_id), "keyword": given.get("phrase"), "whole_word": given.get("whole_word")}]}
        if given.get("context") is not None:
            changes["context"] = given["context"]
        if given.get("irreversible") is not None:
            changes["filter_action"] = "hide" if _flag(given["irreversible"], False) else "warn"
        if "expires_in" in given:
            changes["expires_in"] = given["expires_in"]
        changed = await self.update(account_id, found.id, changes)
        return next(v for v in v1_entities([changed]) if v["id"] == str(keyword_id))

    async def delete_v1(self, account_id: int, keyword_id: int) -> None:
        """``DELETE /api/v1/filters/:id``: the keyword, and its filter with it when nothing else is left in it."""
        found, _ = await self._holding(account_id, keyword_id)
        if len(found.keywords) == 1 and not found.statuses:
            await self.delete(account_id, found.id)
        else:
            await self.delete_keyword(account_id, keyword_id)

    @staticmethod
    def _room(found: Filter, adding: Sequence[object] = (None,)) -> None:
        if len(found.keywords) + len(found.statuses) + len(adding) > MAX_RULES:
            raise _invalid(f"a filter holds at most {MAX_RULES} keywords and statuses")
