"""The gateway's copies of attachments' files (services/gateway/media_files.py), as pure logic: bounded by bytes
(least recently used out first), by a file's size and by age; an attachment's files forgotten together."""

from __future__ import annotations

import time

from services.gateway.media_files import MediaFiles


def test_the_least_recently_used_go_first_once_the_bytes_are_spent() -> None:
    files = MediaFiles(most_bytes=10, largest=8, seconds=60)
    files.put("/a", b"aaaa", "image/png")
    files.put("/b", b"bbbb", "image/png")
    assert files.get("/a") is not None  # /a used last: /b goes first
    files.put("/c", b"cccc", "image/jpeg")
    assert files.get("/b") is None
    kept = files.get("/a")
    assert kept is not None and (kept.data, kept.content_type) == (b"aaaa", "image/png")
    assert files.get("/c") is not None
    files.put("/big", b"x" * 9, "image/png")  # larger than any one file kept
    assert files.get("/big") is None


def test_files_age_out_and_an_attachments_files_go_together() -> None:
    files = MediaFiles(most_bytes=100, largest=100, seconds=0.05)
    files.put("/system/media/1/original.png", b"o", "image/png")
    files.put("/system/media/1/small.png", b"s", "image/png")
    files.put("/system/media/12/small.png", b"t", "image/png")
    files.forget("/system/media/1/")
    assert files.get("/system/media/1/original.png") is None and files.get("/system/media/1/small.png") is None
    assert files.get("/system/media/12/small.png") is not None
    time.sleep(0.1)
    assert files.get("/system/media/12/small.png") is None


def test_nothing_is_kept_without_room() -> None:
    files = MediaFiles(most_bytes=0, largest=100, seconds=60)
    files.put("/a", b"a", "image/png")
    assert files.get("/a") is None
