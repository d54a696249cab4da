"""PATCH /api/v1/accounts/update_credentials through the public API of the running system: the display name, note
and bot flag change everywhere the account is shown (its profile, verify_credentials, its statuses on another
reader's home timeline, notifications), only the fields given change, Mastodon's limits are 422s, what Kicau has
no place for is refused rather than dropped, and bad input writes nothing; profile fields, and the avatar and header
pictures."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from kicau.web import ACCOUNT_HEADER
from services.post.settings import PostSettings
from tests.conftest import User, eventually
from tests.timeline.test_notifications import follow, notifications


def update(http: httpx.Client, user: User, **fields: Any) -> httpx.Response:
    return http.patch("/api/v1/accounts/update_credentials", headers=user.auth, data=fields)


def test_a_profile_change_shows_everywhere_the_account_is_shown(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, reader = make_user("prf_a"), make_user("prf_r")
    follow(http, reader, author)
    status = http.post("/api/v1/statuses", headers=author.auth,
                       json={"status": f"hello @{reader.username}"}).json()["id"]
    eventually(lambda: [s["id"] for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()] == [status])
    eventually(lambda: len(notifications(http, reader)) == 1)

    changed = update(http, author, display_name="Ada L.", note="Counting engines\nand poems", bot="true")
    assert changed.status_code == 200, changed.text
    shown = changed.json()
    assert (shown["display_name"], shown["bot"], shown["source"]["note"]) == ("Ada L.", True,
                                                                               "Counting engines\nand poems")
    assert shown["note"] == "<p>Counting engines<br />and poems</p>"
    # Read back by everyone, wherever the card is spliced in (each reader's copies dropped with the cached card).
    assert http.get(f"/api/v1/accounts/{author.id}").json()["display_name"] == "Ada L."
    assert http.get("/api/v1/accounts/verify_credentials", headers=author.auth).json()["bot"] is True
    home = http.get("/api/v1/timelines/home", headers=reader.auth).json()
    assert home[0]["account"]["display_name"] == "Ada L."
    assert http.get(f"/api/v1/statuses/{status}").json()["account"]["display_name"] == "Ada L."
    assert notifications(http, reader)[0]["account"]["display_name"] == "Ada L."

    # Only the fields given change; JSON works as a form does (toot sends JSON).
    again = http.patch("/api/v1/accounts/update_credentials", headers=author.auth, json={"bot": False})
    assert again.status_code == 200, again.text
    assert (again.json()["display_name"], again.json()["bot"]) == ("Ada L.", False)
    assert update(http, author, display_name="").json()["display_name"] == ""  # cleared, as Mastodon allows
    # What every client's edit-profile screen sends along, unchanged, is taken.
    same = update(http, author, locked="false", discoverable="true", **{"source[privacy]": "public"})
    assert same.status_code == 200, same.text


def test_bad_profile_input_is_a_clear_4xx_and_writes_nothing(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    user = make_user("prf_b")
    before = http.get("/api/v1/accounts/verify_credentials", headers=user.auth).json()
    for fields, code in [
        ({"display_name": "x" * 31}, 422),
        ({"note": "y" * 501}, 422),
        ({"bot": "perhaps"}, 422),
        ({"locked": "perhaps"}, 422),
        ({"discoverable": "false"}, 422),
        ({"source[privacy]": "direct"}, 422),  # a posting default Mastodon refuses (kicau/posting_defaults.py)
        ({f"fields_attributes[{n}][name]": f"f{n}" for n in range(5)}, 422),  # four at most
        ({"fields_attributes[0][name]": "n" * 256}, 422),
        ({"fields_attributes[0][value]": "v" * 256}, 422),
        ({"fields_attributes[0][colour]": "red"}, 422),
        ({"fields_attributes[0][name]": "", "fields_attributes[0][value]": ""}, 200),  # empty, as clients send
        ({"display_name": "nul\x00"}, 422),
    ]:
        answer = update(http, user, **fields)
        assert answer.status_code == code, (fields, answer.text)
        if code != 200:
            assert set(answer.json()) == {"error"}, answer.text
    answer = http.patch("/api/v1/accounts/update_credentials", headers=user.auth,
                        json={"display_name": 5, "note": "fine"})
    assert answer.status_code == 422 and set(answer.json()) == {"error"}, answer.text
    for fields_attributes in ("site", [{"name": 5, "value": "x"}], ["site"]):
        answer = http.patch("/api/v1/accounts/update_credentials", headers=user.auth,
                            json={"fields_attributes": fields_attributes})
        assert answer.status_code == 422, answer.text
    assert http.get("/api/v1/accounts/verify_credentials", headers=user.auth).json() == before, "nothing changed"
    assert http.patch("/api/v1/accounts/update_credentials", data={"note": "x"}).status_code == 401


def test_profile_fields_show_wherever_the_account_does(http: httpx.Client, make_user: Callable[..., User]) -> None:
    """``fields_attributes`` (a form's ``fields_attributes[0][name]``, JSON's list or object by index) replace the
    account's profile fields: blank pairs dropped, a web address made a link, the raw text in ``source``."""
    author = make_user("prf_f")
    changed = update(http, author, **{
        "fields_attributes[0][name]": "Site", "fields_attributes[0][value]": "https://example.test/ada",
        "fields_attributes[1][name]": "", "fields_attributes[1][value]": "",
        "fields_attributes[2][name]": "Likes", "fields_attributes[2][value]": "<engines> & poems"})
    assert changed.status_code == 200, changed.text
    shown = changed.json()
    assert [(f["name"], f["verified_at"]) for f in shown["fields"]] == [("Site", None), ("Likes", None)]
    assert shown["fields"][0]["value"].startswith('<a href="https://example.test/ada"')
    assert shown["fields"][1]["value"] == "&lt;engines&gt; &amp; poems"
    assert [(f["name"], f["value"]) for f in shown["source"]["fields"]] == [
        ("Site", "https://example.test/ada"), ("Likes", "<engines> & poems")]
    assert http.get(f"/api/v1/accounts/{author.id}").json()["fields"] == shown["fields"]
    # Other changes keep them; JSON (toot's) replaces them all, by index.
    assert update(http, author, note="hi").json()["fields"] == shown["fields"]
    again = http.patch("/api/v1/accounts/update_credentials", headers=author.auth,
                       json={"fields_attributes": {"1": {"name": "Pronouns", "value": "she/her"}}})
    assert again.status_code == 200, again.text
    assert [(f["name"], f["value"]) for f in again.json()["fields"]] == [("Pronouns", "she/her")]
    cleared = http.patch("/api/v1/accounts/update_credentials", headers=author.auth, json={"fields_attributes": []})
    assert cleared.json()["fields"] == [] and cleared.json()["source"]["fields"] == []


