"""HTTP transport and lifecycle of the graph service (internal API, called by the gateway)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from kicau import clients, hashtags
from kicau.account_cards import AccountCards
from kicau.account_ips import CLIENT_IP_HEADER, AccountIps, client_address
from kicau.account_names import AccountNames, DisplayNameWords
from kicau.account_notes import AccountNoteStore
from kicau.account_standing import AccountStanding
from kicau.account_warnings import WarningStore
from kicau.announcements import NO_ONE, AnnouncementStore
from kicau.audit_log import AuditLogStore
from kicau.blocks_and_mutes import MAX_MUTE_SECONDS, BlocksAndMutes
from kicau.canonical_email_blocks import CanonicalEmailBlockStore
from kicau.directory import Directory
from kicau.durations import whole_seconds
from kicau.email_domain_blocks import EmailDomainBlockStore
from kicau.featured_tags import AccountTagUses, FeaturedTagStore
from kicau.filters import FilterStore, encode, filter_entity
from kicau.follow_options import MAX_LANGUAGES, FollowOptionStore
from kicau.follow_requests import FollowRequestStore
from kicau.follow_suggestions import DismissalStore
from kicau.ids import SnowflakeGenerator, lease_worker
from kicau.ip_blocks import IpBlockStore
from kicau.large_accounts import LargeAccounts
from kicau.lists import ListStore
from kicau.reports import MAX_COMMENT, MAX_STATUSES, Category, ReportStore
from kicau.settings import CommonSettings
from kicau.staff import StaffStore
from kicau.tag_follows import TagFollowStore
from kicau.tokens import TokenInfo
from kicau.web import (
    ACCOUNT_HEADER,
    CLIENT_HEADER,
    NEXT_CURSOR_HEADER,
    PREV_CURSOR_HEADER,
    SCOPES_HEADER,
    ApiError,
    acting_account_id,
    cassandra_ready,
    describe_errors,
    install_common,
    redis_ready,
)
from kicau.web_push import ALERTS, POLICIES, load_vapid_key
from services.graph.admin import Admin
from services.graph.admin import router as admin_routes
from services.graph.authorization import AuthorizationCodes
from services.graph.domain_blocks import DomainBlocks
from services.graph.email_blocks import router as email_block_routes
from services.graph.filters import FilterService
from services.graph.ip_blocks import router as ip_block_routes
from services.graph.measures import router as measure_routes
from services.graph.passwords import Passwords
from services.graph.push_subscriptions import PushSubscriptions
from services.graph.service import GraphService
from services.graph.settings import GraphSettings
from services.graph.sign_ups import PendingSignUps
from services.graph.store import GraphStore


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AppForm(_Body):
    client_name: StrictStr
    redirect_uris: StrictStr = "urn:ietf:wg:oauth:2.0:oob"
    scopes: StrictStr | None = None
    website: StrictStr | None = None


class TokenForm(_Body):
    grant_type: StrictStr | None = None
    client_id: StrictStr | None = None
    client_secret: StrictStr | None = None
    username: StrictStr | None = None
    password: StrictStr | None = None
    scope: StrictStr | None = None
    code: StrictStr | None = None  # grant_type=authorization_code
    redirect_uri: StrictStr | None = None
    code_verifier: StrictStr | None = None


class AuthorizationRequest(_Body):
    """GET /oauth/authorize's parameters (services/graph/authorization.py), and with them, once the user has
    signed in and approved, its login and password."""
    response_type: StrictStr | None = None
    client_id: StrictStr | None = None
    redirect_uri: StrictStr | None = None
    scope: StrictStr | None = None
    code_challenge: StrictStr | None = None
    code_challenge_method: StrictStr | None = None
    login: StrictStr | None = None
    password: StrictStr | None = None


class ProfileChanges(_Body):
    """PATCH update_credentials as the gateway passes it on: only the fields given (booleans read as pydantic's
    lax mode reads them, as Rails' words are)."""

    display_name: StrictStr | None = None
    note: StrictStr | None = None
    bot: bool | None = None
    locked: bool | None = None
    # Profile fields as given (the gateway read fields_attributes): they replace the account's, blank ones dropped.
    fields: list[tuple[StrictStr, StrictStr]] | None = None
    # Profile pictures: their files' paths (services/post/media.py), "" for the default picture again.
    avatar: StrictStr | None = None
    header: StrictStr | None = None
    # Posting defaults (kicau/posting_defaults.py): ``source[privacy]`` and the others, by their short names,
    # checked by the graph service.
    source: dict[str, Any] | None = None


class RevokeForm(_Body):
    token: StrictStr | None = None
    client_id: StrictStr | None = None
    client_secret: StrictStr | None = None


OAuthForm = TypeVar("OAuthForm", TokenForm, RevokeForm, AuthorizationRequest)


def _oauth_form(model: type[OAuthForm]) -> Callable[[Request], Awaitable[OAuthForm]]:
    """The body of one of OAuth's endpoints as ``model``. Those answer a malformed request with 400, OAuth's
    ``invalid_request`` (RFC 6749 5.2, RFC 7009 2.2.1), where the API's routes answer 422: the body is checked
    here rather than by FastAPI's validation (the gateway's ``read_oauth_params`` does the same for its own)."""

    async def read(request: Request) -> OAuthForm:
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            raise ApiError(400, describe_errors(exc.errors())) from None

    return read


class Candidates(_Body):
    candidates: list[int]


class FollowForm(_Body):
    """A follow's options as the gateway passes them on (kicau/follow_options.py); those not given stay as they
    are. Languages: up to 50 codes of up to 16 letters, digits and hyphens (as a status's language)."""

    reblogs: StrictBool | None = None
    notify: StrictBool | None = None
    languages: Annotated[list[Annotated[StrictStr, Field(max_length=16, pattern=r"^(-*[A-Za-z0-9])+-*$")]],
                         Field(max_length=MAX_LANGUAGES)] | None = None


class NoteForm(_Body):
    """A private note on an account (kicau/account_notes.py); empty removes it. Its length is checked by the
    service, for Mastodon's message."""

    comment: StrictStr = ""


class MuteForm(_Body):
    """A mute as the gateway passes it on, checked there: whether it hides notifications too, and for how many
    seconds (0: until unmuted)."""

    notifications: bool = True
    duration: Annotated[int, Field(ge=0, le=MAX_MUTE_SECONDS)] = 0

    @field_validator("duration", mode="before")
    @classmethod
    def _whole_seconds(cls, value: object) -> object:
        seconds = whole_seconds(value)
        if seconds is None:
            raise ValueError("must be a whole number of seconds")
        return seconds


class ListForm(_Body):
    """A list's title and settings as the gateway passes them on (those not given: unchanged, or the defaults)."""

    title: StrictStr | None = None
    replies_policy: Literal["followed", "list", "none"] | None = None
    exclusive: StrictBool | None = None


class MembersForm(_Body):
    """The accounts to add to a list or take out of it (as many as a request's form may name)."""

    account_ids: Annotated[list[Annotated[int, Field(ge=0, lt=1 << 63)]], Field(max_length=100)]


class FeatureForm(_Body):
    name: StrictStr = ""


class RegistrationForm(_Body):
    username: StrictStr | None = None
    email: StrictStr | None = None
    password: StrictStr | None = None
    agreement: bool = False
    locale: StrictStr | None = None
    reason: StrictStr | None = None


# A coroutine: FastAPI would run a plain ``def`` dependency in its thread pool, a hand-off per request.
async def _service(request: Request) -> GraphService:
    service: GraphService = request.app.state.service
    return service


Service = Annotated[GraphService, Depends(_service)]
AccountHeader = Annotated[str | None, Header(alias=ACCOUNT_HEADER)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    common = CommonSettings()
    own = GraphSettings()
    async with clients.engines(common, name="graph", producer=True) as engines:
        redis, session = engines.redis, engines.session
        app.state.redis, app.state.session = redis, session  # what the readiness checks ask
        producer = engines.kafka()
        ids = SnowflakeGenerator(await lease_worker(redis))
        vapid = await load_vapid_key(session)
        app.state.service = GraphService(
            settings=common,
            store=GraphStore(session, clients.write_consistency(common)),
            redis=redis,
            producer=producer,
            cards=AccountCards(redis, session, common.public_url),
            ids=ids,
            large=LargeAccounts(session),
            tag_follows=TagFollowStore(session, clients.write_consistency(common)),
            featured=FeaturedTagStore(session, clients.write_consistency(common)),
            tag_uses=AccountTagUses(session, clients.write_consistency(common)),
            hides=BlocksAndMutes(session, clients.write_consistency(common)),
            follow_options=FollowOptionStore(session, clients.write_consistency(common)),
            lists=ListStore(session, clients.write_consistency(common)),
            names=AccountNames(redis, session),
            name_words=DisplayNameWords(redis, session),
            filters=FilterService(FilterStore(session, clients.write_consistency(common)), redis, ids, session),
            notes=AccountNoteStore(session, clients.write_consistency(common)),
            dismissals=DismissalStore(session, clients.write_consistency(common)),
            directory_index=Directory(redis, session),
            codes=AuthorizationCodes(session, clients.write_consistency(common)),
            requests=FollowRequestStore(session, clients.write_consistency(common)),
            announcements=AnnouncementStore(session, clients.write_consistency(common)),
            reports=ReportStore(session, clients.write_consistency(common)),
            warnings=WarningStore(session, clients.write_consistency(common)),
            standing=AccountStanding(session, clients.write_consistency(common)),
            staff=StaffStore(session, clients.write_consistency(common)),
            email_blocks=EmailDomainBlockStore(session, clients.write_consistency(common)),
            address_blocks=CanonicalEmailBlockStore(session, clients.write_consistency(common)),
            ip_blocks=IpBlockStore(session, clients.write_consistency(common)),
            ips=AccountIps(session, clients.write_consistency(common)),
            audit=AuditLogStore(session, clients.write_consistency(common)),
            pending_sign_ups=PendingSignUps(session, clients.write_consistency(common)),
            passwords=Passwords(
                concurrency=own.argon2_concurrency, time_cost=own.argon2_time_cost,
                memory_kib=own.argon2_memory_kib, parallelism=own.argon2_parallelism,
            ),
            vapid_key=vapid.public,
        )
        app.state.push_subscriptions = PushSubscriptions(session, redis, clients.write_consistency(common), ids,
                                                         vapid)
        app.state.domain_blocks = DomainBlocks(session, clients.write_consistency(common), ids)
        app.state.admin = Admin(app.state.service, session)
        yield


app = FastAPI(title="Kicau graph service", lifespan=lifespan)


install_common(app, service="graph", readiness=[redis_ready(app), cassandra_ready(app)])
# Added as they are (their paths carry the router's prefix), as the gateway adds its routers' routes.
app.router.routes.extend(admin_routes.routes)
app.router.routes.extend(email_block_routes.routes)
app.router.routes.extend(ip_block_routes.routes)
app.router.routes.extend(measure_routes.routes)


@app.post("/internal/apps")
async def create_app(form: AppForm, service: Service) -> dict[str, Any]:
    return await service.create_app(
        client_name=form.client_name, redirect_uris=form.redirect_uris, scopes=form.scopes, website=form.website
    )


@app.get("/internal/apps/{client_id}")
async def application(client_id: str, service: Service) -> dict[str, Any]:
    return await service.application(client_id)


class ReportForm(_Body):
    """A report as the gateway passes it on (kicau/reports.py); the rules were checked against the instance's."""

    account_id: Annotated[StrictInt, Field(ge=0, lt=1 << 63)]
    status_ids: Annotated[list[Annotated[StrictInt, Field(ge=0, lt=1 << 63)]], Field(max_length=MAX_STATUSES)] = []
    rule_ids: Annotated[list[Annotated[StrictInt, Field(ge=1, lt=1 << 31)]], Field(max_length=MAX_STATUSES)] = []
    comment: Annotated[StrictStr, Field(max_length=MAX_COMMENT)] = ""
    category: Category | None = None


@app.post("/internal/reports")
async def report(form: ReportForm, service: Service, account: AccountHeader = None) -> Any:
    return await service.report(acting_account_id(account), form.account_id, tuple(form.status_ids),
                                tuple(form.rule_ids), form.comment, form.category)


@app.get("/internal/announcements")
async def announcements(service: Service, account: AccountHeader = None, with_dismissed: bool = False) -> Any:
    return await service.announcement_list(acting_account_id(account), with_dismissed=with_dismissed)


@app.get("/internal/announcements/shown")
async def shown_announcements(service: Service) -> Any:
    """The announcements shown now as no one in particular reads them, as the user streams are told of them: what a
    gateway tells its streams they missed once its channel is back after a loss."""
    return await service.announcement_list(NO_ONE, with_dismissed=True)


@app.post("/internal/announcements/{announcement_id}/dismiss")
async def dismiss_announcement(announcement_id: int, service: Service, account: AccountHeader = None) -> Any:
    await service.dismiss_announcement(acting_account_id(account), announcement_id)
    return {}


@app.put("/internal/announcements/{announcement_id}/reactions/{name}")
async def react_to_announcement(announcement_id: int, name: str, service: Service,
                                account: AccountHeader = None) -> Any:
    await service.react_to_announcement(acting_account_id(account), announcement_id, name, add=True)
    return {}


@app.delete("/internal/announcements/{announcement_id}/reactions/{name}")
async def take_back_reaction(announcement_id: int, name: str, service: Service,
                             account: AccountHeader = None) -> Any:
    await service.react_to_announcement(acting_account_id(account), announcement_id, name, add=False)
    return {}


# The client's address, as the gateway saw it (kicau/account_ips.py): recorded where an account signs in or up.
ClientAddress = Annotated[str | None, Header(alias=CLIENT_IP_HEADER)]


@app.post("/internal/oauth/token")
async def token(form: Annotated[TokenForm, Depends(_oauth_form(TokenForm))], service: Service,
                address: ClientAddress = None) -> dict[str, Any]:
    return await service.issue_token(
        grant_type=form.grant_type, client_id=form.client_id, client_secret=form.client_secret,
        username=form.username, password=form.password, scope=form.scope,
        code=form.code, redirect_uri=form.redirect_uri, code_verifier=form.code_verifier,
        address=client_address(address),
    )


@app.post("/internal/oauth/authorization_request")
async def authorization_request(form: Annotated[AuthorizationRequest, Depends(_oauth_form(AuthorizationRequest))],
                                service: Service) -> dict[str, Any]:
    """What the approval form shows, once the request is found valid."""
    return await service.authorization_request(
        response_type=form.response_type, client_id=form.client_id, redirect_uri=form.redirect_uri,
        scope=form.scope, code_challenge=form.code_challenge, code_challenge_method=form.code_challenge_method)


@app.post("/internal/oauth/authorize")
async def authorize(form: Annotated[AuthorizationRequest, Depends(_oauth_form(AuthorizationRequest))],
                    service: Service, address: ClientAddress = None) -> dict[str, Any]:
    """The user approved: a code for the app, and where to send it."""
    return await service.authorize(
        response_type=form.response_type, client_id=form.client_id, redirect_uri=form.redirect_uri,
        scope=form.scope, code_challenge=form.code_challenge, code_challenge_method=form.code_challenge_method,
        login=form.login, password=form.password, address=client_address(address))


@app.post("/internal/oauth/revoke")
async def revoke(form: Annotated[RevokeForm, Depends(_oauth_form(RevokeForm))], service: Service) -> dict[str, Any]:
    await service.revoke(token=form.token, client_id=form.client_id, client_secret=form.client_secret)
    return {}


@app.get("/internal/tokens/{token_hash}")
async def resolve_token(token_hash: str, service: Service) -> Response:
    info = await service.resolve_token(token_hash)
    if info is None:
        raise ApiError(401, "The access token is invalid")
    return JSONResponse({"account_id": info.account_id, "client_id": info.client_id, "scopes": info.scopes,
                         "disabled": info.disabled, "pending": info.pending})


@app.post("/internal/accounts")
async def register(
    form: RegistrationForm,
    service: Service,
    client_id: Annotated[str | None, Header(alias=CLIENT_HEADER)] = None,
    scopes: Annotated[str | None, Header(alias=SCOPES_HEADER)] = None,
    address: ClientAddress = None,
) -> dict[str, Any]:
    if not client_id:
        raise ApiError(401, "This method requires an app token")
    app_token = TokenInfo(account_id=None, client_id=client_id, scopes=(scopes or "").split())
    return await service.register(
        app_token=app_token, username=form.username, email=form.email, password=form.password,
        agreement=form.agreement, locale=form.locale, address=client_address(address), reason=form.reason,
    )


@app.patch("/internal/accounts/{account_id}/profile")
async def update_profile(account_id: int, changes: ProfileChanges, service: Service,
                         account: AccountHeader = None) -> dict[str, Any]:
    if acting_account_id(account) != account_id:
        raise ApiError(403, "This action is not allowed")
    return await service.update_profile(account_id, changes.model_dump(exclude_none=True))


@app.get("/internal/accounts/lookup")
async def lookup(service: Service, acct: Annotated[str, Query(max_length=300)] = "") -> dict[str, Any]:
    return await service.lookup(acct)


@app.get("/internal/accounts/relationships")
async def relationships(
    service: Service, account: AccountHeader = None, ids: Annotated[list[int], Query(alias="id")] = []  # noqa: B006
) -> list[dict[str, Any]]:
    viewer = acting_account_id(account)
    return [await service.relationship(viewer_id=viewer, target_id=target) for target in ids[:40]]


@app.get("/internal/accounts/familiar_followers")
async def familiar_followers(
    service: Service, account: AccountHeader = None, ids: Annotated[list[int], Query(alias="id")] = []  # noqa: B006
) -> list[dict[str, Any]]:
    return await service.familiar_followers(viewer_id=acting_account_id(account), targets=ids)


@app.get("/internal/search/accounts")
async def search_accounts(
    service: Service, q: Annotated[str, Query(max_length=300)] = "", limit: Annotated[int, Query(ge=0)] = 40,
    offset: Annotated[int, Query(ge=0)] = 0, following: bool = False, account: AccountHeader = None,
) -> list[dict[str, Any]]:
    viewer = None if account is None else acting_account_id(account)
    return await service.search_accounts(query=q, limit=limit, offset=offset, viewer=viewer,
                                         following=following and viewer is not None)


@app.get("/internal/accounts")
async def accounts(
    service: Service,
    ids: Annotated[list[Annotated[int, Field(ge=0, lt=1 << 63)]], Query(alias="id", max_length=40)] = [],  # noqa: B006
) -> Response:
    return Response(await service.accounts(ids), media_type="application/json")


@app.get("/internal/accounts/{account_id}")
async def account(account_id: int, service: Service) -> dict[str, Any]:
    return await service.account(account_id)


@app.get("/internal/accounts/{account_id}/credentials")
async def credentials(account_id: int, service: Service) -> dict[str, Any]:
    return await service.credentials(account_id)


@app.post("/internal/accounts/{account_id}/follow")
async def follow(account_id: int, service: Service, account: AccountHeader = None,
                 form: FollowForm | None = None) -> dict[str, Any]:
    form = form or FollowForm()
    return await service.follow(follower_id=acting_account_id(account), followee_id=account_id,
                                reblogs=form.reblogs, notify=form.notify, languages=form.languages)


@app.post("/internal/accounts/{account_id}/unfollow")
async def unfollow(account_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.unfollow(follower_id=acting_account_id(account), followee_id=account_id)


@app.post("/internal/accounts/{account_id}/remove_from_followers")
async def remove_from_followers(account_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.remove_follower(account_id=acting_account_id(account), follower_id=account_id)


@app.get("/internal/follow_requests")
async def follow_requests(service: Service, account: AccountHeader = None,
                          max_id: Annotated[int | None, Query(ge=0)] = None,
                          limit: Annotated[int, Query(ge=1, le=80)] = 40) -> Response:
    """The accounts asking to follow the acting account (kicau/follow_requests.py), newest request first."""
    entities, next_cursor = await service.follow_requests(account_id=acting_account_id(account), max_id=max_id,
                                                          limit=limit)
    return JSONResponse(entities, headers={NEXT_CURSOR_HEADER: str(next_cursor)} if next_cursor is not None else {})


@app.post("/internal/follow_requests/{requester_id}/authorize")
async def authorize_follow_request(requester_id: int, service: Service,
                                   account: AccountHeader = None) -> dict[str, Any]:
    return await service.authorize_request(account_id=acting_account_id(account), requester_id=requester_id)


@app.post("/internal/follow_requests/{requester_id}/reject")
async def reject_follow_request(requester_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.reject_request(account_id=acting_account_id(account), requester_id=requester_id)


@app.get("/internal/directory")
async def directory(service: Service, account: AccountHeader = None, order: Literal["active", "new"] = "active",
                    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
                    limit: Annotated[int, Query(ge=1, le=80)] = 40) -> list[dict[str, Any]]:
    viewer = None if account is None else acting_account_id(account)
    return await service.directory(order=order, offset=offset, limit=limit, viewer=viewer)


@app.get("/internal/suggestions")
async def suggestions(service: Service, account: AccountHeader = None,
                      limit: Annotated[int, Query(ge=1, le=80)] = 40) -> list[dict[str, Any]]:
    return await service.suggestions(account_id=acting_account_id(account), limit=limit)


@app.delete("/internal/suggestions/{account_id}")
async def dismiss_suggestion(account_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.dismiss_suggestion(account_id=acting_account_id(account), target_id=account_id)
    return {}


@app.post("/internal/accounts/{account_id}/note")
async def note(account_id: int, service: Service, account: AccountHeader = None,
               form: NoteForm | None = None) -> dict[str, Any]:
    return await service.save_note(account_id=acting_account_id(account), target_id=account_id,
                                   comment=(form or NoteForm()).comment)


@app.post("/internal/accounts/{account_id}/pin")
async def endorse(account_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.endorse(account_id=acting_account_id(account), target_id=account_id)


@app.post("/internal/accounts/{account_id}/unpin")
async def unendorse(account_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.unendorse(account_id=acting_account_id(account), target_id=account_id)


@app.get("/internal/accounts/{account_id}/endorsements")
async def endorsements(account_id: int, service: Service, max_id: Annotated[int | None, Query(ge=0)] = None,
                       limit: Annotated[int, Query(ge=1, le=80)] = 40) -> Response:
    """The accounts an account endorses (and still follows), most recently endorsed first."""
    entities, next_cursor = await service.endorsements(account_id=account_id, max_id=max_id, limit=limit)
    return JSONResponse(entities, headers={NEXT_CURSOR_HEADER: str(next_cursor)} if next_cursor is not None else {})


@app.post("/internal/accounts/{account_id}/block")
async def block(account_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.block(account_id=acting_account_id(account), target_id=account_id)


@app.post("/internal/accounts/{account_id}/unblock")
async def unblock(account_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.unblock(account_id=acting_account_id(account), target_id=account_id)


@app.post("/internal/accounts/{account_id}/mute")
async def mute(account_id: int, form: MuteForm, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.mute(account_id=acting_account_id(account), target_id=account_id,
                              notifications=form.notifications, duration=form.duration)


@app.post("/internal/accounts/{account_id}/unmute")
async def unmute(account_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.unmute(account_id=acting_account_id(account), target_id=account_id)


@app.post("/internal/accounts/{account_id}/followers-among")
async def followers_among(account_id: int, body: Candidates, service: Service) -> dict[str, Any]:
    followers, options = await service.followers_among(account_id=account_id, candidates=body.candidates)
    return {"followers": followers, "options": options}


@app.get("/internal/accounts/{account_id}/featured_tags")
async def account_featured_tags(account_id: int, service: Service) -> list[dict[str, Any]]:
    return await service.featured_tags(account_id)


@app.get("/internal/featured_tags")
async def featured_tags(service: Service, account: AccountHeader = None) -> list[dict[str, Any]]:
    return await service.featured_tags(acting_account_id(account))


@app.post("/internal/featured_tags")
async def feature_tag(form: FeatureForm, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.feature_tag(acting_account_id(account), form.name)


@app.get("/internal/featured_tags/suggestions")
async def featured_tag_suggestions(service: Service, account: AccountHeader = None) -> list[dict[str, Any]]:
    return await service.featured_tag_suggestions(acting_account_id(account))


@app.delete("/internal/featured_tags/{featured_id}")
async def unfeature_tag(featured_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.unfeature_tag(acting_account_id(account), featured_id)
    return {}


@app.get("/internal/lists")
async def lists(service: Service, account: AccountHeader = None) -> list[dict[str, Any]]:
    return [found.entity() for found in await service.lists.of_owner(acting_account_id(account))]


@app.post("/internal/lists")
async def create_list(form: ListForm, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.create_list(acting_account_id(account), title=form.title or "",
                                     replies_policy=form.replies_policy, exclusive=form.exclusive)


@app.get("/internal/lists/{list_id}")
async def one_list(list_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return (await service.own_list(acting_account_id(account), list_id)).entity()


@app.put("/internal/lists/{list_id}")
async def update_list(list_id: int, form: ListForm, service: Service, account: AccountHeader = None,
                      ) -> dict[str, Any]:
    return await service.update_list(acting_account_id(account), list_id, title=form.title,
                                     replies_policy=form.replies_policy, exclusive=form.exclusive)


@app.delete("/internal/lists/{list_id}")
async def delete_list(list_id: int, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.delete_list(acting_account_id(account), list_id)
    return {}


@app.post("/internal/lists/{list_id}/accounts")
async def add_to_list(list_id: int, form: MembersForm, service: Service, account: AccountHeader = None,
                      ) -> dict[str, Any]:
    await service.add_to_list(acting_account_id(account), list_id, form.account_ids)
    return {}


@app.post("/internal/lists/{list_id}/accounts/remove")
async def remove_from_list(list_id: int, form: MembersForm, service: Service, account: AccountHeader = None,
                           ) -> dict[str, Any]:
    await service.remove_from_list(acting_account_id(account), list_id, form.account_ids)
    return {}


@app.get("/internal/accounts/{account_id}/lists")
async def lists_holding(account_id: int, service: Service, account: AccountHeader = None) -> list[dict[str, Any]]:
    """The reader's lists that hold the account (none for an account it does not follow)."""
    owner = acting_account_id(account)
    held = set(await service.lists.holding(owner, account_id))
    return [found.entity() for found in await service.lists.of_owner(owner) if found.list_id in held]


@app.get("/internal/accounts/{account_id}/memberships")
async def memberships(account_id: int, service: Service) -> dict[str, list[list[int | str]]]:
    """Every list the account is in, as ``[list id, owner id, exclusive (0 or 1), replies policy]``: a gateway's
    stream of a list gets a large member's statuses by this (its replies as the policy shows them), and an exclusive
    list's owner's user stream is left without them."""
    held = await service.lists.lists_of_member(account_id)
    return {"lists": [[m.list_id, m.owner_id, int(m.exclusive), m.replies_policy] for m in held]}


# Named, not ``/{direction}``: a path parameter there took every later ``/internal/accounts/{id}/...`` GET route
# (the streams' filters answered 404 for as long as that stood).
@app.get("/internal/accounts/{account_id}/followers")
async def followers(account_id: int, service: Service, max_id: int | None = None, limit: int = 40) -> Response:
    return await _follow_list(service, account_id, "followers", max_id, limit)


@app.get("/internal/accounts/{account_id}/following")
async def following(account_id: int, service: Service, max_id: int | None = None, limit: int = 40) -> Response:
    return await _follow_list(service, account_id, "following", max_id, limit)


async def _follow_list(service: GraphService, account_id: int, direction: str, max_id: int | None,
                       limit: int) -> Response:
    entities, next_cursor = await service.follow_list(
        account_id=account_id, direction=direction, max_id=max_id, limit=limit
    )
    headers = {NEXT_CURSOR_HEADER: str(next_cursor)} if next_cursor is not None else {}
    return JSONResponse(entities, headers=headers)


def _hashtag(tag: str) -> str:
    """A hashtag's normal form from its name in a path (with or without ``#``, in any case); 404 for no
    hashtag's name, as Mastodon answers."""
    name = tag.removeprefix("#")
    if not hashtags.valid(name):
        raise ApiError(404, "Record not found")
    return hashtags.normal(name)


@app.post("/internal/tags/{tag}/follow")
async def follow_tag(tag: str, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.follow_tag(account_id=acting_account_id(account), tag=_hashtag(tag))
    return {}


@app.post("/internal/tags/{tag}/unfollow")
async def unfollow_tag(tag: str, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.unfollow_tag(account_id=acting_account_id(account), tag=_hashtag(tag))
    return {}


@app.post("/internal/tags/{tag}/feature")
async def feature_tag_named(tag: str, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    """Feature a hashtag by name (Mastodon 4.4's ``/api/v1/tags/:name/feature``), as ``/internal/featured_tags``."""
    await service.feature_tag(acting_account_id(account), _hashtag(tag))
    return {}


@app.post("/internal/tags/{tag}/unfeature")
async def unfeature_tag_named(tag: str, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.unfeature_tag_named(acting_account_id(account), _hashtag(tag))
    return {}


# Filters (kicau/filters.py, services/graph/filters.py): the gateway passes the reader's account and the body as JSON.

FilterId = Annotated[int, Path(ge=0, lt=1 << 63)]


async def _given(request: Request) -> dict[str, Any]:
    body = await request.body()
    given = msgspec.json.decode(body) if body else {}
    if not isinstance(given, dict):
        raise ApiError(422, "Validation failed: the body must be an object")
    return given


@app.get("/internal/filters")
async def filters(service: Service, account: AccountHeader = None) -> list[dict[str, Any]]:
    return await service.filters.entities(acting_account_id(account))


@app.get("/internal/accounts/{account_id}/filters")
async def filters_of(account_id: int, service: Service) -> Response:
    """An account's filters in the form readers keep them (``kicau.filters.encode``), for the gateways' streams."""
    return Response(encode(await service.filters.all(account_id)), media_type="application/json")


@app.post("/internal/filters")
async def create_filter(request: Request, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.filters.create(acting_account_id(account), await _given(request))


@app.get("/internal/filters/keywords/{keyword_id}")
async def filter_keyword(keyword_id: FilterId, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.filters.keyword(acting_account_id(account), keyword_id)


@app.put("/internal/filters/keywords/{keyword_id}")
async def update_filter_keyword(keyword_id: FilterId, request: Request, service: Service,
                                account: AccountHeader = None) -> dict[str, Any]:
    return await service.filters.update_keyword(acting_account_id(account), keyword_id, await _given(request))


@app.delete("/internal/filters/keywords/{keyword_id}")
async def delete_filter_keyword(keyword_id: FilterId, service: Service, account: AccountHeader = None,
                                ) -> dict[str, Any]:
    await service.filters.delete_keyword(acting_account_id(account), keyword_id)
    return {}


@app.get("/internal/filters/statuses/{rule_id}")
async def filter_status(rule_id: FilterId, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.filters.status_rule(acting_account_id(account), rule_id)


@app.delete("/internal/filters/statuses/{rule_id}")
async def delete_filter_status(rule_id: FilterId, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.filters.delete_status(acting_account_id(account), rule_id)
    return {}


@app.get("/internal/filters/{filter_id}")
async def one_filter(filter_id: FilterId, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return filter_entity(await service.filters.one(acting_account_id(account), filter_id))


@app.put("/internal/filters/{filter_id}")
async def update_filter(filter_id: FilterId, request: Request, service: Service,
                        account: AccountHeader = None) -> dict[str, Any]:
    return await service.filters.update(acting_account_id(account), filter_id, await _given(request))


@app.delete("/internal/filters/{filter_id}")
async def delete_filter(filter_id: FilterId, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.filters.delete(acting_account_id(account), filter_id)
    return {}


@app.get("/internal/filters/{filter_id}/keywords")
async def filter_keywords(filter_id: FilterId, service: Service, account: AccountHeader = None,
                          ) -> list[dict[str, Any]]:
    return await service.filters.keywords(acting_account_id(account), filter_id)


@app.post("/internal/filters/{filter_id}/keywords")
async def add_filter_keyword(filter_id: FilterId, request: Request, service: Service,
                             account: AccountHeader = None) -> dict[str, Any]:
    return await service.filters.add_keyword(acting_account_id(account), filter_id, await _given(request))


@app.get("/internal/filters/{filter_id}/statuses")
async def filter_statuses(filter_id: FilterId, service: Service, account: AccountHeader = None,
                          ) -> list[dict[str, Any]]:
    return await service.filters.statuses(acting_account_id(account), filter_id)


@app.post("/internal/filters/{filter_id}/statuses")
async def add_filter_status(filter_id: FilterId, request: Request, service: Service,
                            account: AccountHeader = None) -> dict[str, Any]:
    given = await _given(request)
    status_id = given.get("status_id")
    if not isinstance(status_id, int) or isinstance(status_id, bool):
        raise ApiError(404, "Record not found")
    return await service.filters.add_status(acting_account_id(account), filter_id, status_id)


@app.post("/internal/filters/v1")
async def create_filter_v1(request: Request, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    return await service.filters.create_v1(acting_account_id(account), await _given(request))


@app.put("/internal/filters/v1/{keyword_id}")
async def update_filter_v1(keyword_id: FilterId, request: Request, service: Service,
                           account: AccountHeader = None) -> dict[str, Any]:
    return await service.filters.update_v1(acting_account_id(account), keyword_id, await _given(request))


@app.delete("/internal/filters/v1/{keyword_id}")
async def delete_filter_v1(keyword_id: FilterId, service: Service, account: AccountHeader = None) -> dict[str, Any]:
    await service.filters.delete_v1(acting_account_id(account), keyword_id)
    return {}


# Domain blocks (services/graph/domain_blocks.py) --------------------------------------------------------------


async def _domain_blocks(request: Request) -> DomainBlocks:
    blocks: DomainBlocks = request.app.state.domain_blocks
    return blocks


DomainBlocksOf = Annotated[DomainBlocks, Depends(_domain_blocks)]
BlockCursor = Annotated[int | None, Query(ge=0, lt=1 << 63)]


class DomainForm(_Body):
    domain: StrictStr


@app.get("/internal/domain_blocks")
async def domain_blocks(blocks: DomainBlocksOf, account: AccountHeader = None, max_id: BlockCursor = None,
                        since_id: BlockCursor = None, min_id: BlockCursor = None,
                        limit: Annotated[int, Query(ge=1, le=200)] = 100) -> Response:
    found = await blocks.page(acting_account_id(account), max_id=max_id, since_id=since_id, min_id=min_id,
                              limit=limit)
    headers = {NEXT_CURSOR_HEADER: str(found[-1][0]), PREV_CURSOR_HEADER: str(found[0][0])} if found else {}
    return JSONResponse([domain for _, domain in found], headers=headers)


@app.post("/internal/domain_blocks")
async def block_domain(form: DomainForm, blocks: DomainBlocksOf, account: AccountHeader = None) -> Any:
    await blocks.block(acting_account_id(account), form.domain)
    return {}


@app.delete("/internal/domain_blocks")
async def unblock_domain(blocks: DomainBlocksOf, domain: str, account: AccountHeader = None) -> Any:
    await blocks.unblock(acting_account_id(account), domain)
    return {}


# Push subscriptions (services/graph/push_subscriptions.py) ---------------------------------------------------


async def _push_subscriptions(request: Request) -> PushSubscriptions:
    subscriptions: PushSubscriptions = request.app.state.push_subscriptions
    return subscriptions


PushSubscriptionsOf = Annotated[PushSubscriptions, Depends(_push_subscriptions)]
TokenHash = Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")]
Alert = Literal[ALERTS]  # type: ignore[valid-type]
Policy = Literal[POLICIES]  # type: ignore[valid-type]


class PushChange(_Body):
    """The alerts wanted (those not named are off) and from whom; checked by the gateway."""

    token_hash: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
    alerts: Annotated[list[Alert], Field(max_length=len(ALERTS))] = []
    policy: Policy = "all"


class PushSubscribe(PushChange):
    endpoint: Annotated[StrictStr, Field(min_length=1, max_length=2048)]
    p256dh: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    auth: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    standard: StrictBool = False


@app.get("/internal/push/server_key")
async def push_server_key(subscriptions: PushSubscriptionsOf) -> Any:
    return {"public_key": subscriptions.vapid.public}


@app.get("/internal/push_subscription")
async def push_subscription(subscriptions: PushSubscriptionsOf, token_hash: TokenHash,
                            account: AccountHeader = None) -> Any:
    return subscriptions.shown(await subscriptions.get(acting_account_id(account), token_hash))


@app.post("/internal/push_subscription")
async def push_subscribe(form: PushSubscribe, subscriptions: PushSubscriptionsOf,
                         account: AccountHeader = None) -> Any:
    return subscriptions.shown(await subscriptions.subscribe(
        acting_account_id(account), form.token_hash, endpoint=form.endpoint, p256dh=form.p256dh, auth=form.auth,
        alerts=form.alerts, policy=form.policy, standard=form.standard))


@app.put("/internal/push_subscription")
async def push_change(form: PushChange, subscriptions: PushSubscriptionsOf, account: AccountHeader = None) -> Any:
    return subscriptions.shown(await subscriptions.change(acting_account_id(account), form.token_hash,
                                                          alerts=form.alerts, policy=form.policy))


@app.delete("/internal/push_subscription")
async def push_unsubscribe(subscriptions: PushSubscriptionsOf, token_hash: TokenHash,
                           account: AccountHeader = None) -> Any:
    await subscriptions.forget(acting_account_id(account), token_hash)
    return {}
