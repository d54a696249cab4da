"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) after claiming a new status's
attachment and before writing the status (services/post/media.py). Nothing was accepted: the client gets a Mastodon
error, never 500. The claim names a status that does not exist; while that request could still be writing it
(30 s, as for its Idempotency-Key) a retry is told to wait (409), and after that the retry with the same key posts
the status with its attachment, once."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from kicau.crash_points import CRASH_EXIT_CODE
from services.post.service import IDEMPOTENCY_IN_FLIGHT_SECONDS
from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.post.test_media import uploaded


@pytest.mark.timeout(300)
def test_a_post_retried_after_a_crash_between_claim_and_write_gets_its_attachment(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    author = make_user("mcr_a")
    attachment = uploaded(http, author, description="kept through a crash")
    body = {"status": "through a crash", "media_ids": [attachment["id"]]}

    faults.kill(harness.service_pid("post"))
    crashing = faults.spawn_service("post", {"KICAU_CRASH_AT": "post.media.attached"})
    harness.wait_http_ready(crashing.port)
    headers = {**author.auth, "Idempotency-Key": f"media-crash-{author.id}"}
    crashed_at = time.monotonic()
    broken = http.post("/api/v1/statuses", headers=headers, json=body)
    assert broken.status_code in (502, 503) and "error" in broken.json(), broken.text
    assert crashing.proc.wait(timeout=30) == CRASH_EXIT_CODE, "the post service did not die at its crash point"

    restart_seconds = harness.stack_up()
    waiting = http.post("/api/v1/statuses", headers=headers, json=body)
    assert waiting.status_code == 409 and "error" in waiting.json(), waiting.text
    time.sleep(max(0.0, IDEMPOTENCY_IN_FLIGHT_SECONDS + 1 - (time.monotonic() - crashed_at)))
    retried = http.post("/api/v1/statuses", headers=headers, json=body)
    assert retried.status_code == 200, retried.text
    assert [(m["id"], m["description"]) for m in retried.json()["media_attachments"]] == [
        (attachment["id"], "kept through a crash")]
    again = http.post("/api/v1/statuses", headers=headers, json=body)
    assert again.status_code == 200 and again.json()["id"] == retried.json()["id"]
    # The attachment is the posted status's now.
    other = http.post("/api/v1/statuses", headers=author.auth, json={"status": "x", "media_ids": [attachment["id"]]})
    assert other.status_code == 422
    harness.figure(f"post service died between an attachment's claim and its status's write: answered "
                   f"{broken.status_code}; restarted in {restart_seconds:.1f}s; the retry waited out the claim and "
                   f"posted the status with its attachment once")
