"""HTTP transport and lifecycle of the timeline service (internal API, called by the gateway)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec
from cassandra.cluster import Session
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import Field
from redis.asyncio import Redis
from starlette.routing import Route
from starlette.types import Receive, Scope

from kicau import clients, hashtags
from kicau.account_cards import AccountCards
from kicau.account_warnings import WarningStore
from kicau.audit_log import AuditLogStore
from kicau.blocks_and_mutes import BLOCK, MUTE, BlocksAndMutes, HideCopies
from kicau.bookmarks import BookmarkStore
from kicau.conversations import ConversationStore
from kicau.entities import compose_status_list
from kicau.favourites import FavouriteStore
from kicau.featured_tags import FeaturedTagStore
from kicau.feeds import Feeds, PageRequest
from kicau.filters import FilterCopies, FilterStore
from kicau.follow_options import FollowOptionStore
from kicau.hot_routes import Answer, ServiceApp, acting_account, query, reading_account
from kicau.large_accounts import LargeAccounts
from kicau.linked_statuses import LinkedStatuses
from kicau.lists import MAX_MEMBERS, ListStore
from kicau.markers import TIMELINES, MarkerStore
from kicau.newest_ids import NewestIds
from kicau.notification_groups import GroupSpan, parse_group_key
from kicau.notification_policies import FIELDS, VERDICTS, PolicyStore
from kicau.notifications import FILTERED_TABLE, NotificationStore, wanted_types
from kicau.pins import PinStore
from kicau.polls import PollVotes
from kicau.public_timeline import PublicStatuses
from kicau.quotes import QuoteStore
from kicau.reader_marks import Mark, ReaderMarks
from kicau.reblogs import ReblogStore
from kicau.reports import ReportStore
from kicau.settings import CommonSettings
from kicau.staff import StaffStore
from kicau.status_cards import StatusCards
from kicau.tag_follows import TagFollowStore
from kicau.tag_history import PREFIX, TagNames
from kicau.tag_timeline import TaggedStatuses
from kicau.thread_mutes import ThreadMuteStore
from kicau.tracked_cache import TrackedCache
from kicau.trend_reviews import TrendReviews
from kicau.web import (
    ACCOUNT_HEADER,
    NEXT_CURSOR_HEADER,
    NEXT_OFFSET_HEADER,
    PREV_CURSOR_HEADER,
    ApiError,
    acting_account_id,
    cassandra_ready,
    install_common,
    reader_of,
    redis_ready,
)
from services.timeline.service import DEFAULT_LIMIT, MAX_LIMIT, Page, ProfileFilter, TimelineService, clamp_limit
from services.timeline.settings import TimelineSettings
from services.timeline.store import TimelineStore

COVERED_HEADER = "X-Kicau-Covered"
Cursor = Annotated[int | None, Query(ge=0, lt=1 << 63)]
AccountHeader = Annotated[str | None, Header(alias=ACCOUNT_HEADER)]


def _pages(default: int, most: int) -> Any:
    """A dependency: Mastodon's cursors and ``limit`` (``default`` when absent, clamped to 1..``most``)."""

    async def page(max_id: Cursor = None, since_id: Cursor = None, min_id: Cursor = None,
                   limit: int | None = None) -> PageRequest:
        return PageRequest(max_id=max_id, since_id=since_id, min_id=min_id,
                           limit=max(1, min(default if limit is None else limit, most)))

    return Depends(page)


# Hashtags a hashtag timeline reads of each of ``any``, ``all`` and ``none``.
TAGS_PER_MODE = 4
StatusPage = Annotated[PageRequest, _pages(DEFAULT_LIMIT, MAX_LIMIT)]
# Accounts and notifications, as Mastodon pages them.
LongPage = Annotated[PageRequest, _pages(40, 80)]
# Followed hashtags, as Mastodon pages them.
TagPage = Annotated[PageRequest, _pages(100, 200)]
AccountPage = Annotated[PageRequest, _pages(40, 80)]


