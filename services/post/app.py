"""HTTP transport and lifecycle of the post service (internal API, called by the gateway)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import msgspec
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.types import Receive, Scope

from kicau import clients, media, polls, posting_defaults
from kicau.account_cards import AccountCards
from kicau.account_standing import AccountStanding
from kicau.blocks_and_mutes import BlocksAndMutes, HideCopies
from kicau.bookmarks import BookmarkStore
from kicau.favourites import FavouriteStore
from kicau.hot_routes import Answer, ServiceApp, acting_account, header, query_items, read_body
from kicau.ids import SnowflakeGenerator, lease_worker
from kicau.linked_statuses import LinkedStatuses
from kicau.mentions import MentionResolver
from kicau.pins import PinStore
from kicau.polls import PollVotes
from kicau.posting_defaults import DefaultsCopies, DefaultsStore
from kicau.reader_marks import Mark, ReaderMarks
from kicau.reblogs import ReblogStore
from kicau.settings import CommonSettings
from kicau.status_cards import StatusCards
from kicau.thread_mutes import ThreadMuteStore
from kicau.tracked_cache import TrackedCache
from kicau.visibility import PUBLIC
from kicau.web import (
    ACCOUNT_HEADER,
    NEXT_CURSOR_HEADER,
    PREV_CURSOR_HEADER,
    ApiError,
    acting_account_id,
    cassandra_ready,
    describe_errors,
    install_common,
    reader_of,
    redis_ready,
)
from services.post.edits import EditStore, MediaAttributes, StatusChange
from services.post.link_previews import LinkPreviewStore, PageCards, PagePictures, link_preview_runner
from services.post.media import Attachments, MediaStore, expiry_runner
from services.post.poll_endings import PollEndingStore, poll_end_runner
from services.post.scheduled import ScheduledStore, scheduled_runner
from services.post.service import IDEMPOTENCY_IN_FLIGHT_SECONDS, NewStatus, PostService
from services.post.settings import PostSettings
from services.post.store import StatusStore


class PollForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    options: Any = None
    expires_in: Any = None
    multiple: Any = False
    hide_totals: Any = False


MediaIds = list[Annotated[int, Field(ge=0, lt=1 << 63)]] | None


def _each_once(ids: list[int] | None) -> tuple[int, ...]:
    return tuple(dict.fromkeys(ids or ()))


class MediaAttributesForm(BaseModel):
    """An attachment's new description and focal point in an edit (the gateway checked both; checked again)."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(ge=0, lt=1 << 63)
    description: StrictStr | None = None
    focus: StrictStr | None = None

    def attributes(self) -> MediaAttributes:
        return MediaAttributes(id=self.id, focus=_focus(self.focus),
                               description=None if self.description is None else media.check_description(
                                   self.description))


class StatusChangeForm(BaseModel):
    """An edit's body (services/post/edits.py): what Mastodon's update takes beside media (a poll it names must be
    the status's own: kicau/polls.py)."""

    model_config = ConfigDict(extra="ignore")

    status: StrictStr
    sensitive: bool = False
    spoiler_text: StrictStr = ""
    language: StrictStr | None = None
    poll: PollForm | None = None
    media_ids: MediaIds = None
    media_attributes: list[MediaAttributesForm] | None = Field(default=None, max_length=media.MAX_PER_STATUS)
    # A quote post's (kicau/quotes.py): the status it quotes, named again (an edit keeps it), and who may quote it.
    quoted_status_id: int | None = Field(default=None, ge=0, lt=1 << 63)
    quote_approval_policy: Literal["public", "followers", "nobody"] | None = None


class StatusForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: StrictStr
    # Not given: the author's posting default (kicau/posting_defaults.py), as the language and quote policy.
    visibility: StrictStr | None = None
    sensitive: bool | None = None
    spoiler_text: StrictStr = ""
    language: StrictStr | None = None
    in_reply_to_id: int | None = Field(default=None, ge=0, lt=1 << 63)
    # Given: kept for later (services/post/scheduled.py) and answered as a ScheduledStatus.
    scheduled_at: StrictStr | None = None
    # A poll (kicau/polls.py): options, expires_in, multiple, hide_totals, checked there.
    poll: PollForm | None = None
    # Uploaded attachments (services/post/media.py), in the order shown.
    media_ids: MediaIds = None
    # Quote posts (kicau/quotes.py): the status quoted, and who may quote this one.
    quoted_status_id: int | None = Field(default=None, ge=0, lt=1 << 63)
    quote_approval_policy: Literal["public", "followers", "nobody"] | None = None


class RescheduleForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    scheduled_at: StrictStr


# A coroutine: FastAPI would run a plain ``def`` dependency in its thread pool, a hand-off per request.
async def _service(request: Request) -> PostService:
    service: PostService = request.app.state.service
    return service


Service = Annotated[PostService, Depends(_service)]
AccountHeader = Annotated[str | None, Header(alias=ACCOUNT_HEADER)]
IDEMPOTENCY_KEY_HEADER = b"idempotency-key"
JSON = "application/json"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    common = CommonSettings()
    own = PostSettings()
    async with clients.engines(common, name="post", producer=True) as engines:
        redis, session = engines.redis, engines.session
        app.state.redis, app.state.session = redis, session  # what the readiness checks ask
        producer = engines.kafka()
        # This process's tracked copies of per-account values it reads on every post (kicau/tracked_cache.py).
        copies = TrackedCache(redis, max_entries=own.local_cache_entries) if own.local_cache_entries else None
        accounts = AccountCards(redis, session, common.public_url)
        favourites = FavouriteStore(session, clients.write_consistency(common))
        bookmarks = BookmarkStore(session, clients.write_consistency(common))
        pins = PinStore(session, clients.write_consistency(common))
        reblogs = ReblogStore(session, clients.write_consistency(common))
        thread_mutes = ThreadMuteStore(session, clients.write_consistency(common))
        poll_votes = PollVotes(redis, session, clients.write_consistency(common))
        app.state.service = PostService(
            settings=common,
            own=own,
            store=StatusStore(session, clients.write_consistency(common), group_max=own.write_group_max,
                              groups_in_flight=own.write_groups_in_flight),
            redis=redis,
            producer=producer,
            accounts=accounts,
            statuses=StatusCards(redis, session, accounts, common.public_url,
                                 marks=ReaderMarks(redis, {Mark.FAVOURITE: favourites, Mark.REBLOG: reblogs,
                                                         Mark.BOOKMARK: bookmarks, Mark.PIN: pins,
                                                         Mark.MUTE: thread_mutes}),
                                 hides=HideCopies(redis, BlocksAndMutes(session, clients.write_consistency(common))),
                                 poll_votes=poll_votes),
            mentions=MentionResolver(session, accounts, common.public_url),
            ids=SnowflakeGenerator(await lease_worker(redis)),
            favourites=favourites,
            reblogs=reblogs,
            bookmarks=bookmarks,
            pins=pins,
            thread_mutes=thread_mutes,
            poll_votes=poll_votes,
            poll_endings=PollEndingStore(session, clients.write_consistency(common)),
            edits=EditStore(session, clients.write_consistency(common)),
            scheduled=ScheduledStore(session, clients.write_consistency(common)),
            attachments=Attachments(MediaStore(session, clients.write_consistency(common)), common.public_url,
                                    in_flight_seconds=IDEMPOTENCY_IN_FLIGHT_SECONDS,
                                    unattached_seconds=own.unattached_media_seconds),
            link_previews=LinkPreviewStore(session, clients.write_consistency(common)),
            linked=LinkedStatuses(session, clients.write_consistency(common)),
            defaults=DefaultsCopies(redis, DefaultsStore(session), copies),
            standing=AccountStanding(session, clients.write_consistency(common)),
            page_cards=PageCards(redis, timeout=own.link_preview_timeout_seconds,
                                 max_bytes=own.link_preview_max_bytes,
                                 allow_private=common.link_previews_allow_private_hosts,
                                 user_agent=f"Kicau link previews (+{common.public_url})",
                                 picture_max_bytes=own.link_preview_picture_max_bytes)
            if own.link_previews else None,
        )
        service: PostService = app.state.service
        if service.page_cards is not None:
            service.page_cards.keep_pictures(PagePictures(
                session, clients.write_consistency(common), keep=service.attachments.keep_page_picture,
                drop=service.attachments.drop_page_picture, next_id=service.ids.next_id))
        schedulers = [
            asyncio.create_task(scheduled_runner(service.scheduled, service.publish_scheduled,
                                                 poll_seconds=own.scheduled_poll_seconds).run()),
            asyncio.create_task(poll_end_runner(service.poll_endings, service.publish_poll_end,
                                                poll_seconds=own.scheduled_poll_seconds).run()),
            asyncio.create_task(expiry_runner(service.attachments.store, poll_seconds=own.scheduled_poll_seconds)
                                .run()),
        ]
        if service.page_cards is not None:
            previews = link_preview_runner(service.link_previews, service.show_preview,
                                           poll_seconds=own.scheduled_poll_seconds,
                                           concurrency=own.link_preview_concurrency)
            service.previews_planned = previews.wake
            schedulers.append(asyncio.create_task(previews.run()))
        try:
            yield
        finally:
            for scheduler in schedulers:
                scheduler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scheduler
            if service.page_cards is not None:
                await service.page_cards.close()
            if copies is not None:
                copies.close()


