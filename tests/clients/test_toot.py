"""The real toot CLI drives Kicau: log in with an e-mail (and through the browser, toot's recommended way), post,
follow, page the home timeline (toot's own pager, which follows the first Link header), read an account timeline,
delete, unfollow; read a hashtag's timeline and the hashtag."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from toot import App, api
from toot import User as TootUser

from tests.conftest import User, eventually
from tests.graph.test_authorization_code import HTML, read_page

TOOT = str(Path(sys.executable).with_name("toot"))
IDS = re.compile(r"^ID (\d+)", re.MULTILINE)


def toot(config: Path, *args: str, answers: str = "", tty: bool = False) -> str:
    """Run toot with its own config directory; with ``tty`` its stdout is a terminal, so it pages."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(config), "COLUMNS": "100"}
    if not tty:
        done = subprocess.run([TOOT, *args], env=env, input=answers, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout
    controller, terminal = pty.openpty()
    process = subprocess.Popen([TOOT, *args], env=env, stdin=subprocess.PIPE, stdout=terminal, stderr=terminal,
                               text=True)
    os.close(terminal)
    assert process.stdin is not None
    process.stdin.write(answers)
    process.stdin.close()
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=120) == 0, output
    os.close(controller)
    return output.decode(errors="replace")


def post(config: Path, author: User, text: str) -> str:
    """Post with toot; the new status's id, from the URL toot prints."""
    out = toot(config, "post", text)
    match = re.search(r"Toot posted: \S+/@" + author.username + r"/(\d+)", out)
    assert match, out
    return match.group(1)