def picture(size: tuple[int, int], fmt: str, exif: Any = None) -> bytes:
    from PIL import Image

    image = Image.new("RGB", size, "purple")
    out = io.BytesIO()
    image.save(out, fmt, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def test_profile_pictures_are_cropped_kept_and_shown(http: httpx.Client, make_user: Callable[..., User]) -> None:
    """``avatar`` and ``header`` files (multipart, as every client's edit-profile screen sends them): cropped to
    Mastodon's sizes, written again without their metadata, served, and shown wherever the account is; taken back
    to the default pictures by ``DELETE /api/v1/profile/avatar`` and ``/header``."""
    from PIL import Image

    author = make_user("prf_p")
    status = http.post("/api/v1/statuses", headers=author.auth, json={"status": "with a face"}).json()["id"]
    exif = Image.Exif()
    exif[0x010F] = "Kicau Camera"
    changed = http.patch("/api/v1/accounts/update_credentials", headers=author.auth, data={"display_name": "Pic"},
                         files={"avatar": ("me.jpg", picture((800, 600), "JPEG", exif), "image/jpeg"),
                                "header": ("wide.png", picture((3000, 600), "PNG"), "image/png")})
    assert changed.status_code == 200, changed.text
    shown = changed.json()
    assert shown["display_name"] == "Pic"
    assert shown["avatar"] == shown["avatar_static"] and shown["header"] == shown["header_static"]
    for name, size, kind in (("avatar", (400, 400), "image/jpeg"), ("header", (1500, 500), "image/png")):
        answer = http.get(urlsplit(shown[name]).path)
        assert answer.status_code == 200 and answer.headers["content-type"] == kind, name
        served = Image.open(io.BytesIO(answer.content))
        assert served.size == size and dict(served.getexif()) == {}, name
    # Wherever the account is shown.
    assert http.get(f"/api/v1/statuses/{status}").json()["account"]["avatar"] == shown["avatar"]
    assert http.get(f"/api/v1/accounts/{author.id}").json()["header"] == shown["header"]
    # A profile picture is no attachment to post, nor to delete.
    picture_id = urlsplit(shown["avatar"]).path.split("/")[3]
    refused = http.post("/api/v1/statuses", headers=author.auth, json={"status": "x", "media_ids": [picture_id]})
    assert refused.status_code == 422, refused.text
    assert http.delete(f"/api/v1/media/{picture_id}", headers=author.auth).status_code == 422

    # Replaced, a picture's file goes (Mastodon removes it too); the new one is served.
    replaced = http.patch("/api/v1/accounts/update_credentials", headers=author.auth,
                          files={"avatar": ("again.png", picture((500, 500), "PNG"), "image/png")})
    assert replaced.status_code == 200, replaced.text
    assert http.get(urlsplit(shown["avatar"]).path).status_code == 404
    assert http.get(urlsplit(replaced.json()["avatar"]).path).status_code == 200
    assert http.get(urlsplit(shown["header"]).path).status_code == 200  # not replaced: kept

    gone = http.delete("/api/v1/profile/avatar", headers=author.auth)
    assert gone.status_code == 200 and gone.json()["avatar"].endswith("/avatars/original/missing.png")
    assert gone.json()["header"] == shown["header"]
    assert http.get(urlsplit(replaced.json()["avatar"]).path).status_code == 404
    assert http.delete("/api/v1/profile/header", headers=author.auth).json()["header"].endswith(
        "/headers/original/missing.png")
    assert http.get(urlsplit(shown["header"]).path).status_code == 404
    assert http.delete("/api/v1/profile/avatar").status_code == 401


def test_bad_profile_pictures_change_nothing(http: httpx.Client, make_user: Callable[..., User]) -> None:
    user = make_user("prf_q")
    before = http.get("/api/v1/accounts/verify_credentials", headers=user.auth).json()

    def patch(**files: tuple[str, bytes, str]) -> httpx.Response:
        return http.patch("/api/v1/accounts/update_credentials", headers=user.auth, data={"display_name": "Never"},
                          files=files)

    for files, code in [
        ({"avatar": ("x.png", b"not an image", "image/png")}, 422),
        ({"header": ("x.bmp", picture((10, 10), "BMP"), "image/bmp")}, 422),
        ({"avatar": ("big.jpg", b"\xff" * (8 * 1024 * 1024 + 1), "image/jpeg")}, 422),
        ({"note": ("note.txt", b"a file for a text", "text/plain")}, 422),
    ]:
        answer = patch(**files)
        assert answer.status_code == code, (files.keys(), answer.text)
        assert set(answer.json()) == {"error"}
    text_avatar = http.patch("/api/v1/accounts/update_credentials", headers=user.auth,
                             data={"avatar": "https://example.test/me.png"})
    assert text_avatar.status_code == 422
    # Only the account's own pictures can be removed, and only its profile pictures (the internal route).
    other = make_user("prf_q2")
    theirs = http.patch("/api/v1/accounts/update_credentials", headers=other.auth,
                        files={"avatar": ("a.png", picture((100, 100), "PNG"), "image/png")}).json()["avatar"]
    post_url = f"http://127.0.0.1:{PostSettings().port}"  # the stack's post service, on its HTTP port
    for path in (urlsplit(theirs).path, "/system/media/1/original.png", "/etc/passwd"):
        refused = httpx.delete(f"{post_url}/internal/profile_pictures", params={"path": path},
                               headers={ACCOUNT_HEADER: user.id})
        assert (refused.status_code, refused.json()) == (404, {"error": "Record not found"}), path
    assert http.get(urlsplit(theirs).path).status_code == 200
    # An empty file part (a picture not chosen) is no picture.
    empty = patch(avatar=("", b"", "application/octet-stream"))
    assert empty.status_code == 200 and empty.json()["avatar"] == before["avatar"]
    assert {k: v for k, v in http.get("/api/v1/accounts/verify_credentials", headers=user.auth).json().items()
            if k != "display_name"} == {k: v for k, v in before.items() if k != "display_name"}
