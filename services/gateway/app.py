"""The gateway's transport and lifecycle: Mastodon client API routes, auth, streaming."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

import kicau
from kicau import clients
from kicau.filters import ReaderFilters
from kicau.filters import decode as decode_filters
from kicau.follow_options import DEFAULT as DEFAULT_OPTIONS
from kicau.follow_options import FollowOptions, decode_options
from kicau.follower_lists import KnownFollowers
from kicau.hot_routes import HotRoutes, ServiceApp
from kicau.lists import Membership
from kicau.settings import CommonSettings
from kicau.tracked_cache import TrackedCache
from kicau.web import install_common, redis_ready
from services.gateway import auth, openapi
from services.gateway.deps import Upstreams
from services.gateway.ip_blocks import IpBlocksFollower, denied, refuse
from services.gateway.media_files import MediaFiles
from services.gateway.ratelimit import RateLimiter, RateLimitMiddleware
from services.gateway.routes import (
    accounts,
    admin,
    announcements,
    authorize,
    blocks_and_mutes,
    bookmarks,
    conversations,
    favourites,
    featured_tags,
    filters,
    instance,
    lists,
    markers,
    media,
    notification_requests,
    notifications,
    oauth,
    pins,
    polls,
    push,
    reblogs,
    reports,
    scheduled_statuses,
    statuses,
    streaming,
    thread_mutes,
    timelines,
)
from services.gateway.settings import GatewaySettings
from services.gateway.streaming import SERVER_SEND_KEY, StreamHub
from services.gateway.upstreams import Caller
from services.gateway.upstreams import upstream as upstreams_at


def add_hot_routes(hot: HotRoutes) -> None:
    """The gateway's requests served without FastAPI's layers (kicau/hot_routes.py): the two timelines read most,
    posting, and every SSE stream (held open, a stream would otherwise keep those layers for its whole life)."""
    hot.add("GET", "/api/v1/timelines/home", timelines.home_page)
    hot.add("GET", "/api/v1/accounts/{account_id}/statuses", timelines.account_statuses_page)
    hot.add("POST", "/api/v1/statuses", statuses.create_status_hot)
    for path, route in streaming.SSE_ROUTES.items():
        hot.add_stream("GET", path, streaming.hot_stream(route))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    common = CommonSettings()
    settings = GatewaySettings()
    redis = clients.redis_client(common, name="gateway", max_connections=256)

    def upstream(url: str) -> Caller:
        return upstreams_at(url, timeout=settings.upstream_timeout_seconds,
                            connections=settings.upstream_connections)

    upstreams = Upstreams(
        graph=upstream(common.graph_url), post=upstream(common.post_url), timeline=upstream(common.timeline_url)
    )
    app.state.common = common
    app.state.settings = settings
    app.state.redis = redis
    app.state.upstreams = upstreams
    app.state.graph = upstreams.graph
    # Copies of the token cache's entries (kicau/tracked_cache.py): a known token costs no round trip.
    app.state.token_copies = TrackedCache(redis, max_entries=settings.token_copies) if settings.token_copies else None
    app.state.limiter = RateLimiter(app.state)
    app.state.media_files = MediaFiles(most_bytes=settings.media_cache_bytes, largest=settings.media_cache_file_bytes,
                                       seconds=settings.media_cache_seconds)
    if settings.hot_routes and isinstance(app, ServiceApp):
        add_hot_routes(app.hot_routes)

    async def followers_among(author: int, candidates: list[int]) -> dict[int, FollowOptions]:
        answer = await upstreams.graph.call(
            "POST", f"/internal/accounts/{author}/followers-among", json={"candidates": candidates}
        )
        answer.raise_for_status()
        found = answer.json()
        options = decode_options(found["options"])
        return {int(follower): options.get(int(follower), DEFAULT_OPTIONS) for follower in found["followers"]}

    async def unwanted_of(account_id: int) -> list[int]:
        answer = await upstreams.timeline.call("GET", f"/internal/accounts/{account_id}/unwanted_authors")
        answer.raise_for_status()
        return list(answer.json()["accounts"])

    async def memberships_of(author: int) -> list[Membership]:
        answer = await upstreams.graph.call("GET", f"/internal/accounts/{author}/memberships")
        answer.raise_for_status()
        return [Membership(int(list_id), int(owner_id), bool(exclusive), str(policy))
                for list_id, owner_id, exclusive, policy in answer.json()["lists"]]

    async def filters_of(account_id: int) -> ReaderFilters:
        answer = await upstreams.graph.call("GET", f"/internal/accounts/{account_id}/filters")
        answer.raise_for_status()
        return ReaderFilters(decode_filters(answer.content))

    hub = StreamHub(redis, queue_size=settings.stream_queue_size, per_account=settings.streams_per_account,
                    followers_among=KnownFollowers(redis, followers_among), unwanted_of=unwanted_of,
                    memberships_of=memberships_of, filters_of=filters_of,
                    ended_among=functools.partial(auth.ended_sessions, redis, upstreams.graph),
                    home_after=functools.partial(streaming.home_after, upstreams.timeline, rebuild=False),
                    notifications_after=functools.partial(streaming.notifications_after, upstreams.timeline),
                    conversations_after=functools.partial(streaming.conversations_after, upstreams.timeline),
                    timeline_after=functools.partial(streaming.timeline_after, upstreams.timeline),
                    announcements_shown=functools.partial(streaming.announcements_shown, upstreams.graph))
    await hub.start()
    app.state.hub = hub
    ip_blocks = IpBlocksFollower(redis, upstreams.graph)
    await ip_blocks.start()
    app.state.ip_blocks = ip_blocks
    if isinstance(app, GatewayApp):
        app.ip_blocks = ip_blocks
    try:
        yield
    finally:
        await ip_blocks.stop()
        await hub.stop()
        for client in (upstreams.graph, upstreams.post, upstreams.timeline):
            await client.aclose()
        if app.state.token_copies is not None:
            app.state.token_copies.close()
        await redis.aclose()


class GatewayApp(ServiceApp):
    ip_blocks: IpBlocksFollower | None = None  # set by the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            # Before anything else, the hot routes and streams too: an address staff refused (kicau/ip_blocks.py).
            # Two attribute tests a request while no such block is in force.
            if self.ip_blocks is not None and self.ip_blocks.blocklist.denying \
                    and denied(self.ip_blocks.blocklist, scope, self.state.settings):
                await refuse(scope, receive, send)
                return
            # The server's own send, before any middleware wraps it: SSE and WebSocket streams write their events
            # straight onto the transport behind it (services/gateway/streaming.py).
            scope[SERVER_SEND_KEY] = send
            try:
                await super().__call__(scope, receive, send)
            finally:
                # The scope holds the server's request cycle (through its send), which holds the scope: left in
                # place, every request would leave that cycle and all it holds to the garbage collector, whose
                # collections then took ~110 ms each under load (kicau_gc_pause_seconds).
                del scope[SERVER_SEND_KEY]
            return
        await super().__call__(scope, receive, send)


app = GatewayApp(
    service="gateway",
    title="Kicau",
    summary="Mastodon client API subset over an event-driven backend",
    version=kicau.__version__,
    lifespan=lifespan,
)


async def services_ready() -> None:
    for name in ("graph", "post", "timeline"):
        answer = await getattr(app.state.upstreams, name).call("GET", "/readyz")
        if answer.status_code != 200:
            raise RuntimeError(f"{name} not ready")


# Added before install_common so the metrics middleware stays outermost and counts the 429s too.
app.add_middleware(RateLimitMiddleware)
async def streams_ready() -> None:
    if not app.state.hub.healthy():
        raise RuntimeError("stream hub is not receiving or its presence lapsed")


install_common(app, service="gateway", readiness=[redis_ready(app), services_ready, streams_ready])
# The routers' routes are added to the application itself rather than with include_router: this FastAPI wraps an
# included router in an object that matches its routes again, through extra layers, on every request (0.3-0.6 ms
# to find the home timeline route, more than a whole hello-world request). These routers have no prefix or
# dependencies of their own, so their routes are complete as they are; their order decides how soon a route is
# found: the most requested first. One path is served by two routers: notification_requests's
# /api/v2/notifications/policy comes before notifications's /api/v2/notifications/{group_key}.
for module in (timelines, statuses, accounts, notification_requests, notifications, favourites, reblogs, bookmarks,
               pins, thread_mutes, polls, markers, featured_tags, blocks_and_mutes, lists, conversations, filters,
               scheduled_statuses, reports, admin, media, push, oauth, authorize, instance, announcements, streaming):
    app.router.routes.extend(module.router.routes)
app.openapi = openapi.install(app)  # type: ignore[method-assign]