def test_toot_journey(gateway_url: str, http: httpx.Client, make_user: Callable[..., User], tmp_path: Path) -> None:
    author, reader = make_user("ta"), make_user("tr")
    author_cfg, reader_cfg = tmp_path / "author", tmp_path / "reader"
    for user, config in ((author, author_cfg), (reader, reader_cfg)):
        def log_in(config: Path = config, user: User = user) -> str:
            return toot(config, "login_cli", "-i", gateway_url, "-e", user.email, "-p", user.password)

        # Retried: on a loaded machine toot's first request can time out and it reports "Instance not found".
        assert "Successfully logged in" in eventually(log_in, timeout=60, interval=2)
        assert user.username in toot(config, "whoami")

    posted = [post(author_cfg, author, f"toot says {n}") for n in range(7)]
    newest_first = list(reversed(posted))

    assert "You are now following" in toot(reader_cfg, "follow", author.username)
    eventually(lambda: [s["id"] for s in http.get("/api/v1/timelines/home?limit=40",
                                                   headers=reader.auth).json()] == newest_first)

    # toot's pager: 3 per page, answering "y" to continue, across three pages.
    paged = toot(reader_cfg, "--no-color", "timeline", "-c", "3", answers="y\ny\ny\nn\n", tty=True)
    assert IDS.findall(paged) == newest_first

    account = toot(reader_cfg, "timeline", "-a", author.username, "--once", "-c", "20")
    assert IDS.findall(account) == newest_first

    # The public and local timelines: every status here is public and local; the newest are the author's.
    for flag in ("--public", "--local"):
        public = toot(reader_cfg, "timeline", "--public", *([flag] if flag == "--local" else []), "--once", "-c", "7")
        assert IDS.findall(public) == newest_first, public

    # Favourited and given back from toot, seen through the API.
    assert "favourited" in toot(reader_cfg, "favourite", posted[1]).lower()
    liked = http.get(f"/api/v1/statuses/{posted[1]}", headers=reader.auth).json()
    assert (liked["favourites_count"], liked["favourited"]) == (1, True)
    assert "unfavourited" in toot(reader_cfg, "unfavourite", posted[1]).lower()
    assert http.get(f"/api/v1/statuses/{posted[1]}", headers=reader.auth).json()["favourites_count"] == 0

    # Reblogged and given back from toot, seen through the API.
    assert "reblogged" in toot(reader_cfg, "reblog", posted[3]).lower()
    assert http.get(f"/api/v1/statuses/{posted[3]}", headers=reader.auth).json()["reblogged"] is True
    assert "unreblogged" in toot(reader_cfg, "unreblog", posted[3]).lower()
    assert http.get(f"/api/v1/statuses/{posted[3]}", headers=reader.auth).json()["reblogs_count"] == 0

    # Bookmarked, listed and given back from toot.
    assert "bookmarked" in toot(reader_cfg, "bookmark", posted[2]).lower()
    assert http.get(f"/api/v1/statuses/{posted[2]}", headers=reader.auth).json()["bookmarked"] is True
    assert IDS.findall(toot(reader_cfg, "bookmarks", "--once", "-c", "5")) == [posted[2]]
    assert "unbookmarked" in toot(reader_cfg, "unbookmark", posted[2]).lower()
    assert http.get(f"/api/v1/statuses/{posted[2]}", headers=reader.auth).json()["bookmarked"] is False

    # Pinned and unpinned by its author from toot, seen through the API.
    assert "pinned" in toot(author_cfg, "pin", posted[4]).lower()
    assert http.get(f"/api/v1/accounts/{author.id}/statuses?pinned=true").json()[0]["id"] == posted[4]
    assert "unpinned" in toot(author_cfg, "unpin", posted[4]).lower()
    assert http.get(f"/api/v1/accounts/{author.id}/statuses?pinned=true").json() == []

    toot(author_cfg, "delete", posted[0])
    eventually(lambda: posted[0] not in IDS.findall(toot(reader_cfg, "timeline", "--once", "-c", "20")))

    # Muted and blocked from toot (kicau/blocks_and_mutes.py): listed, and the author's statuses leave the home
    # timeline while muted; a block ends the follow.
    assert f"You have muted {author.username}" in toot(reader_cfg, "mute", author.username)
    assert author.username in toot(reader_cfg, "muted")
    eventually(lambda: IDS.findall(toot(reader_cfg, "timeline", "--once", "-c", "20")) == [])
    assert f"{author.username} is no longer muted" in toot(reader_cfg, "unmute", author.username)
    assert "No accounts muted" in toot(reader_cfg, "muted")
    eventually(lambda: IDS.findall(toot(reader_cfg, "timeline", "--once", "-c", "20")) == newest_first[:-1])
    assert f"You are now blocking {author.username}" in toot(reader_cfg, "block", author.username)
    assert author.username in toot(reader_cfg, "blocked")
    assert http.get(f"/api/v1/accounts/relationships?id[]={author.id}",
                    headers=reader.auth).json()[0]["following"] is False
    assert f"{author.username} is no longer blocked" in toot(reader_cfg, "unblock", author.username)
    assert "No accounts blocked" in toot(reader_cfg, "blocked")
    eventually(lambda: IDS.findall(toot(reader_cfg, "timeline", "--once", "-c", "20")) == [])

    assert "You are now following" in toot(reader_cfg, "follow", author.username)
    assert "You are no longer following" in toot(reader_cfg, "unfollow", author.username)
    eventually(lambda: IDS.findall(toot(reader_cfg, "timeline", "--once", "-c", "20")) == [])


def test_toot_lists(gateway_url: str, http: httpx.Client, make_user: Callable[..., User], tmp_path: Path) -> None:
    """toot's ``lists`` commands (create, add, accounts, list, remove, delete) and its list timeline."""
    author, reader = make_user("tla"), make_user("tlr")
    config = tmp_path / "reader"
    assert "Successfully logged in" in eventually(
        lambda: toot(config, "login_cli", "-i", gateway_url, "-e", reader.email, "-p", reader.password),
        timeout=60, interval=2)
    assert "You are now following" in toot(config, "follow", author.username)
    assert "created" in toot(config, "lists", "create", "Friends", "--replies-policy", "list").lower()
    (made,) = http.get("/api/v1/lists", headers=reader.auth).json()
    assert (made["title"], made["replies_policy"]) == ("Friends", "list")
    assert "added" in toot(config, "lists", "add", "Friends", author.username).lower()
    assert author.username in toot(config, "lists", "accounts", "Friends")
    assert "Friends" in toot(config, "lists", "list")

    assert http.get(f"/api/v1/timelines/list/{made['id']}", headers=reader.auth).json() == []
    said = http.post("/api/v1/statuses", headers=author.auth, json={"status": "for the list"}).json()["id"]
    eventually(lambda: IDS.findall(toot(config, "timeline", "--list", "Friends", "--once", "-c", "5")) == [said])

    assert "removed" in toot(config, "lists", "remove", "Friends", author.username).lower()
    assert http.get(f"/api/v1/lists/{made['id']}/accounts", headers=reader.auth).json() == []
    assert "deleted" in toot(config, "lists", "delete", "Friends").lower()
    assert http.get("/api/v1/lists", headers=reader.auth).json() == []