app = ServiceApp(service="post", title="Kicau post service", lifespan=lifespan)


install_common(app, service="post", readiness=[redis_ready(app), cassandra_ready(app)])


# The gateway bounds what a client may send (KICAU_GATEWAY_MAX_BODY_BYTES); this only guards the internal port.
MAX_CREATE_BODY_BYTES = 1024 * 1024
_VALIDATE_FORM = StatusForm.model_validate_json


async def create_status(scope: Scope, receive: Receive) -> Answer:
    """``POST /internal/statuses``, once per post: a hot route (kicau/hot_routes.py). FastAPI's layers and its
    body and header solving were a third of this service's CPU per post; the body is the same pydantic model,
    validated from the JSON bytes in one call, and its errors are worded as before."""
    try:
        form = _VALIDATE_FORM(await read_body(receive, MAX_CREATE_BODY_BYTES))
    except ValidationError as exc:
        raise ApiError(422, describe_errors(exc.errors())) from None
    poll = form.poll
    service: PostService = app.state.service
    visibility, sensitive, language, quote_policy = posting_defaults.applied(
        await service.defaults.of(acting_account(scope)), visibility=form.visibility, sensitive=form.sensitive,
        language=form.language, quote_policy=form.quote_approval_policy)
    draft = NewStatus(
        text=form.status, visibility=visibility, sensitive=sensitive, spoiler_text=form.spoiler_text,
        language=language, in_reply_to_id=form.in_reply_to_id,
        poll=None if poll is None else polls.definition(poll.options, poll.expires_in, poll.multiple,
                                                        poll.hide_totals),
        media_ids=_each_once(form.media_ids),
        quoted_status_id=form.quoted_status_id, quote_policy=quote_policy,
    )
    if form.scheduled_at:
        return Answer(await service.schedule(account_id=acting_account(scope), draft=draft,
                                             scheduled_at=form.scheduled_at,
                                             poll_seconds=None if poll is None else int(poll.expires_in),
                                             idempotency_key=header(scope, IDEMPOTENCY_KEY_HEADER)))
    body = await service.create(account_id=acting_account(scope), draft=draft,
                                idempotency_key=header(scope, IDEMPOTENCY_KEY_HEADER))
    return Answer(body)


app.hot_routes.add("POST", "/internal/statuses", create_status)


@app.get("/internal/statuses/{status_id}")
async def get_status(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.get(status_id, reader_of(account)), media_type=JSON)


@app.get("/internal/polls/{status_id}")
async def get_poll(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.poll(status_id=status_id, reader=reader_of(account)), media_type=JSON)


class VoteForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    choices: Any = None


@app.post("/internal/polls/{status_id}/votes")
async def vote(status_id: int, form: VoteForm, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.vote(account_id=acting_account_id(account), status_id=status_id,
                                       choices=form.choices), media_type=JSON)


@app.put("/internal/statuses/{status_id}")
async def edit_status(status_id: int, form: StatusChangeForm, service: Service,
                      account: AccountHeader = None) -> Response:
    change = StatusChange(text=form.status, sensitive=form.sensitive, spoiler_text=form.spoiler_text,
                          language=form.language, poll=form.poll.options if form.poll is not None else None,
                          media_ids=None if form.media_ids is None else _each_once(form.media_ids),
                          media_attributes=_described_once(form.media_attributes or []),
                          quoted_status_id=form.quoted_status_id, quote_policy=form.quote_approval_policy)
    return Response(await service.edit(account_id=acting_account_id(account), status_id=status_id, change=change),
                    media_type=JSON)


class InteractionPolicyForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    quote_approval_policy: Literal["public", "followers", "nobody"]


@app.put("/internal/statuses/{status_id}/interaction_policy")
async def interaction_policy(status_id: int, form: InteractionPolicyForm, service: Service,
                             account: AccountHeader = None) -> Response:
    return Response(await service.set_quote_policy(account_id=acting_account_id(account), status_id=status_id,
                                                   policy=form.quote_approval_policy), media_type=JSON)


@app.post("/internal/statuses/{status_id}/quotes/{quote_id}/revoke")
async def revoke_quote(status_id: int, quote_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.revoke_quote(account_id=acting_account_id(account), status_id=status_id,
                                               quote_id=quote_id), media_type=JSON)


def _described_once(given: list[MediaAttributesForm]) -> tuple[MediaAttributes, ...]:
    if len({form.id for form in given}) != len(given):
        raise ApiError(422, "Validation failed: media_attributes must describe each attachment once")
    return tuple(form.attributes() for form in given)


@app.get("/internal/statuses/{status_id}/history")
async def status_history(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.history(status_id, reader_of(account)), media_type=JSON)


@app.get("/internal/statuses/{status_id}/source")
async def status_source(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.source(status_id, reader_of(account)), media_type=JSON)


@app.post("/internal/statuses/{status_id}/favourite")
async def favourite(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.favourite(account_id=acting_account_id(account), status_id=status_id),
                    media_type=JSON)


@app.post("/internal/statuses/{status_id}/unfavourite")
async def unfavourite(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.unfavourite(account_id=acting_account_id(account), status_id=status_id),
                    media_type=JSON)


@app.post("/internal/statuses/{status_id}/reblog")
async def reblog(status_id: int, service: Service, account: AccountHeader = None,
                 visibility: str = PUBLIC) -> Response:
    return Response(await service.reblog(account_id=acting_account_id(account), status_id=status_id,
                                         visibility=visibility), media_type=JSON)


@app.post("/internal/statuses/{status_id}/unreblog")
async def unreblog(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.unreblog(account_id=acting_account_id(account), status_id=status_id),
                    media_type=JSON)


@app.post("/internal/statuses/{status_id}/pin")
async def pin(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.pin(account_id=acting_account_id(account), status_id=status_id),
                    media_type=JSON)


@app.post("/internal/statuses/{status_id}/unpin")
async def unpin(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.unpin(account_id=acting_account_id(account), status_id=status_id),
                    media_type=JSON)


@app.post("/internal/statuses/{status_id}/mute")
async def mute_thread(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.mute_thread(account_id=acting_account_id(account), status_id=status_id),
                    media_type=JSON)


@app.post("/internal/statuses/{status_id}/unmute")
async def unmute_thread(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.unmute_thread(account_id=acting_account_id(account), status_id=status_id),
                    media_type=JSON)


@app.post("/internal/statuses/{status_id}/bookmark")
async def bookmark(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.bookmark(account_id=acting_account_id(account), status_id=status_id),
                    media_type=JSON)


@app.post("/internal/statuses/{status_id}/unbookmark")
async def unbookmark(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.unbookmark(account_id=acting_account_id(account), status_id=status_id),
                    media_type=JSON)


