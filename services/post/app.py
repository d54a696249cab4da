"""HTTP transport and lifecycle of the post service (internal API, called by the gateway)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from kicau import clients
from kicau.account_cards import AccountCards
from kicau.ids import SnowflakeGenerator, lease_worker
from kicau.settings import CommonSettings
from kicau.status_cards import StatusCards
from kicau.web import ACCOUNT_HEADER, acting_account_id, cassandra_ready, install_common, redis_ready
from services.post.service import NewStatus, PostService
from services.post.settings import PostSettings
from services.post.store import StatusStore


class StatusForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: StrictStr
    visibility: StrictStr = "public"
    sensitive: bool = False
    spoiler_text: StrictStr = ""
    language: StrictStr | None = None
    in_reply_to_id: int | None = Field(default=None, ge=0, lt=1 << 63)


# A coroutine: FastAPI would run a plain ``def`` dependency in its thread pool, a hand-off per request.
async def _service(request: Request) -> PostService:
    service: PostService = request.app.state.service
    return service


Service = Annotated[PostService, Depends(_service)]
AccountHeader = Annotated[str | None, Header(alias=ACCOUNT_HEADER)]
JSON = "application/json"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    common = CommonSettings()
    own = PostSettings()
    async with clients.engines(common, name="post", producer=True) as engines:
        redis, session = engines.redis, engines.session
        app.state.redis, app.state.session = redis, session  # what the readiness checks ask
        producer = engines.kafka()
        accounts = AccountCards(redis, session, common.public_url)
        app.state.service = PostService(
            settings=common,
            own=own,
            store=StatusStore(session, clients.write_consistency(common)),
            redis=redis,
            producer=producer,
            accounts=accounts,
            statuses=StatusCards(redis, session, accounts, common.public_url),
            ids=SnowflakeGenerator(await lease_worker(redis)),
        )
        yield


app = FastAPI(title="Kicau post service", lifespan=lifespan)


install_common(app, service="post", readiness=[redis_ready(app), cassandra_ready(app)])


@app.post("/internal/statuses")
async def create_status(
    form: StatusForm,
    service: Service,
    account: AccountHeader = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    draft = NewStatus(
        text=form.status, visibility=form.visibility, sensitive=form.sensitive, spoiler_text=form.spoiler_text,
        language=form.language, in_reply_to_id=form.in_reply_to_id,
    )
    body = await service.create(account_id=acting_account_id(account), draft=draft, idempotency_key=idempotency_key)
    return Response(body, media_type=JSON)


@app.get("/internal/statuses/{status_id}")
async def get_status(status_id: int, service: Service) -> Response:
    return Response(await service.get(status_id), media_type=JSON)


@app.delete("/internal/statuses/{status_id}")
async def delete_status(status_id: int, service: Service, account: AccountHeader = None) -> Response:
    body = await service.delete(account_id=acting_account_id(account), status_id=status_id)
    return Response(body, media_type=JSON)