def test_toot_posts_media(gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
                          tmp_path: Path) -> None:
    """``toot post --media FILE --description TEXT``: toot uploads each file (``/api/v2/media``) and posts them."""
    from PIL import Image

    author = make_user("tmed")
    config = tmp_path / "author"
    assert "Successfully logged in" in eventually(
        lambda: toot(config, "login_cli", "-i", gateway_url, "-e", author.email, "-p", author.password),
        timeout=60, interval=2)
    pictures = []
    for n, colour in enumerate(("navy", "gold")):
        pictures.append(tmp_path / f"picture{n}.jpg")
        Image.new("RGB", (320, 200), colour).save(pictures[-1])
    out = toot(config, "post", "two pictures", "-m", str(pictures[0]), "-d", "navy", "-m", str(pictures[1]), "-d",
               "gold")
    match = re.search(r"Toot posted: \S+/@" + author.username + r"/(\d+)", out)
    assert match, out
    status = http.get(f"/api/v1/statuses/{match.group(1)}").json()
    assert [(m["description"], m["meta"]["original"]["size"]) for m in status["media_attachments"]] == [
        ("navy", "320x200"), ("gold", "320x200")]


def test_toot_schedules_a_status(gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
                                 tmp_path: Path) -> None:
    """``toot post --scheduled-in`` gets a ScheduledStatus back and says when it will be posted; nothing is posted
    yet."""
    author = make_user("tsch")
    config = tmp_path / "author"
    assert "Successfully logged in" in eventually(
        lambda: toot(config, "login_cli", "-i", gateway_url, "-e", author.email, "-p", author.password),
        timeout=60, interval=2)
    out = toot(config, "post", "see you tomorrow", "--scheduled-in", "1 day")
    (kept,) = http.get("/api/v1/scheduled_statuses", headers=author.auth).json()
    assert kept["params"]["text"] == "see you tomorrow", kept
    assert f"Toot scheduled for: {kept['scheduled_at'][:10]}" in out, out
    assert http.get(f"/api/v1/accounts/{author.id}/statuses", headers=author.auth).json() == []