@app.delete("/internal/statuses/{status_id}")
async def delete_status(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    body = await service.delete(account_id=acting_account_id(account), status_id=status_id)
    return Response(body, media_type=JSON)


# Scheduled statuses (services/post/scheduled.py) ----------------------------------------------------------------

Cursor = Annotated[int | None, Query(ge=0, lt=1 << 63)]


@app.get("/internal/scheduled_statuses")
async def scheduled_statuses(service: Service, account: AccountHeader = None, max_id: Cursor = None,
                             since_id: Cursor = None, min_id: Cursor = None,
                             limit: Annotated[int, Query(ge=1, le=40)] = 20) -> Response:
    body, older, newer = await service.scheduled_page(account_id=acting_account_id(account), max_id=max_id,
                                                      since_id=since_id, min_id=min_id, limit=limit)
    headers = {**({NEXT_CURSOR_HEADER: str(older)} if older is not None else {}),
               **({PREV_CURSOR_HEADER: str(newer)} if newer is not None else {})}
    return Response(body, media_type=JSON, headers=headers)


@app.get("/internal/scheduled_statuses/{scheduled_id}")
async def scheduled_status(scheduled_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.scheduled_status(account_id=acting_account_id(account), scheduled_id=scheduled_id),
                    media_type=JSON)


@app.put("/internal/scheduled_statuses/{scheduled_id}")
async def reschedule(scheduled_id: int, form: RescheduleForm, service: Service,
                     account: AccountHeader = None) -> Response:
    return Response(await service.reschedule(account_id=acting_account_id(account), scheduled_id=scheduled_id,
                                             scheduled_at=form.scheduled_at), media_type=JSON)


@app.delete("/internal/scheduled_statuses/{scheduled_id}")
async def unschedule(scheduled_id: int, service: Service, account: AccountHeader = None) -> Response:
    await service.unschedule(account_id=acting_account_id(account), scheduled_id=scheduled_id)
    return Response(b"{}", media_type=JSON)


# Media attachments (services/post/media.py) --------------------------------------------------------------------


class MediaChangeForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    description: StrictStr | None = None
    focus: StrictStr | None = None


def _focus(value: str | None) -> tuple[float, float] | None:
    return None if value is None or value == "" else media.parse_focus(value)


async def upload_media(scope: Scope, receive: Receive) -> Answer:
    """``POST /internal/media?description=&focus=``: the body is the file's bytes (the gateway took them out of the
    client's form). A hot route: a body of megabytes is read as it comes, without the framework's layers."""
    data = await read_body(receive, media.MAX_IMAGE_BYTES + 1)
    given = dict(query_items(scope))
    service: PostService = app.state.service
    description = media.check_description(given.get("description", ""))
    focus = _focus(given.get("focus")) or (0.0, 0.0)
    return Answer(await service.attachments.upload(service.ids.next_id(), acting_account(scope), data, description,
                                                   focus))


app.hot_routes.add("POST", "/internal/media", upload_media)


@app.get("/internal/media/{media_id}")
async def show_media(media_id: int, service: Service, account: AccountHeader = None) -> Response:
    return Response(await service.attachments.show(acting_account_id(account), media_id), media_type=JSON)


@app.put("/internal/media/{media_id}")
async def change_media(media_id: int, form: MediaChangeForm, service: Service,
                       account: AccountHeader = None) -> Response:
    description = None if form.description is None else media.check_description(form.description)
    return Response(await service.attachments.describe(acting_account_id(account), media_id, description,
                                                       _focus(form.focus)), media_type=JSON)


@app.delete("/internal/media/{media_id}")
async def delete_media(media_id: int, service: Service, account: AccountHeader = None) -> Response:
    await service.attachments.delete(acting_account_id(account), media_id)
    return Response(b"{}", media_type=JSON)


@app.get("/internal/media/{media_id}/files/{name}")
async def media_file(media_id: int, name: str, service: Service) -> Response:
    """A file by its public name (``original.jpg``, ``small.png``): public, as Mastodon's files are."""
    data, content_type = await service.attachments.file(media_id, name)
    return Response(data, media_type=content_type)


async def upload_profile_picture(scope: Scope, receive: Receive) -> Answer:
    """``POST /internal/profile_pictures?kind=avatar|header``: the body is the image's bytes; answers ``{"path":
    ...}``, the file's public path, which the gateway hands to the graph service for the account."""
    data = await read_body(receive, media.MAX_PROFILE_PICTURE_BYTES + 1)
    service: PostService = app.state.service
    path = await service.attachments.upload_picture(service.ids.next_id(), acting_account(scope), data,
                                                    dict(query_items(scope)).get("kind", ""))
    return Answer(msgspec.json.encode({"path": path}))


app.hot_routes.add("POST", "/internal/profile_pictures", upload_profile_picture)


@app.delete("/internal/profile_pictures")
async def remove_profile_picture(path: str, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.attachments.remove_picture(acting_account_id(account), path)
    return {}
