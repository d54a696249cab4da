"""A stream opened while the service holding its reader's filters is away (services/gateway/streaming.py).

The graph service is killed; the reader, who hides statuses saying "taxes", opens a user stream. It opens (a
stream is worth more than its filters) and, for the moment, brings the hidden words too. Once `stack up` has
restarted the graph service, the gateway's background retries read the filters, and the same stream hides them
again: no filter change, no reconnection needed. Before, such a stream stayed unfiltered until the reader's
filters next changed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.gateway.test_hashtag_stream import frames_until_quiet
from tests.gateway.test_streaming_bounds import ws_url
from tests.timeline.test_filters import make_filter
from tests.timeline.test_notifications import follow
from tests.timeline.test_visibility import post


@pytest.mark.timeout(300)
def test_a_stream_opened_without_its_filters_takes_them_once_they_can_be_read(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    reader, author = make_user("sfo_r"), make_user("sfo_a")
    follow(http, reader, author)
    make_filter(http, reader, title="Taxes", context=["home"], filter_action="hide",
                keywords_attributes=[{"keyword": "taxes"}])

    faults.kill(harness.service_pid("graph"))
    with connect(ws_url(gateway_url) + "?stream=user", additional_headers=reader.auth, open_timeout=10) as ws:
        # Unfiltered while the filters cannot be read: the hidden words arrive.
        for _ in range(60):
            hidden = post(http, author, "my taxes, unfiltered")
            marker = post(http, author, "marker")
            seen = [json.loads(str(f["payload"]))["id"] for f in frames_until_quiet(ws) if f["event"] == "update"]
            if marker in seen:
                assert hidden in seen, seen
                break
        else:
            raise AssertionError("the user stream delivered nothing while the graph service was down")

        restart_seconds = harness.stack_up()
        restarted = time.monotonic()
        for attempt in range(60):
            hidden = post(http, author, f"my taxes {attempt}")
            marker = post(http, author, f"marker {attempt}")
            seen = [json.loads(str(f["payload"]))["id"] for f in frames_until_quiet(ws) if f["event"] == "update"]
            if marker in seen and hidden not in seen:
                break
        else:
            raise AssertionError("the stream never took the reader's filters after the graph service came back")
        filtered_after = time.monotonic() - restarted
        # And it stays filtered.
        hidden, plain = post(http, author, "more taxes"), post(http, author, "plain words")
        seen = [json.loads(str(f["payload"]))["id"] for f in frames_until_quiet(ws) if f["event"] == "update"]
        assert plain in seen and hidden not in seen, seen
    harness.figure(f"graph service down while a user stream opened: unfiltered meanwhile; restarted in "
                   f"{restart_seconds:.1f}s, the same stream filtered {filtered_after:.1f}s after")