def test_toot_posts_a_poll(gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
                           tmp_path: Path) -> None:
    """``toot post --poll-option`` posts a status with a poll that ends when toot says, that others vote in."""
    author, voter = make_user("tpol"), make_user("tpov")
    config = tmp_path / "author"
    assert "Successfully logged in" in eventually(
        lambda: toot(config, "login_cli", "-i", gateway_url, "-e", author.email, "-p", author.password),
        timeout=60, interval=2)
    toot(config, "post", "tabs or spaces?", "--poll-option", "tabs", "--poll-option", "spaces",
         "--poll-expires-in", "2 hours", "--poll-multiple")
    (status,) = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=voter.auth).json()
    poll = status["poll"]
    assert ([o["title"] for o in poll["options"]], poll["multiple"]) == (["tabs", "spaces"], True)
    ends = datetime.fromisoformat(poll["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=119) < ends - datetime.now(UTC) <= timedelta(hours=2)
    voted = http.post(f"/api/v1/polls/{poll['id']}/votes", headers=voter.auth, json={"choices": [0, 1]})
    assert voted.status_code == 200 and voted.json()["votes_count"] == 2, voted.text


def test_toot_hashtags(gateway_url: str, http: httpx.Client, make_user: Callable[..., User], tmp_path: Path) -> None:
    """toot reads a hashtag's timeline (``timeline -t``, ``--local`` too) and the hashtag itself (``tags info``),
    follows it, lists it among those followed and unfollows it (``tags follow``, ``followed``, ``unfollow``), and
    features it (``tags feature``, ``featured``, ``unfeature``)."""
    author = make_user("tt")
    config = tmp_path / "author"

    def log_in() -> str:
        return toot(config, "login_cli", "-i", gateway_url, "-e", author.email, "-p", author.password)

    assert "Successfully logged in" in eventually(log_in, timeout=60, interval=2)
    tag = "toot" + uuid.uuid4().hex[:10]
    posted = [post(config, author, f"#{tag.upper()} number {n}") for n in range(3)]
    newest_first = list(reversed(posted))
    eventually(lambda: [s["id"] for s in http.get(f"/api/v1/timelines/tag/{tag}").json()] == newest_first)
    for local in ((), ("--local",)):
        listed = toot(config, "timeline", "-t", tag, *local, "--once", "-c", "20")
        assert IDS.findall(listed) == newest_first, listed
    info = toot(config, "tags", "info", tag)
    assert f"#{tag}" in info and "Not followed" in info, info

    # Followed, listed and unfollowed from toot (kicau/tag_follows.py).
    assert f"You are now following #{tag.upper()}" in toot(config, "tags", "follow", f"#{tag.upper()}")
    assert "Followed" in toot(config, "tags", "info", tag).replace("Not followed", "")
    assert f"#{tag}" in toot(config, "tags", "followed")
    assert f"You are no longer following #{tag}" in toot(config, "tags", "unfollow", tag)
    assert "not following any hashtags" in toot(config, "tags", "followed")

    # Featured on the profile, listed and unfeatured from toot (kicau/featured_tags.py).
    assert f"Tag #{tag} is now featured" in toot(config, "tags", "feature", tag)
    assert f"#{tag}" in toot(config, "tags", "featured")
    assert f"Tag #{tag} is no longer featured" in toot(config, "tags", "unfeature", f"#{tag}")
    assert "don't have any featured hashtags" in toot(config, "tags", "featured")


def test_toot_edits_as_its_tui_does(http: httpx.Client, make_user: Callable[..., User],
                                    app_credentials: dict[str, str], gateway_url: str) -> None:
    """toot's TUI edits through ``toot.api``: it reads the status's source, then sends the new text with the
    status's visibility, a spoiler and ``sensitive: false`` (and, in JSON, no media). Kicau keeps the visibility,
    which an edit cannot change."""
    author = make_user("tted")
    app = App("kicau", gateway_url, app_credentials["client_id"], app_credentials["client_secret"])
    user = TootUser("kicau", author.username, author.auth["Authorization"].removeprefix("Bearer "))
    posted = api.post_status(app, user, "from toot", visibility="unlisted").json()
    source = api.fetch_status_source(app, user, posted["id"]).json()
    assert (source["text"], source["spoiler_text"]) == ("from toot", "")
    edited = api.edit_status(app, user, posted["id"], source["text"] + ", edited", spoiler_text="cw",
                             visibility="public").json()
    assert (edited["content"], edited["spoiler_text"], edited["visibility"]) == ("<p>from toot, edited</p>", "cw",
                                                                                  "unlisted")
    assert edited["edited_at"] is not None
    assert http.get(f"/api/v1/statuses/{posted['id']}").json()["content"] == "<p>from toot, edited</p>"


def test_toot_logs_in_through_the_browser(gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
                                          tmp_path: Path) -> None:
    """``toot login``: it prints the sign-in page's address, the user approves there (the test plays the browser)
    and pastes the code shown (``urn:ietf:wg:oauth:2.0:oob``) at toot's prompt."""
    user = make_user("tb")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "COLUMNS": "100"}
    process = subprocess.Popen([TOOT, "login", "-i", gateway_url], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write("n\n")  # "Open link in default browser?": no
        process.stdin.flush()
        printed: list[str] = []
        for line in process.stdout:
            printed.append(line)
            if "/oauth/authorize" in line:
                break
        url = printed[-1].strip()
        assert url.startswith(f"{gateway_url}/oauth/authorize/?"), printed
        page = http.get(url, headers=HTML)
        assert page.status_code == 200, page.text
        fields = {**read_page(page.text).fields, "login": user.email, "password": user.password,
                  "decision": "approve"}
        shown = http.post("/oauth/authorize", data=fields, headers=HTML)
        code = read_page(shown.text).code
        assert shown.status_code == 200 and code, shown.text
        rest, _ = process.communicate(f"{code}\n", timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "Successfully logged in" in rest, "".join(printed) + rest
    assert user.username in toot(tmp_path, "whoami")
