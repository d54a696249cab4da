"""Media attachments (kicau/media.py, services/post/media.py) through the public API of the running system: an
upload is decoded, kept without its metadata and served; a status shows its attachments in every read and in its
followers' homes; an attachment belongs to one status at a time; bad input is a 4xx with a Mastodon error and keeps
nothing."""

from __future__ import annotations

import io
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from kicau import keys
from kicau.ids import id_from_ms
from kicau.web import ACCOUNT_HEADER
from tests.conftest import User, eventually
from tests.timeline.test_notifications import follow

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def image_bytes(size: tuple[int, int] = (120, 80), fmt: str = "PNG", *, colour: str = "teal",
                exif: Image.Exif | None = None) -> bytes:
    image = Image.new("RGB", size, colour)
    image.paste(Image.new("RGB", (size[0] // 2, size[1] // 2), "orange"), (0, 0))  # a corner to tell up from down
    out = io.BytesIO()
    image.save(out, fmt, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def upload(http: httpx.Client, user: User, data: bytes | None = None, *, filename: str = "picture.png",
           mime: str = "image/png", path: str = "/api/v2/media", **fields: str) -> httpx.Response:
    return http.post(path, headers=user.auth, files={"file": (filename, data or image_bytes(), mime)}, data=fields)


def uploaded(http: httpx.Client, user: User, data: bytes | None = None, **fields: str) -> dict[str, Any]:
    answer = upload(http, user, data, **fields)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def fetched(http: httpx.Client, url: str) -> httpx.Response:
    """A file by its public URL's path (the instance's public address may not be this gateway's)."""
    return http.get(urlsplit(url).path)


def opened(http: httpx.Client, url: str) -> Image.Image:
    answer = fetched(http, url)
    assert answer.status_code == 200, answer.text
    return Image.open(io.BytesIO(answer.content))


def test_an_upload_is_decoded_kept_without_its_metadata_and_served(http: httpx.Client,
                                                                   make_user: Callable[..., User]) -> None:
    owner, other = make_user("med_o"), make_user("med_x")
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # taken on its side: shown turned a quarter clockwise
    exif[0x010F] = "Kicau Camera"  # Make
    exif.get_ifd(GPS_IFD)[2] = (52.0, 22.0, 0.0)  # GPSLatitude
    photo = image_bytes((1200, 800), "JPEG", exif=exif)
    assert Image.open(io.BytesIO(photo)).getexif().get(0x010F) == "Kicau Camera"
    attachment = uploaded(http, owner, photo, filename="photo.jpg", mime="image/jpeg", description="A test card",
                          focus="0.5,-0.25")
    assert attachment["type"] == "image"
    assert attachment["description"] == "A test card"
    assert attachment["meta"]["focus"] == {"x": 0.5, "y": -0.25}
    original, small = attachment["meta"]["original"], attachment["meta"]["small"]
    assert (original["width"], original["height"]) == (800, 1200)  # upright
    assert small["width"] * small["height"] <= 480 * 480 and small["width"] / small["height"] == pytest.approx(
        800 / 1200, rel=0.02)
    assert len(attachment["blurhash"]) == 28  # 4 x 3 components
    assert attachment["url"].endswith(f"/system/media/{attachment['id']}/original.jpg")

    answer = fetched(http, attachment["url"])
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/jpeg"
    assert "immutable" in answer.headers["cache-control"]
    assert original["file_size"] == len(answer.content)
    served = Image.open(io.BytesIO(answer.content))
    assert served.size == (800, 1200)
    assert dict(served.getexif()) == {}  # no camera, no position, no orientation left to apply
    corner = served.getpixel((790, 10))
    assert isinstance(corner, tuple) and corner[0] > 200  # the orange corner, turned to the top right
    preview = opened(http, attachment["preview_url"])
    assert preview.size == (small["width"], small["height"])

    # Its owner reads it; anyone else finds nothing, as for a missing one.
    mine = http.get(f"/api/v1/media/{attachment['id']}", headers=owner.auth)
    assert mine.status_code == 200 and mine.json() == attachment
    assert http.get(f"/api/v1/media/{attachment['id']}", headers=other.auth).status_code == 404
    # Described again before any status shows it.
    changed = http.put(f"/api/v1/media/{attachment['id']}", headers=owner.auth,
                       json={"description": "A test card, upright", "focus": "0,0"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "A test card, upright"
    assert changed.json()["meta"]["focus"] == {"x": 0.0, "y": 0.0}
    assert http.put(f"/api/v1/media/{attachment['id']}", headers=other.auth,
                    json={"description": "mine now"}).status_code == 404


@pytest.mark.parametrize("fmt,mime,extension,preview", [
    ("PNG", "image/png", "png", "png"), ("WEBP", "image/webp", "webp", "webp"), ("GIF", "image/gif", "gif", "png")])
def test_each_format_taken_is_served_as_itself(http: httpx.Client, make_user: Callable[..., User], fmt: str,
                                               mime: str, extension: str, preview: str) -> None:
    owner = make_user("med_f")
    data = image_bytes((900, 700), fmt)
    attachment = uploaded(http, owner, data, filename=f"x.{extension}", mime=mime)
    assert attachment["url"].endswith(f"/original.{extension}")
    assert attachment["preview_url"].endswith(f"/small.{preview}")
    answer = fetched(http, attachment["url"])
    assert answer.headers["content-type"] == mime
    if fmt == "GIF":
        assert answer.content == data  # kept byte for byte
    assert Image.open(io.BytesIO(answer.content)).size == (900, 700)
    assert opened(http, attachment["preview_url"]).format == preview.upper()
    # The older path answers the same.
    older = upload(http, owner, data, filename=f"x.{extension}", mime=mime, path="/api/v1/media")
    assert older.status_code == 200, older.text
    assert older.json()["meta"]["original"]["size"] == "900x700"


def home(http: httpx.Client, reader: User) -> dict[str, dict[str, Any]]:
    answer = http.get("/api/v1/timelines/home?limit=40", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return {status["id"]: status for status in answer.json()}


def test_a_status_shows_its_attachments_in_every_read(http: httpx.Client, make_user: Callable[..., User],
                                                      stack_redis: Any) -> None:
    author, follower = make_user("med_a"), make_user("med_b")
    follow(http, follower, author)
    first = uploaded(http, author, image_bytes(colour="red"), description="first")
    second = uploaded(http, author, image_bytes(colour="blue"), description="second")
    # As Mastodon.py sends it: a form, media_ids[] in order, no text at all.
    posted = http.post("/api/v1/statuses", headers=author.auth,
                       data={"media_ids[]": [second["id"], first["id"]], "sensitive": "true"})
    assert posted.status_code == 200, posted.text
    status = posted.json()
    assert status["content"] == "" and status["sensitive"] is True
    assert [(m["id"], m["description"]) for m in status["media_attachments"]] == [
        (second["id"], "second"), (first["id"], "first")]
    assert status["media_attachments"][0] == second

    read = http.get(f"/api/v1/statuses/{status['id']}", headers=follower.auth)
    assert read.status_code == 200 and read.json()["media_attachments"] == status["media_attachments"]
    in_home: dict[str, Any] = eventually(lambda: home(http, follower).get(status["id"]) or {})
    assert in_home["media_attachments"] == status["media_attachments"]
    profile = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=follower.auth).json()
    assert profile[0]["media_attachments"] == status["media_attachments"]
    # Rendered again from its Cassandra row once the cached copy is gone.
    stack_redis.delete(keys.status_cache(int(status["id"])))
    reread = http.get(f"/api/v1/statuses/{status['id']}", headers=follower.auth)
    assert reread.status_code == 200 and reread.json()["media_attachments"] == status["media_attachments"]

    # One status at a time: naming them again is a 422, as are changes and deletes while a status shows them.
    again = http.post("/api/v1/statuses", headers=author.auth, json={"status": "again", "media_ids": [first["id"]]})
    assert again.status_code == 422 and "already attached" in again.json()["error"]
    assert http.put(f"/api/v1/media/{first['id']}", headers=author.auth,
                    json={"description": "changed"}).status_code == 404
    in_use = http.delete(f"/api/v1/media/{first['id']}", headers=author.auth)
    assert in_use.status_code == 422 and "used by a status" in in_use.json()["error"]

    # An edit keeps them (named again in their order, as clients send them back); another may reorder them.
    edited = http.put(f"/api/v1/statuses/{status['id']}", headers=author.auth,
                      json={"status": "now with words", "media_ids": [second["id"], first["id"]]})
    assert edited.status_code == 200, edited.text
    assert edited.json()["media_attachments"] == status["media_attachments"]
    history = http.get(f"/api/v1/statuses/{status['id']}/history", headers=author.auth).json()
    assert [v["media_attachments"] for v in history] == [status["media_attachments"]] * 2
    reordered = http.put(f"/api/v1/statuses/{status['id']}", headers=author.auth,
                         json={"status": "reordered", "media_ids": [first["id"], second["id"]]})
    assert reordered.status_code == 200, reordered.text
    assert [m["id"] for m in reordered.json()["media_attachments"]] == [first["id"], second["id"]]

    # Delete and redraft: the deleted status answers with its attachments, which are free again.
    deleted = http.delete(f"/api/v1/statuses/{status['id']}", headers=author.auth)
    assert deleted.status_code == 200
    assert [m["id"] for m in deleted.json()["media_attachments"]] == [first["id"], second["id"]]
    redraft = http.post("/api/v1/statuses", headers=author.auth,
                        json={"status": "redrafted", "media_ids": [first["id"]]})
    assert redraft.status_code == 200, redraft.text
    assert [m["id"] for m in redraft.json()["media_attachments"]] == [first["id"]]
    # An attachment no status shows is deleted, files and all (the gateway's copy of a file read just before too).
    assert fetched(http, second["url"]).status_code == 200 and fetched(http, second["url"]).status_code == 200
    assert http.delete(f"/api/v1/media/{second['id']}", headers=author.auth).status_code == 200
    assert http.get(f"/api/v1/media/{second['id']}", headers=author.auth).status_code == 404
    assert fetched(http, second["url"]).status_code == 404


def test_a_claim_by_a_status_never_written_is_taken_over_once_stale(http: httpx.Client,
                                                                    make_user: Callable[..., User],
                                                                    stack_cassandra: Any) -> None:
    """A post service that died between claiming an attachment and writing its status leaves the claim on a
    status that does not exist; a post naming it succeeds once no request can still be writing that status, and
    is refused before then (that request might still succeed)."""
    author = make_user("med_c")
    attachment = uploaded(http, author)
    recent = id_from_ms(int(time.time() * 1000)) + 1
    claim = "UPDATE media_attachments SET status_id = %s WHERE id = %s"
    stack_cassandra.execute(claim, (recent, int(attachment["id"])))
    held = http.post("/api/v1/statuses", headers=author.auth, json={"status": "x", "media_ids": [attachment["id"]]})
    assert held.status_code == 422
    stale = id_from_ms(int((time.time() - 120) * 1000)) + 1  # a status id two minutes old
    stack_cassandra.execute(claim, (stale, int(attachment["id"])))
    posted = http.post("/api/v1/statuses", headers=author.auth, json={"status": "x", "media_ids": [attachment["id"]]})
    assert posted.status_code == 200, posted.text
    assert [m["id"] for m in posted.json()["media_attachments"]] == [attachment["id"]]


def test_bad_input_is_a_4xx_and_keeps_nothing(http: httpx.Client, make_user: Callable[..., User],
                                              narrow: Callable[[User, str], dict[str, str]]) -> None:
    owner, other = make_user("med_bad"), make_user("med_other")

    def refused(answer: httpx.Response, status: int, words: str = "") -> None:
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"]

    refused(upload(http, owner, b"not an image at all", filename="x.png"), 422, "could not be read as an image")
    refused(upload(http, owner, b"%PDF-1.4 " + b"x" * 100, filename="x.pdf", mime="application/pdf"), 422)
    refused(upload(http, owner, image_bytes(fmt="BMP"), filename="x.bmp", mime="image/bmp"), 422, "not supported")
    refused(http.post("/api/v2/media", headers=owner.auth, data={"description": "no file"}), 422, "File")
    refused(http.post("/api/v2/media", headers=owner.auth, json={"file": "abc"}), 422, "File")
    refused(http.post("/api/v2/media", headers=owner.auth, files={"description": (None, "x")}), 422, "File")
    refused(upload(http, owner, description="d" * 1501), 422, "Description is too long")
    refused(upload(http, owner, focus="2,0"), 422, "focus")
    refused(upload(http, owner, focus="left"), 422, "focus")
    refused(upload(http, owner, b"\xff" * (16 * 1024 * 1024 + 70 * 1024), filename="big.jpg", mime="image/jpeg"), 413)
    refused(http.post("/api/v2/media", files={"file": ("x.png", image_bytes(), "image/png")}), 401)
    refused(http.post("/api/v2/media", headers=narrow(owner, "read write:statuses"),
                      files={"file": ("x.png", image_bytes(), "image/png")}), 403)

    mine = uploaded(http, owner)
    theirs = uploaded(http, other)
    refused(http.put(f"/api/v1/media/{mine['id']}", headers=owner.auth, json={"focus": "0,9"}), 422, "focus")
    refused(http.put(f"/api/v1/media/{mine['id']}", headers=owner.auth, json={"description": 5}), 422)
    refused(http.get("/api/v1/media/not-an-id", headers=owner.auth), 404)
    refused(http.delete(f"/api/v1/media/{theirs['id']}", headers=owner.auth), 404)
    refused(http.get(f"/system/media/{mine['id']}/original.gif"), 404)
    refused(http.get(f"/system/media/{mine['id']}/huge.png"), 404)
    refused(http.get("/system/media/12345/original.png"), 404)

    def post(**body: Any) -> httpx.Response:
        return http.post("/api/v1/statuses", headers=owner.auth, json=body)

    refused(post(status="x", media_ids=[theirs["id"]]), 422, "not found")
    refused(post(status="x", media_ids=["999999"]), 422, "not found")
    refused(post(status="x", media_ids=["abc"]), 422, "media_ids")
    refused(post(status="x", media_ids=[mine["id"]] * 2 + [uploaded(http, owner)["id"] for _ in range(3)]), 422,
            "more than 4")
    refused(post(status="x", media_ids=[mine["id"]], poll={"options": ["a", "b"], "expires_in": 3600}), 422, "poll")
    refused(post(status="x", media_ids=[theirs["id"]], scheduled_at="2099-01-01T00:00:00Z"), 422, "not found")
    refused(post(media_ids=[]), 422, "Text can't be blank")
    # None of it attached the owner's attachment: it is still free to describe and to post.
    assert http.put(f"/api/v1/media/{mine['id']}", headers=owner.auth,
                    json={"description": "still free"}).status_code == 200
    assert post(status="at last", media_ids=[mine["id"]]).status_code == 200


@pytest.fixture
def narrow(http: httpx.Client, app_credentials: dict[str, Any]) -> Callable[[User, str], dict[str, str]]:
    from tests.conftest import narrow_token

    return lambda user, scope: narrow_token(http, app_credentials, user, scope)


def test_only_media_keeps_the_statuses_with_attachments(http: httpx.Client, make_user: Callable[..., User]) -> None:
    """``only_media`` on a profile, the public timeline and a hashtag's: the statuses with attachments alone (a
    reblog has none of its own, as on Mastodon)."""
    author, booster = make_user("med_om"), make_user("med_bo")
    tag = f"media{uuid.uuid4().hex[:8]}"

    def post(text: str, **fields: Any) -> str:
        answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": text, **fields})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    pictured = post(f"a picture #{tag}", media_ids=[uploaded(http, author)["id"]])
    post(f"words alone #{tag}")
    older_picture = pictured
    pictured = post(f"another picture #{tag}", media_ids=[uploaded(http, author)["id"]])
    post("words again")
    assert http.post(f"/api/v1/statuses/{pictured}/reblog", headers=booster.auth).status_code == 200
    assert http.post(f"/api/v1/statuses/{pictured}/reblog", headers=author.auth).status_code == 200

    def ids(path: str) -> list[str]:
        answer = http.get(path, headers=author.auth)
        assert answer.status_code == 200, answer.text
        return [s["id"] for s in answer.json() if s["account"]["id"] == author.id and s["reblog"] is None]

    assert ids(f"/api/v1/accounts/{author.id}/statuses?only_media=true&limit=40") == [pictured, older_picture]
    profile = http.get(f"/api/v1/accounts/{author.id}/statuses?only_media=true", headers=author.auth).json()
    assert all(s["reblog"] is None for s in profile)  # the author's reblog of its own picture is left out
    assert ids(f"/api/v1/accounts/{author.id}/statuses?only_media=true&limit=1") == [pictured]
    assert eventually(lambda: ids(f"/api/v1/timelines/tag/{tag}?only_media=true") == [pictured, older_picture]
                      or None)
    assert eventually(lambda: ids("/api/v1/timelines/public?only_media=true&limit=40") == [pictured, older_picture]
                      or None)
    assert len(ids(f"/api/v1/timelines/tag/{tag}")) == 3  # without only_media, the words too


def test_uploads_no_status_took_are_removed_when_their_time_is_up(
    http: httpx.Client, make_user: Callable[..., User],
    eager_post_service: Callable[..., tuple[str, subprocess.Popen[bytes]]],
) -> None:
    """A post service that keeps unattached uploads three seconds (the stack's keeps them a day, as Mastodon):
    the one no status took is gone, row and files; the one a status took stays."""
    author = make_user("med_exp")
    url, _ = eager_post_service(KICAU_POST_UNATTACHED_MEDIA_SECONDS="3")

    def upload_there() -> dict[str, Any]:
        answer = httpx.post(f"{url}/internal/media", headers={ACCOUNT_HEADER: author.id}, content=image_bytes(),
                            timeout=30)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    kept, dropped = upload_there(), upload_there()
    posted = httpx.post(f"{url}/internal/statuses", headers={ACCOUNT_HEADER: author.id}, timeout=30,
                        json={"status": "keeps one", "media_ids": [int(kept["id"])]})
    assert posted.status_code == 200, posted.text
    eventually(lambda: http.get(f"/api/v1/media/{dropped['id']}", headers=author.auth).status_code == 404 or None,
               timeout=60)
    assert fetched(http, dropped["url"]).status_code == 404
    assert fetched(http, dropped["preview_url"]).status_code == 404
    time.sleep(1.5)  # past the kept one's expiry too
    assert fetched(http, kept["url"]).status_code == 200
    assert http.get(f"/api/v1/statuses/{posted.json()['id']}").json()["media_attachments"][0]["id"] == kept["id"]
