"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) right after a status with a
link was made durable and published, before its page was fetched (services/post/link_previews.py). The status is
kept (the client's retry with the same Idempotency-Key answers it), and once `stack up` has restarted the service
its runner finds the preview's plan in Cassandra and the status shows the card: nothing was held only in the dead
process. The same for an edit that moves a status to another page, whose plan is written with the edit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from kicau.crash_points import CRASH_EXIT_CODE
from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.post.test_link_previews import Pages, settled


@pytest.fixture(scope="module")
def pages() -> Iterator[Pages]:
    served = Pages()
    yield served
    served.close()


@pytest.mark.timeout(300)
def test_a_preview_planned_before_a_crash_is_shown_after_it(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, pages: Pages,
) -> None:
    author = make_user("lpc_a")
    faults.kill(harness.service_pid("post"))
    crashing = faults.spawn_service("post", {"KICAU_CRASH_AT": "post.status.published"})
    harness.wait_http_ready(crashing.port)
    headers = {**author.auth, "Idempotency-Key": f"preview-{author.id}"}
    text = f"read {pages.url('/plain')}"
    broken = http.post("/api/v1/statuses", headers=headers, json={"status": text})
    assert broken.status_code in (502, 503) and "error" in broken.json(), broken.text
    assert crashing.proc.wait(timeout=30) == CRASH_EXIT_CODE, "the post service did not die at its crash point"
    assert pages.asked["/plain"] == 0  # it died before fetching

    restart_seconds = harness.stack_up()
    retried = http.post("/api/v1/statuses", headers=headers, json={"status": text})
    assert retried.status_code == 200, retried.text
    status_id = retried.json()["id"]
    card = eventually(lambda: http.get(f"/api/v1/statuses/{status_id}").json()["card"], timeout=60)
    assert (card["url"], card["title"]) == (pages.url("/plain"), "A plain page")
    assert pages.asked["/plain"] == 1
    harness.figure(f"post service died after publishing a status with a link: answered {broken.status_code}; "
                   f"restarted in {restart_seconds:.1f}s; the card was fetched by the restarted runner")


@pytest.mark.timeout(300)
def test_an_edit_that_moves_the_link_keeps_its_preview_through_a_crash(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, pages: Pages,
) -> None:
    """The edit's plan and the old page's unlisting are written with the edit: the post service dying right after
    the edit is published (no client retry: an edit carries no Idempotency-Key) still shows the new page's card."""
    author = make_user("lpc_e")
    posted = http.post("/api/v1/statuses", headers=author.auth, json={"status": f"see {pages.url('/article')}"})
    assert posted.status_code == 200, posted.text
    status_id = posted.json()["id"]
    first = eventually(lambda: http.get(f"/api/v1/statuses/{status_id}").json()["card"], timeout=60)
    assert first["title"] == "Burung & kicau di pagi hari"
    old_timeline = f"/api/v1/timelines/link?url={quote(pages.url('/article'), safe='')}"
    assert [s["id"] for s in http.get(old_timeline).json()] == [status_id]

    faults.kill(harness.service_pid("post"))
    crashing = faults.spawn_service("post", {"KICAU_CRASH_AT": "post.edit.published"})
    harness.wait_http_ready(crashing.port)
    broken = http.put(f"/api/v1/statuses/{status_id}", headers=author.auth,
                      json={"status": f"no, {pages.url('/latin')}"})
    assert broken.status_code in (502, 503) and "error" in broken.json(), broken.text
    assert crashing.proc.wait(timeout=30) == CRASH_EXIT_CODE, "the post service did not die at its crash point"
    assert pages.asked["/latin"] == 0  # it died before fetching

    harness.stack_up()
    edited = http.get(f"/api/v1/statuses/{status_id}").json()
    assert "/latin" in edited["content"], edited  # the edit was out before the crash
    card = eventually(lambda: (c := http.get(f"/api/v1/statuses/{status_id}").json()["card"])
                      and c["url"] == pages.url("/latin") and c, timeout=60)
    assert card["title"] == "Caf\u00e9 cr\u00e8me"
    assert pages.asked["/latin"] == 1
    assert http.get(old_timeline).status_code == 404  # off the old page's timeline, with the edit
    new_timeline = f"/api/v1/timelines/link?url={quote(pages.url('/latin'), safe='')}"
    listed = eventually(lambda: [s["id"] for s in http.get(new_timeline).json()] or None)
    assert listed == [status_id]


@pytest.mark.timeout(300)
def test_an_edit_that_moves_the_link_taken_back_keeps_the_old_card(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, pages: Pages, stack_cassandra: Any,
) -> None:
    """Kafka paused while such an edit is published: answered 503 and taken back with its batch's own writes. The
    status shows the old page's card and stays on its timeline. The runner may find the new page's plan while the
    edit waits on Kafka (the row shows the new address then) and fetch the page, but it shows a card only under the
    status's edit lock, which the edit holds until it is taken back: then the plan is stale."""
    author = make_user("lpc_u")
    posted = http.post("/api/v1/statuses", headers=author.auth, json={"status": f"see {pages.url('/plain')}"})
    assert posted.status_code == 200, posted.text
    status_id = posted.json()["id"]
    eventually(lambda: http.get(f"/api/v1/statuses/{status_id}").json()["card"], timeout=60)
    old_timeline = f"/api/v1/timelines/link?url={quote(pages.url('/plain'), safe='')}"
    assert status_id in [s["id"] for s in http.get(old_timeline).json()]

    broker = harness.engine_pid("kafka")
    faults.pause(broker)
    try:
        refused = http.put(f"/api/v1/statuses/{status_id}", headers=author.auth,
                           json={"status": f"no, {pages.url('/few')}"})
    finally:
        faults.resume(broker)
    assert refused.status_code == 503 and set(refused.json()) == {"error"}, refused.text
    settled(stack_cassandra, status_id)
    shown = http.get(f"/api/v1/statuses/{status_id}").json()
    assert (shown["edited_at"], shown["card"]["title"]) == (None, "A plain page"), shown
    assert status_id in [s["id"] for s in http.get(old_timeline).json()]
    harness.figure("Kafka paused during an edit moving a status to another page: answered 503, the old card kept "
                   f"(the new page fetched {pages.asked['/few']} times meanwhile, its card never shown)")