# A coroutine: FastAPI would run a plain ``def`` dependency in its thread pool, a hand-off per request.
async def _service(request: Request) -> TimelineService:
    service: TimelineService = request.app.state.service
    return service


Service = Annotated[TimelineService, Depends(_service)]


def build_service(common: CommonSettings, own: TimelineSettings, redis: Redis, session: Session,
                  copies: TrackedCache | None) -> TimelineService:
    """The timeline service over the engines' clients: its stores, caches and copies (``copies``: this
    process's tracked copies of Redis values, or None)."""
    accounts = AccountCards(redis, session, common.public_url)
    store = TimelineStore(session)
    favourites = FavouriteStore(session, clients.write_consistency(common))
    bookmarks = BookmarkStore(session, clients.write_consistency(common))
    pins = PinStore(session, clients.write_consistency(common))
    reblogs = ReblogStore(session, clients.write_consistency(common))
    thread_mutes = ThreadMuteStore(session, clients.write_consistency(common))
    hides = BlocksAndMutes(session, clients.write_consistency(common))
    hide_copies = HideCopies(redis, hides, copies)
    return TimelineService(
        settings=common,
        own=own,
        store=store,
        redis=redis,
        feeds=Feeds(redis, cap=common.home_timeline_cap, ttl_seconds=int(common.inactive_days * 86400),
                    copies=copies if own.home_page_copies else None),
        large=LargeAccounts(session, max_age=1.0),
        statuses=StatusCards(redis, session, accounts, common.public_url, copies,
                             marks=ReaderMarks(redis, {Mark.FAVOURITE: favourites, Mark.REBLOG: reblogs,
                                                     Mark.BOOKMARK: bookmarks, Mark.PIN: pins,
                                                     Mark.MUTE: thread_mutes},
                                         copies),
                             filters=FilterCopies(redis, FilterStore(session, clients.write_consistency(common)),
                                                  copies),
                             hides=hide_copies,
                             poll_votes=PollVotes(redis, session, clients.write_consistency(common))),
        accounts=accounts,
        notifications=NotificationStore(session, clients.write_consistency(common)),
        markers=MarkerStore(session, clients.write_consistency(common)),
        public=PublicStatuses(session, clients.write_consistency(common)),
        tagged=TaggedStatuses(session, clients.write_consistency(common)),
        tag_names=TagNames(redis, session),
        tag_follows=TagFollowStore(session, clients.write_consistency(common)),
        featured_tags=FeaturedTagStore(session, clients.write_consistency(common)),
        linked=LinkedStatuses(session, clients.write_consistency(common)),
        quotes=QuoteStore(session, clients.write_consistency(common)),
        favourite_store=favourites,
        bookmark_store=bookmarks,
        pin_store=pins,
        reblog_store=reblogs,
        hides=hides,
        hide_copies=hide_copies,
        follow_options=FollowOptionStore(session, clients.write_consistency(common)),
        lists=ListStore(session, clients.write_consistency(common)),
        conversations=ConversationStore(session, clients.write_consistency(common)),
        policies=PolicyStore(session, clients.write_consistency(common)),
        filtered=NotificationStore(session, clients.write_consistency(common), FILTERED_TABLE),
        reports=ReportStore(session, clients.write_consistency(common)),
        warnings=WarningStore(session, clients.write_consistency(common)),
        staff=StaffStore(session, clients.write_consistency(common)),
        trend_reviews=TrendReviews(session, clients.write_consistency(common), redis),
        audit=AuditLogStore(session, clients.write_consistency(common)),
        newest_ids=NewestIds(redis, store.newest_status_ids, copies, max_accounts=own.newest_ids_accounts)
        if own.newest_ids_accounts else None,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    common = CommonSettings()
    own = TimelineSettings()
    async with clients.engines(common, name="timeline", producer=False) as engines:
        redis, session = engines.redis, engines.session
        app.state.redis, app.state.session = redis, session  # what the readiness checks ask
        copies = TrackedCache(redis, max_entries=own.local_cache_entries) if own.local_cache_entries else None
        app.state.service = build_service(common, own, redis, session, copies)
        try:
            yield
        finally:
            if copies is not None:
                copies.close()


app = ServiceApp(service="timeline", title="Kicau timeline service", lifespan=lifespan)


install_common(app, service="timeline", readiness=[redis_ready(app), cassandra_ready(app)])


def _cursor_headers(page: Page) -> dict[str, str]:
    headers = {}
    if page.next_max_id is not None:
        headers[NEXT_CURSOR_HEADER] = str(page.next_max_id)
    if page.prev_min_id is not None:
        headers[PREV_CURSOR_HEADER] = str(page.prev_min_id)
    return headers


def _respond(page: Page) -> Response:
    return Response(page.body, media_type="application/json", headers=_cursor_headers(page))


async def home_page(scope: Scope, _: Receive | None = None) -> Answer:
    """The home page, the request every client makes most: a hot route (kicau/hot_routes.py). Its parameters
    are four integers, parsed here: FastAPI's parameter solving took as long as reading the page."""
    service: TimelineService = app.state.service
    return _answer(await service.home(acting_account(scope), _page_request(scope)))


def _page_request(scope: Scope) -> PageRequest:
    params = query(scope)
    return PageRequest(max_id=_cursor(params.get("max_id"), "max_id"),
                       since_id=_cursor(params.get("since_id"), "since_id"),
                       min_id=_cursor(params.get("min_id"), "min_id"),
                       limit=clamp_limit(_integer(params.get("limit"), "limit")))


def _answer(page: Page) -> Answer:
    return Answer(page.body, headers=[(k.lower().encode(), v.encode()) for k, v in _cursor_headers(page).items()])


async def home(request: Request) -> Response:
    """The same page as an ordinary route, for what the hot route does not answer (HEAD)."""
    return (await home_page(request.scope)).response()


def _integer(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None


def _cursor(raw: str | None, name: str) -> int | None:
    value = _integer(raw, name)
    if value is not None and not 0 <= value < 1 << 63:
        raise ApiError(400, f"{name} is out of range")
    return value


app.router.routes.append(Route("/internal/timelines/home", home, methods=["GET"]))
app.hot_routes.add("GET", "/internal/timelines/home", home_page)


async def account_statuses_page(scope: Scope, _: Receive | None = None) -> Answer:
    """An account's statuses as a hot route, like the home page (the FastAPI route below answers HEAD)."""
    raw: str = scope["path_params"]["account_id"]
    account_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else -1
    if not 0 <= account_id < 1 << 63:
        raise ApiError(404, "Record not found")
    service: TimelineService = app.state.service
    return _answer(await service.account_statuses(account_id, _page_request(scope), reading_account(scope),
                                                  _profile_filter(query(scope))))


def _profile_filter(params: Mapping[str, str | None]) -> ProfileFilter:
    """The gateway passes Mastodon's boolean profile parameters on as ``1`` when they are set (``pinned``,
    ``only_media``, ``exclude_replies``, ``exclude_reblogs``), and ``tagged`` as the hashtag it names, ``#``
    or not, in any case (a name that is no hashtag's finds nothing)."""
    tagged = (params.get("tagged") or "").removeprefix("#")
    return ProfileFilter(exclude_replies=params.get("exclude_replies") == "1",
                         exclude_reblogs=params.get("exclude_reblogs") == "1",
                         pinned=params.get("pinned") == "1",
                         tagged=hashtags.normal(tagged) if hashtags.valid(tagged) else "",
                         only_media=params.get("only_media") == "1",
                         nothing=bool(tagged and not hashtags.valid(tagged)))


app.hot_routes.add("GET", "/internal/accounts/{account_id}/statuses", account_statuses_page)


@app.get("/internal/accounts/{account_id}/statuses")
async def account_statuses(
    account_id: int,
    service: Service,
    request: StatusPage,
    account: AccountHeader = None,
    exclude_replies: str | None = None,
    exclude_reblogs: str | None = None,
    pinned: str | None = None,
    only_media: str | None = None,
    tagged: str | None = None,
) -> Response:
    shown = _profile_filter({"exclude_replies": exclude_replies, "exclude_reblogs": exclude_reblogs,
                             "pinned": pinned, "only_media": only_media, "tagged": tagged})
    return _respond(await service.account_statuses(account_id, request, reader_of(account), shown))


@app.get("/internal/timelines/public")
async def public_timeline(
    service: Service,
    request: StatusPage,
    account: AccountHeader = None,
    remote: str | None = None,
    only_media: str | None = None,
) -> Response:
    """The public timeline; the gateway passes Mastodon's ``remote`` and ``only_media`` on as ``1`` when set
    (``local`` changes nothing: every status here is local)."""
    return _respond(await service.public_timeline(request, reader_of(account), remote=remote == "1",
                                                  only_media=only_media == "1"))


@app.get("/internal/timelines/tag/{tag}")
async def tag_timeline(
    tag: str,
    service: Service,
    request: StatusPage,
    account: AccountHeader = None,
    any_of: Annotated[list[str], Query(alias="any")] = [],  # noqa: B006 (FastAPI copies a default)
    all_of: Annotated[list[str], Query(alias="all")] = [],  # noqa: B006
    none_of: Annotated[list[str], Query(alias="none")] = [],  # noqa: B006
    remote: str | None = None,
    only_media: str | None = None,
) -> Response:
    """A hashtag's timeline (its name with or without ``#``, in any case); a name that is no hashtag's has an
    empty one, as on Mastodon, and is left out of ``any``, ``all`` and ``none`` (Mastodon's ``any[]``,
    ``all[]``, ``none[]``), except that an ``all`` naming no hashtag finds nothing. ``remote`` and
    ``only_media`` as for the public timeline."""
    name = tag.removeprefix("#")
    if not hashtags.valid(name) or not all(hashtags.valid(t.removeprefix("#")) for t in all_of):
        return _respond(Page(body=b"[]", next_max_id=None, prev_min_id=None))

    def normal(names: list[str]) -> list[str]:
        # The first few of each, as Mastodon reads them (``TagFeed::LIMIT_PER_MODE``).
        return [hashtags.normal(n) for n in (t.removeprefix("#") for t in names[:TAGS_PER_MODE]) if hashtags.valid(n)]

    return _respond(await service.tag_timeline(hashtags.normal(name), request, reader_of(account),
                                               any_of=normal(any_of), all_of=normal(all_of),
                                               none_of=normal(none_of), remote=remote == "1",
                                               only_media=only_media == "1"))


@app.get("/internal/timelines/retracted")
async def retracted(service: Service, after: Cursor = None, tag: str | None = None,
                    list_id: Annotated[int | None, Query(alias="list", ge=1, lt=1 << 63)] = None,
                    account: AccountHeader = None) -> Response:
    """The public statuses (of the hashtag ``tag``, if given), or those of the members of the reader's list
    ``list``, edited and deleted since the status id ``after``, for the gateway's public, hashtag and list streams
    after a loss of its channel: ``{"edited": [<Status>, ...], "deleted": [{"id": "<id>", "account_id": "<author>",
    "tags": ["<hashtag>", ...]}, ...], "covered": bool}``, ``covered`` saying whether those are provably all
    (kicau/retractions.py)."""
    if after is None:
        raise ApiError(400, "after is required")
    if list_id is not None:
        found = await service.list_retracted(acting_account_id(account), list_id, after)
    else:
        if tag is not None and not hashtags.valid(tag.removeprefix("#")):
            raise ApiError(422, "tag is not a hashtag")
        found = await service.public_retracted(after, None if tag is None else hashtags.normal(tag.removeprefix("#")))
    body = b'{"edited":%b,"deleted":[%b],"covered":%b}' % (
        compose_status_list(found.edited),
        b",".join(msgspec.json.encode({"id": str(r.status_id), "account_id": str(r.author_id), "tags": r.tags})
                  for r in found.deleted),
        b"true" if found.covered else b"false")
    return Response(body, media_type="application/json")


@app.get("/internal/timelines/link")
async def link_timeline(service: Service, request: StatusPage,
                        url: Annotated[str, Query(min_length=1, max_length=2000)],
                        account: AccountHeader = None) -> Response:
    """The public statuses that share the page at ``url`` (kicau/linked_statuses.py), newest first."""
    return _respond(await service.link_timeline(url, request, reader_of(account)))


@app.get("/internal/statuses/{status_id}/quotes")
async def quotes_of(status_id: int, service: Service, request: StatusPage, account: AccountHeader = None) -> Response:
    """The accepted quotes of a status (kicau/quotes.py), newest first."""
    return _respond(await service.quotes_of(status_id, request, reader_of(account)))


@app.get("/internal/tags")
async def tags_starting(service: Service, q: str = "", limit: Annotated[int, Query(ge=1, le=40)] = 20,
                        account: AccountHeader = None) -> Response:
    """The hashtags whose names begin with ``q`` (with or without ``#``, in any case), the one named ``q``
    first; none for a ``q`` no hashtag's name can begin with."""
    prefix = hashtags.normal(q.strip().removeprefix("#"))
    if not PREFIX.fullmatch(prefix):
        return Response(b"[]", media_type="application/json")
    return Response(await service.tags_starting(prefix, reader_of(account), limit), media_type="application/json")


@app.get("/internal/trends/{kind}")
async def trends(kind: Literal["tags", "statuses", "links"], service: Service,
                 limit: Annotated[int, Query(ge=1, le=40)] = 20,
                 offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, account: AccountHeader = None) -> Response:
    """What trends, most first, from ``offset``: hashtags as Tags (kicau/tag_trends.py), statuses as the reader
    may see them (kicau/status_trends.py) or pages as their cards (kicau/link_trends.py); the gateway sets each
    one's page size."""
    ranking = {"tags": service.trending_tags, "statuses": service.trending_statuses,
               "links": service.trending_links}[kind]
    body, more = await ranking(reader_of(account), limit, offset)
    return Response(body, media_type="application/json",
                    headers={NEXT_OFFSET_HEADER: str(offset + limit)} if more else None)


@app.get("/internal/admin/trends/{kind}")
async def reviewed_trends(kind: Literal["tags", "statuses", "links"], service: Service,
                          limit: Annotated[int, Query(ge=1, le=40)] = 20,
                          offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
                          account: AccountHeader = None) -> Response:
    """Staff's listing of a trend (kicau/trend_reviews.py): what trends, reviewed or not, from ``offset``."""
    body, more = await service.reviewed_trends(acting_account_id(account), kind, limit, offset)
    return Response(body, media_type="application/json",
                    headers={NEXT_OFFSET_HEADER: str(offset + limit)} if more else None)


@app.post("/internal/admin/trends/{kind}/{item_id}/{verdict}")
async def review_trend(kind: Literal["tags", "statuses", "links"], item_id: str,
                       verdict: Literal["approve", "reject"], service: Service,
                       account: AccountHeader = None) -> Response:
    """Staff let a hashtag, status or page trend, or keep it from trending (kicau/trend_reviews.py)."""
    body = await service.review_trend(acting_account_id(account), kind, item_id, verdict == "approve")
    return Response(body, media_type="application/json")


@app.get("/internal/tags/{tag}")
async def tag(tag: str, service: Service, account: AccountHeader = None, known: str | None = None) -> Response:
    """Mastodon's Tag for a hashtag (its name with or without ``#``, in any case), or 404 when it is no
    hashtag's, or no public status has carried it and the reader does not follow it (``known=1``: whether or
    not, for the answer to a follow or unfollow)."""
    name = tag.removeprefix("#")
    if not hashtags.valid(name):
        raise ApiError(404, "Record not found")
    return Response(await service.tag(hashtags.normal(name), reader_of(account), known=known == "1"),
                    media_type="application/json")


@app.get("/internal/followed_tags")
async def followed_tags(service: Service, request: TagPage, account: AccountHeader = None) -> Response:
    return _respond(await service.followed_tags(acting_account_id(account), request))


@app.get("/internal/accounts/{account_id}/unwanted_authors")
async def unwanted_authors(account_id: int, service: Service) -> dict[str, list[int]]:
    """Whose statuses the account's public and hashtag timelines and streams leave out (the gateway's streams)."""
    return {"accounts": sorted(await service.unwanted_authors(account_id))}


async def _member_page(max_id: Cursor = None, since_id: Cursor = None, min_id: Cursor = None,
                       limit: int | None = None) -> PageRequest:
    """A list's members as Mastodon pages them: 40 by default, at most 80, and every one with ``limit=0``."""
    chosen = 40 if limit is None else MAX_MEMBERS if limit == 0 else max(1, min(limit, 80))
    return PageRequest(max_id=max_id, since_id=since_id, min_id=min_id, limit=chosen)


@app.get("/internal/lists/{list_id}/accounts")
async def list_members(list_id: int, service: Service, request: Annotated[PageRequest, Depends(_member_page)],
                       account: AccountHeader = None) -> Response:
    return _respond(await service.list_members(acting_account_id(account), list_id, request))


@app.get("/internal/timelines/list/{list_id}")
async def list_timeline(list_id: int, service: Service, request: StatusPage, account: AccountHeader = None,
                        ) -> Response:
    return _respond(await service.list_timeline(acting_account_id(account), list_id, request))


@app.get("/internal/blocks")
async def blocks(service: Service, request: AccountPage, account: AccountHeader = None) -> Response:
    return _respond(await service.hidden_accounts(acting_account_id(account), BLOCK, request))


@app.get("/internal/mutes")
async def mutes(service: Service, request: AccountPage, account: AccountHeader = None) -> Response:
    return _respond(await service.hidden_accounts(acting_account_id(account), MUTE, request))


async def home_after_page(scope: Scope, _: Receive | None = None) -> Answer:
    """The home timeline after a status id, oldest first, with the statuses edited and deleted since (the reader's
    own, those of the accounts and hashtags it follows, those that mention it), for a stream's resume and for what
    the gateway's user streams missed while its channel was lost (a burst of one read an account streaming there):
    a hot route. ``{"statuses": [...], "edited": [...], "deleted": ["<id>", ...], "retractions_covered": bool}``:
    ``X-Kicau-Covered`` says whether the statuses are all, ``retractions_covered`` whether the edits and deletions
    are. ``after`` is required; ``rebuild=0`` leaves a timeline Redis lost unrebuilt (then ``X-Kicau-Covered:
    0``)."""
    params = query(scope)
    after = _cursor(params.get("after"), "after")
    if after is None:
        raise ApiError(400, "after is required")
    rebuild = params.get("rebuild", "1").lower() not in ("0", "false")
    service: TimelineService = app.state.service
    missed = await service.home_after(acting_account(scope), after, rebuild=rebuild)
    body = b'{"statuses":%b,"edited":%b,"deleted":[%b],"retractions_covered":%b}' % (
        compose_status_list(missed.statuses), compose_status_list(missed.edited),
        b",".join(b'"%d"' % status_id for status_id in missed.deleted),
        b"true" if missed.retractions_covered else b"false")
    return Answer(body, headers=[(_COVERED_KEY, b"1" if missed.covered else b"0")])


async def home_after(request: Request) -> Response:
    """The same as an ordinary route, for what the hot route does not answer (HEAD)."""
    return (await home_after_page(request.scope)).response()


_COVERED_KEY = COVERED_HEADER.lower().encode()
app.router.routes.append(Route("/internal/timelines/home/after", home_after, methods=["GET"]))
app.hot_routes.add("GET", "/internal/timelines/home/after", home_after_page)


# Notifications (kicau/notifications.py): the gateway passes the reader's account, the page's cursors, and the
# types as comma-separated lists.


def _names(raw: str | None) -> list[str]:
    return [name for name in (raw or "").split(",") if name]


@app.get("/internal/notifications")
async def notifications(
    service: Service,
    request: LongPage,
    account: AccountHeader = None,
    types: str | None = None,
    exclude_types: str | None = None,
    account_id: Cursor = None,
    include_filtered: bool = False,
) -> Response:
    page = await service.notification_page(acting_account_id(account), request,
                                           wanted_types(_names(types), _names(exclude_types)), account_id,
                                           include_filtered)
    return _respond(page)


# Notification policies and requests (kicau/notification_policies.py), before the routes of one notification's id.


@app.get("/internal/notifications/policy")
async def notification_policy(service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.notification_policy(acting_account_id(account))


@app.patch("/internal/notifications/policy")
async def change_notification_policy(request: Request, service: Service,
                                     account: AccountHeader = None) -> dict[str, Any]:
    """The fields to change as query parameters (the gateway checked them)."""
    given = dict(request.query_params)
    if any(name not in FIELDS or value not in VERDICTS for name, value in given.items()):
        raise ApiError(422, f"Validation failed: each of {', '.join(FIELDS)} is one of {', '.join(VERDICTS)}")
    return await service.change_notification_policy(acting_account_id(account), given)


SenderId = Annotated[int, Path(ge=0, lt=1 << 63)]


@app.get("/internal/notifications/requests")
async def notification_requests(service: Service, request: LongPage, account: AccountHeader = None) -> Response:
    return _respond(await service.notification_requests(acting_account_id(account), request))


@app.post("/internal/notifications/requests/{answer}")
async def answer_notification_requests(answer: str, ids: str, service: Service,
                                       account: AccountHeader = None) -> Response:
    """Accept or dismiss the requests of ``ids`` (comma-separated senders); those that are not there are no
    matter."""
    if answer not in ("accept", "dismiss"):
        raise ApiError(404, "Record not found")
    try:
        senders = [int(part) for part in _names(ids)]
    except ValueError:
        raise ApiError(422, "Validation failed: ids must be request ids") from None
    await service.answer_requests(acting_account_id(account), senders, accept=answer == "accept")
    return Response(b"{}", media_type="application/json")


@app.get("/internal/notifications/requests/{sender_id}")
async def notification_request(sender_id: SenderId, service: Service, account: AccountHeader = None) -> Response:
    page = await service.notification_requests(acting_account_id(account), PageRequest(limit=1), only=sender_id)
    if page.body == b"[]":
        raise ApiError(404, "Record not found")
    return Response(page.body[1:-1], media_type="application/json")


@app.post("/internal/notifications/clear")
async def clear_notifications(
    service: Service, account: AccountHeader = None,
) -> Response:
    await service.clear_notifications(acting_account_id(account))
    return Response(b"{}", media_type="application/json")


# A page's groups at most (the gateway's grouped page holds up to 80).
MAX_GROUP_KEYS = 80


@app.get("/internal/notifications/group_counts")
async def notification_group_counts(
    service: Service, keys: str, account: AccountHeader = None, account_id: Cursor = None,
) -> dict[str, int]:
    """Each named group's whole count (kicau/notification_groups.py); ``keys`` comma-separated grouped keys."""
    spans = {key: parse_group_key(key) for key in _names(keys)}
    if not spans or len(spans) > MAX_GROUP_KEYS:
        raise ApiError(400, f"keys must name 1 to {MAX_GROUP_KEYS} groups")
    named = {key: span for key, span in spans.items() if isinstance(span, GroupSpan)}
    if len(named) != len(spans):
        raise ApiError(400, "keys must be grouped notification keys")
    return await service.notification_group_counts(acting_account_id(account), named, account_id)


@app.get("/internal/notifications/{notification_id}")
async def notification(
    notification_id: Annotated[int, Path(ge=0, lt=1 << 63)], service: Service,
    account: AccountHeader = None,
) -> Response:
    return Response(await service.notification(acting_account_id(account), notification_id),
                    media_type="application/json")


@app.post("/internal/notifications/{notification_id}/dismiss")
async def dismiss_notification(
    notification_id: Annotated[int, Path(ge=0, lt=1 << 63)], service: Service,
    account: AccountHeader = None,
) -> Response:
    await service.dismiss_notification(acting_account_id(account), notification_id)
    return Response(b"{}", media_type="application/json")


# Direct conversations (kicau/conversations.py), as Mastodon pages them (20 by default, at most 40).
ConversationPage = Annotated[PageRequest, _pages(20, 40)]
ConversationId = Annotated[int, Path(ge=0, lt=1 << 63)]


@app.get("/internal/conversations")
async def conversations(service: Service, request: ConversationPage, account: AccountHeader = None) -> Response:
    return _respond(await service.conversation_page(acting_account_id(account), request))


@app.post("/internal/conversations/{conversation_id}/read")
async def read_conversation(conversation_id: ConversationId, service: Service,
                            account: AccountHeader = None) -> Response:
    return Response(await service.read_conversation(acting_account_id(account), conversation_id),
                    media_type="application/json")


@app.post("/internal/conversations/{conversation_id}/forget")
async def forget_conversation(conversation_id: ConversationId, service: Service,
                              account: AccountHeader = None) -> Response:
    await service.forget_conversation(acting_account_id(account), conversation_id)
    return Response(b"{}", media_type="application/json")


@app.get("/internal/markers")
async def markers(service: Service, account: AccountHeader = None, timeline: str = "") -> Response:
    """The account's markers of the timelines named (comma-separated), each only if ever saved."""
    found = await service.markers.of(acting_account_id(account), timeline.split(","))
    return Response(msgspec.json.encode(found), media_type="application/json")


@app.post("/internal/markers")
async def save_markers(service: Service, request: Request, account: AccountHeader = None) -> Response:
    """Save markers: a JSON object of timeline name -> last read id (the gateway checked both)."""
    try:
        wanted = msgspec.json.decode(await request.body(), type=dict[str, Annotated[int, msgspec.Meta(ge=0)]])
    except msgspec.DecodeError as exc:
        raise ApiError(422, f"Validation failed: {exc}") from exc
    if not set(wanted) <= set(TIMELINES):
        raise ApiError(422, f"Validation failed: a marker's timeline is one of {', '.join(TIMELINES)}")
    account_id = acting_account_id(account)
    saved = {timeline: await service.markers.save(account_id, timeline, last_read_id)
             for timeline, last_read_id in wanted.items()}
    return Response(msgspec.json.encode(saved), media_type="application/json")


@app.get("/internal/favourites")
async def favourites(service: Service, request: StatusPage, account: AccountHeader = None) -> Response:
    return _respond(await service.favourites(acting_account_id(account), request))


@app.get("/internal/statuses/{status_id}/reblogged_by")
async def reblogged_by(
    status_id: int, service: Service, request: LongPage, account: AccountHeader = None,
) -> Response:
    return _respond(await service.reblogged_by(status_id, request, reader_of(account)))


@app.get("/internal/bookmarks")
async def bookmarks(service: Service, request: StatusPage, account: AccountHeader = None) -> Response:
    return _respond(await service.bookmarks(acting_account_id(account), request))


@app.get("/internal/statuses/{status_id}/favourited_by")
async def favourited_by(
    status_id: Annotated[int, Path(ge=0, lt=1 << 63)], service: Service, request: LongPage,
    account: AccountHeader = None,
) -> Response:
    return _respond(await service.favourited_by(status_id, request, reader_of(account)))


@app.get("/internal/statuses")
async def statuses_by_id(
    service: Service, account: AccountHeader = None,
    ids: Annotated[list[Annotated[int, Field(ge=0, lt=1 << 63)]], Query(alias="id", max_length=40)] = [],  # noqa: B006
    moderating: bool = False,
) -> Response:
    """Statuses by id (``TimelineService.statuses_by_id``), for their reader: the token is optional. With
    ``moderating`` (a report's statuses, read for its moderator), a suspended author's are shown too."""
    reader = replace(reader_of(account), moderating=moderating)
    return Response(await service.statuses_by_id(ids, reader), media_type="application/json")


@app.get("/internal/statuses/{status_id}/context")
async def context(
    status_id: Annotated[int, Path(ge=0, lt=1 << 63)], service: Service,
    account: AccountHeader = None,
) -> Response:
    """A thread around a status (``TimelineService.context``), for its reader: the token is optional."""
    return Response(await service.context(status_id, reader_of(account)), media_type="application/json")
