"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) right after a status with a
link was made durable and published, before its page was fetched (services/post/link_previews.py). The status is
kept (the client's retry with the same Idempotency-Key answers it), and once `stack up` has restarted the service
its runner finds the preview's plan in Cassandra and the status shows the card: nothing was held only in the dead
process."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from kicau.crash_points import CRASH_EXIT_CODE
from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.post.test_link_previews import Pages


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
