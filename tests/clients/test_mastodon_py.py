"""The real Mastodon.py client drives Kicau end to end: register, log in, post, follow, page the home
timeline, read account statuses, delete, unfollow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mastodon import Mastodon, StreamListener
from mastodon.errors import MastodonAPIError, MastodonIllegalArgumentError, MastodonNotFoundError

from tests.conftest import eventually


@pytest.fixture(scope="module")
def app_keys(gateway_url: str) -> tuple[str, str]:
    client_id, client_secret = Mastodon.create_app("kicau-mastodon-py", api_base_url=gateway_url,
                                                   scopes=["read", "write", "follow", "push"])
    return client_id, client_secret


def register(gateway_url: str, app_keys: tuple[str, str], prefix: str) -> tuple[Mastodon, str, str]:
    username = f"{prefix}{uuid.uuid4().hex[:8]}"
    email = f"{username}@example.test"
    password = "mastodon-py-password"
    registrar = Mastodon(client_id=app_keys[0], client_secret=app_keys[1], api_base_url=gateway_url)
    registrar.create_account(username, password, email, agreement=True)
    # Log in again the way users do, with the e-mail address (as Mastodon and its clients send it).
    client = Mastodon(client_id=app_keys[0], client_secret=app_keys[1], api_base_url=gateway_url)
    client.log_in(email, password, scopes=["read", "write", "follow", "push"])
    return client, username, email


class Updates(StreamListener):
    """The ids of the statuses a stream brought, and of those it said were deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.updates: list[str] = []
        self.deleted: list[str] = []
        self.edited: list[tuple[str, str]] = []  # (id, content) of each status.update

    def on_update(self, status: Any) -> None:
        self.updates.append(str(status["id"]))

    def on_delete(self, status_id: Any) -> None:
        self.deleted.append(str(status_id))

    def on_status_update(self, status: Any) -> None:
        self.edited.append((str(status["id"]), status["content"]))


def warm_up(poster: Mastodon, listener: Updates, text: str) -> None:
    """Post ``text`` until the stream (registered asynchronously) delivers one of the posts."""
    warm: list[str] = []

    def delivered() -> bool:
        warm.append(str(poster.status_post(text)["id"]))
        return bool(set(warm) & set(listener.updates))

    eventually(delivered, timeout=30, interval=0.3)


def collect_home(client: Mastodon, limit: int) -> list[str]:
    ids: list[str] = []
    page = client.timeline_home(limit=limit)
    while page:
        ids.extend(str(s["id"]) for s in page)
        page = client.fetch_next(page)
    return ids


def test_full_client_journey(gateway_url: str, app_keys: tuple[str, str]) -> None:
    alice, alice_name, _ = register(gateway_url, app_keys, "alice")
    bob, _, _ = register(gateway_url, app_keys, "bob")
    me = alice.account_verify_credentials()
    assert me["username"] == alice_name
    assert bob.account_lookup(alice_name)["id"] == me["id"]

    relationship = bob.account_follow(me["id"])
    assert relationship["following"] is True
    eventually(lambda: alice.account(me["id"])["followers_count"] == 1)

    posted = [alice.status_post(f"status {n} from alice ✓")["id"] for n in range(45)]
    newest_first = [str(i) for i in reversed(posted)]

    # Home timeline paged through Link headers with fetch_next, 20 at a time: exactly alice's 45, in order.
    eventually(lambda: collect_home(bob, 20) == newest_first, timeout=20)
    # Alice sees her own statuses in her home timeline too.
    eventually(lambda: collect_home(alice, 40) == newest_first)

    account_page = alice.account_statuses(me["id"], limit=10)
    assert [str(s["id"]) for s in account_page] == newest_first[:10]
    second = alice.fetch_next(account_page)
    assert second is not None
    assert [str(s["id"]) for s in second] == newest_first[10:20]
    assert second[0]["account"]["username"] == alice_name
    assert second[0]["content"].startswith("<p>status ")

    # min_id pages walk forward from a cursor, as Mastodon.py's fetch_previous does.
    newer = bob.timeline_home(min_id=newest_first[5], limit=3)
    assert [str(s["id"]) for s in newer] == newest_first[2:5]

    # Delete: the author only; it disappears from every read.
    with pytest.raises(MastodonNotFoundError):
        bob.status_delete(posted[0])
    deleted = alice.status_delete(posted[0])
    assert str(deleted["id"]) == str(posted[0])
    with pytest.raises(MastodonNotFoundError):
        bob.status(posted[0])
    eventually(lambda: str(posted[0]) not in collect_home(bob, 40))
    assert str(posted[0]) not in [str(s["id"]) for s in alice.account_statuses(me["id"], limit=40)]

    # Unfollow removes the former followee's statuses from the home timeline.
    assert bob.account_unfollow(me["id"])["following"] is False
    eventually(lambda: collect_home(bob, 40) == [])
    eventually(lambda: alice.account(me["id"])["followers_count"] == 0)
    assert bob.account_verify_credentials()["following_count"] == 0


def test_repeated_follow_keeps_counts_exact(gateway_url: str, app_keys: tuple[str, str]) -> None:
    carol, _, _ = register(gateway_url, app_keys, "carol")
    dave, _, _ = register(gateway_url, app_keys, "dave")
    carol_id = carol.account_verify_credentials()["id"]
    for _ in range(3):
        dave.account_follow(carol_id)
    assert carol.account(carol_id)["followers_count"] == 1
    assert [a["id"] for a in carol.account_followers(carol_id)] == [dave.account_verify_credentials()["id"]]
    for _ in range(2):
        dave.account_unfollow(carol_id)
    assert carol.account(carol_id)["followers_count"] == 0


def test_wrong_password_is_refused(gateway_url: str, app_keys: tuple[str, str]) -> None:
    _, _, email = register(gateway_url, app_keys, "erin")
    client = Mastodon(client_id=app_keys[0], client_secret=app_keys[1], api_base_url=gateway_url)
    with pytest.raises(MastodonIllegalArgumentError, match="authorization grant is invalid"):
        client.log_in(email, "not the password")


def test_mentions_and_notifications(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py reads a status's mentions and pages, fetches, dismisses and clears notifications."""
    frank, frank_name, _ = register(gateway_url, app_keys, "frank")
    gina, _, _ = register(gateway_url, app_keys, "gina")
    frank_id, gina_id = frank.account_verify_credentials()["id"], gina.account_verify_credentials()["id"]
    frank.account_follow(gina_id)
    said = [gina.status_post(f"@{frank_name} number {n}") for n in range(3)]
    assert [m["acct"] for m in said[0]["mentions"]] == [frank_name]
    assert said[0]["mentions"][0]["id"] == frank_id

    eventually(lambda: len(frank.notifications(types=["mention"])) == 3)
    mentions = frank.notifications(types=["mention"], limit=2)
    assert [n["status"]["id"] for n in mentions] == [said[2]["id"], said[1]["id"]]
    rest = frank.fetch_next(mentions)
    assert rest is not None and [n["status"]["id"] for n in rest] == [said[0]["id"]]
    eventually(lambda: [n["type"] for n in gina.notifications()] == ["follow"])
    followed = gina.notifications()[0]
    assert followed["account"]["acct"] == frank_name and gina.notifications(id=followed["id"])["id"] == followed["id"]
    assert gina.notifications(exclude_types=["follow"]) == []

    frank.notifications_dismiss(mentions[0]["id"])
    assert [n["id"] for n in frank.notifications()] == [mentions[1]["id"], rest[0]["id"]]
    with pytest.raises(MastodonNotFoundError):
        frank.notifications(id=mentions[0]["id"])
    frank.notifications_clear()
    assert frank.notifications() == []


def test_notification_policy_and_requests(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py reads and changes the notification policy, and lists, reads, dismisses and accepts requests."""
    hana, hana_name, _ = register(gateway_url, app_keys, "hana")
    ivan, _, _ = register(gateway_url, app_keys, "ivan")
    jude, _, _ = register(gateway_url, app_keys, "jude")
    policy = hana.notifications_policy()
    assert (policy["for_private_mentions"], policy["for_not_following"]) == ("filter", "accept")
    assert policy["summary"]["pending_requests_count"] == 0
    from_ivan = ivan.status_post(f"@{hana_name} hello from a stranger", visibility="direct")
    from_jude = jude.status_post(f"@{hana_name} me too", visibility="direct")
    eventually(lambda: len(hana.notification_requests()) == 2)
    ivan_id, jude_id = ivan.account_verify_credentials()["id"], jude.account_verify_credentials()["id"]
    listed = hana.notification_requests()
    assert {(r["account"]["id"], r["last_status"]["id"]) for r in listed} == {
        (ivan_id, from_ivan["id"]), (jude_id, from_jude["id"])}
    assert hana.notification_request(ivan_id)["notifications_count"] == "1"
    assert hana.notifications() == []
    hana.dismiss_notification_request(jude_id)
    hana.accept_multiple_notification_requests([ivan_id])
    assert hana.notifications_merged() is True
    assert hana.notification_requests() == []
    assert [n["status"]["id"] for n in hana.notifications()] == [from_ivan["id"]]
    with pytest.raises(MastodonNotFoundError):
        hana.notification_request(jude_id)
    changed = hana.update_notifications_policy(for_new_accounts="drop")
    assert changed["for_new_accounts"] == "drop" and hana.notifications_policy()["for_new_accounts"] == "drop"


def test_report(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py's ``report`` (a form, to ``/api/v1/reports/``), with statuses, a comment and a category."""
    kai, _, _ = register(gateway_url, app_keys, "kai")
    lou, _, _ = register(gateway_url, app_keys, "lou")
    spam = lou.status_post("buy now")
    filed = kai.report(lou.account_verify_credentials()["id"], [spam["id"]], comment="spam", forward=True,
                       category="spam")
    assert (filed["category"], filed["comment"], filed["forwarded"], filed["action_taken"]) == (
        "spam", "spam", False, False)
    assert filed["status_ids"] == [str(spam["id"])] and filed["target_account"]["acct"] == lou.me()["acct"]


def test_media(gateway_url: str, app_keys: tuple[str, str], tmp_path: Any) -> None:
    """Mastodon.py uploads an image (``media_post``, a multipart form to ``/api/v2/media``), describes it again
    (``media_update``), posts it (``status_post`` with ``media_ids``) and reads it back with its files."""
    from PIL import Image

    mia, _, _ = register(gateway_url, app_keys, "mia")
    picture = tmp_path / "sunset.png"
    Image.new("RGB", (640, 360), "orange").save(picture)
    uploaded = mia.media_post(str(picture), description="An orange sky", focus=(0.25, -0.5))
    assert uploaded["type"] == "image" and uploaded["url"] and uploaded["blurhash"]
    assert uploaded["meta"]["original"]["width"] == 640
    assert mia.media_update(uploaded, description="An orange sky at dusk")["description"] == "An orange sky at dusk"
    status = mia.status_post("the evening", media_ids=[uploaded], sensitive=True)
    assert [m["id"] for m in status["media_attachments"]] == [uploaded["id"]]
    assert status["media_attachments"][0]["description"] == "An orange sky at dusk"
    assert mia.status(status["id"])["media_attachments"][0]["meta"]["focus"] == {"x": 0.25, "y": -0.5}
    instance = mia.instance()
    assert instance["configuration"]["statuses"]["max_media_attachments"] == 4
    assert "image/png" in instance["configuration"]["media_attachments"]["supported_mime_types"]


def test_profile_fields_and_pictures(gateway_url: str, app_keys: tuple[str, str], tmp_path: Any) -> None:
    """Mastodon.py's ``account_update_credentials`` with ``fields`` (``fields_attributes[N][name]`` in a form) and
    ``avatar`` (a file in a multipart form)."""
    from PIL import Image

    ned, _, _ = register(gateway_url, app_keys, "ned")
    face = tmp_path / "face.png"
    Image.new("RGB", (500, 300), "teal").save(face)
    pictured = ned.account_update_credentials(avatar=str(face))
    assert "/system/media/" in pictured["avatar"] and pictured["avatar_static"] == pictured["avatar"]
    changed = ned.account_update_credentials(fields=[("Site", "https://example.test"), ("Pronouns", "he/him")])
    assert [(f["name"], f["verified_at"]) for f in changed["fields"]] == [("Site", None), ("Pronouns", None)]
    assert [(f["name"], f["value"]) for f in ned.me()["source"]["fields"]] == [
        ("Site", "https://example.test"), ("Pronouns", "he/him")]


def test_a_thread(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py posts replies and reads a thread's context."""
    hana, _, _ = register(gateway_url, app_keys, "hana")
    ivan, _, _ = register(gateway_url, app_keys, "ivan")
    root = hana.status_post("what now?")
    answer = ivan.status_reply(root, "this")  # Mastodon.py mentions the author it replies to
    assert answer["in_reply_to_id"] == root["id"]
    assert answer["in_reply_to_account_id"] == root["account"]["id"]
    assert [m["id"] for m in answer["mentions"]] == [root["account"]["id"]]
    thanks = hana.status_reply(answer, "thanks")
    around = ivan.status_context(answer["id"])
    assert [s["id"] for s in around["ancestors"]] == [root["id"]]
    assert [s["id"] for s in around["descendants"]] == [thanks["id"]]
    assert [s["id"] for s in hana.status_context(root["id"])["descendants"]] == [answer["id"], thanks["id"]]
    # Each counts one reply: its own, not those below it (as Mastodon counts).
    assert (ivan.status(root["id"])["replies_count"], ivan.status(answer["id"])["replies_count"]) == (1, 1)
    # A profile without replies to others, as Mastodon's web profile asks for it; and no pinned statuses.
    hana_id = root["account"]["id"]
    assert [s["id"] for s in ivan.account_statuses(hana_id, exclude_replies=True)] == [root["id"]]
    assert [s["id"] for s in ivan.account_statuses(hana_id)] == [thanks["id"], root["id"]]
    assert ivan.account_statuses(hana_id, pinned=True) == []


def test_the_public_timeline_and_its_stream(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py reads the public (and local) timeline and listens to the public stream."""
    jan, _, _ = register(gateway_url, app_keys, "jan")
    kim, _, _ = register(gateway_url, app_keys, "kim")

    listener = Updates()
    handle = kim.stream_public(listener, run_async=True, local=True)
    try:
        warm_up(jan, listener, "warm-up")
        hidden = jan.status_post("unlisted", visibility="unlisted")
        shown = jan.status_post("for everyone")
        eventually(lambda: str(shown["id"]) in listener.updates)
        assert str(hidden["id"]) not in listener.updates
        jan.status_delete(shown["id"])
        eventually(lambda: str(shown["id"]) in listener.deleted)
    finally:
        handle.close()

    latest = jan.status_post("the newest")
    eventually(lambda: str(kim.timeline_public(limit=1)[0]["id"]) == str(latest["id"]))
    assert str(kim.timeline_local(limit=1)[0]["id"]) == str(latest["id"])
    everyone = [str(s["id"]) for s in kim.timeline_public(limit=40)]
    assert str(hidden["id"]) not in everyone and str(shown["id"]) not in everyone
    older = kim.fetch_next(kim.timeline_public(limit=2))
    assert older is not None and len(older) == 2


def test_hashtags(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py reads a status's tags and pages a hashtag timeline (``timeline_hashtag``, with its
    ``local`` and Link-header paging), and a profile's ``tagged``."""
    lea, _, _ = register(gateway_url, app_keys, "lea")
    tag = "py" + uuid.uuid4().hex[:10]
    posted = [lea.status_post(f"number {n} #{tag.upper()}") for n in range(3)]
    assert posted[0]["tags"][0]["name"] == tag
    lea.status_post(f"not public #{tag}", visibility="unlisted")
    newest = [str(s["id"]) for s in reversed(posted)]
    eventually(lambda: [str(s["id"]) for s in lea.timeline_hashtag(tag)] == newest)
    assert [str(s["id"]) for s in lea.timeline_hashtag(tag.upper(), local=True, limit=40)] == newest
    first = lea.timeline_hashtag(tag, limit=2)
    rest = lea.fetch_next(first)
    assert rest is not None and [str(s["id"]) for s in [*first, *rest]] == newest
    me = lea.account_verify_credentials()
    assert len(lea.account_statuses(me["id"], tagged=tag)) == 4  # her own unlisted one too


def test_hashtag_stream(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py listens to a hashtag's stream (``stream_hashtag``, local): the public statuses carrying it."""
    max_, _, _ = register(gateway_url, app_keys, "max")
    tag = "pys" + uuid.uuid4().hex[:10]

    listener = Updates()
    handle = max_.stream_hashtag(tag, listener, local=True, run_async=True)
    try:
        warm_up(max_, listener, f"warm-up #{tag}")
        untagged = max_.status_post("no hashtag here")
        tagged = max_.status_post(f"with #{tag.upper()}")
        eventually(lambda: str(tagged["id"]) in listener.updates)
        assert str(untagged["id"]) not in listener.updates
    finally:
        handle.close()


def test_followed_hashtags(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py follows a hashtag (``tag_follow``), lists those followed (``followed_tags``, paged), reads
    ``following`` (``tag``), finds a followed hashtag's statuses in its home timeline, and unfollows."""
    ria, _, _ = register(gateway_url, app_keys, "ria")
    sam, _, _ = register(gateway_url, app_keys, "sam")
    tags = ["pyf" + uuid.uuid4().hex[:10] for _ in range(3)]
    assert ria.timeline_home() == []  # her timeline exists before the post: the fanout writes into it
    for tag in tags:
        followed = ria.tag_follow(tag.upper())
        assert (followed["name"], followed["following"]) == (tag, True)
    assert [t["name"] for t in ria.followed_tags()] == list(reversed(tags))
    first = ria.followed_tags(limit=2)
    rest = ria.fetch_next(first)
    assert rest is not None and [t["name"] for t in [*first, *rest]] == list(reversed(tags))
    assert ria.tag(tags[0])["following"] is True

    shown = sam.status_post(f"for the followers of #{tags[0]}")
    eventually(lambda: [str(s["id"]) for s in ria.timeline_home()] == [str(shown["id"])] or None)
    assert sam.tag(tags[0])["following"] is False

    assert ria.tag_unfollow(tags[0])["following"] is False
    assert [t["name"] for t in ria.followed_tags()] == [tags[2], tags[1]]


def test_featured_hashtags(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py features hashtags (``featured_tag_create``), lists them with their counts (``featured_tags``,
    ``account_featured_tags``), reads the suggestions and unfeatures (``featured_tag_delete``)."""
    uma, _, _ = register(gateway_url, app_keys, "uma")
    used, other = "pyt" + uuid.uuid4().hex[:10], "pyt" + uuid.uuid4().hex[:10]
    uma.status_post(f"about #{used}")
    uma.status_post(f"about #{other}", visibility="unlisted")
    me = uma.account_verify_credentials()
    shown = uma.featured_tag_create(used)
    assert shown["name"] == used
    eventually(lambda: [(t["name"], int(t["statuses_count"])) for t in uma.featured_tags()] == [(used, 1)] or None)
    assert [t["name"] for t in uma.account_featured_tags(me["id"])] == [used]
    assert [t["name"] for t in uma.featured_tag_suggestions()] == [other]
    uma.featured_tag_delete(shown["id"])
    assert uma.featured_tags() == []


def test_follow_options(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py follows with options (``account_follow(reblogs=False, notify=True)``): the Relationship shows
    them, the followee's new status notifies (``notifications(types=["status"])``) and its reblogs stay out of the
    home timeline."""
    yan, _, _ = register(gateway_url, app_keys, "yan")
    zoe, _, _ = register(gateway_url, app_keys, "zoe")
    zoe_id = zoe.account_verify_credentials()["id"]
    followed = yan.account_follow(zoe_id, reblogs=False, notify=True)
    assert (followed["following"], followed["showing_reblogs"], followed["notifying"]) == (True, False, True)
    said = str(zoe.status_post("tell my subscribers")["id"])
    zoe.status_reblog(yan.status_post("yan's own")["id"])
    last = str(zoe.status_post("after the reblog")["id"])  # zoe's statuses are fanned out in order
    eventually(lambda: last in collect_home(yan, 20) or None)
    assert not any(s["reblog"] for s in yan.timeline_home(limit=20))
    eventually(lambda: [str(n["status"]["id"]) for n in yan.notifications(types=["status"])] == [last, said]
               or None)
    # Mastodon.py sends the defaults when none are named: following again restores them.
    again = yan.account_follow(zoe_id)
    assert (again["showing_reblogs"], again["notifying"]) == (True, False)


def test_blocks_and_mutes(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py blocks and mutes (``account_block``, ``account_mute`` with its options), reads them back
    (``account_relationships``, ``blocks``, ``mutes``), reads what a block hides, and undoes them
    (``account_unblock``, ``account_unmute``)."""
    vic, _, _ = register(gateway_url, app_keys, "vic")
    wes, _, _ = register(gateway_url, app_keys, "wes")
    xan, _, _ = register(gateway_url, app_keys, "xan")
    wes_id, xan_id = wes.account_verify_credentials()["id"], xan.account_verify_credentials()["id"]
    vic.account_follow(wes_id)
    said = str(wes.status_post("before the mute")["id"])
    eventually(lambda: said in collect_home(vic, 20) or None)

    muted = vic.account_mute(wes_id, notifications=False, duration=3600)
    assert (muted["muting"], muted["muting_notifications"], muted["following"]) == (True, False, True)
    eventually(lambda: said not in collect_home(vic, 20) or None)
    assert [(str(a["id"]), a["mute_expires_at"] is not None) for a in vic.mutes()] == [(str(wes_id), True)]
    vic_id, own = vic.account_verify_credentials()["id"], vic.status_post("vic's own")["id"]
    assert xan.status(own)["id"] == own
    blocked = vic.account_block(xan_id)
    assert blocked["blocking"] is True
    assert xan.account_relationships(vic_id)[0]["blocked_by"] is True
    assert [str(a["id"]) for a in vic.blocks()] == [str(xan_id)]
    # A blocker's statuses are not the blocked account's to see (``status``, ``account_statuses``).
    with pytest.raises(MastodonNotFoundError):
        xan.status(own)
    assert xan.account_statuses(vic_id) == []

    assert vic.account_unmute(wes_id)["muting"] is False
    eventually(lambda: said in collect_home(vic, 20) or None)
    assert vic.account_unblock(xan_id)["blocking"] is False
    assert vic.mutes() == [] and vic.blocks() == []
    assert xan.status(own)["id"] == own


def test_lists(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py lists (``list_create``, ``list_update``, ``list_accounts_add``, ``list_accounts``,
    ``account_lists``, ``timeline_list``, ``stream_list``, ``list_accounts_delete``, ``list_delete``)."""
    amy, _, _ = register(gateway_url, app_keys, "amy")
    ben, _, _ = register(gateway_url, app_keys, "ben")
    cat, _, _ = register(gateway_url, app_keys, "cat")
    ben_id, cat_id = ben.account_verify_credentials()["id"], cat.account_verify_credentials()["id"]
    amy.account_follow(ben_id)
    amy.account_follow(cat_id)
    made = amy.list_create("Friends", replies_policy="followed", exclusive=True)
    assert (made["title"], made["replies_policy"], made["exclusive"]) == ("Friends", "followed", True)
    changed = amy.list_update(made["id"], "Close friends")  # Mastodon.py sends the other settings' defaults too
    assert (changed["title"], changed["replies_policy"], changed["exclusive"]) == ("Close friends", "list", False)
    assert [str(found["id"]) for found in amy.lists()] == [str(made["id"])]
    amy.list_accounts_add(made["id"], [ben_id])
    assert [str(a["id"]) for a in amy.list_accounts(made["id"])] == [str(ben_id)]
    assert [str(found["id"]) for found in amy.account_lists(ben_id)] == [str(made["id"])]
    with pytest.raises(MastodonNotFoundError):
        amy.list_accounts_add(made["id"], [amy.account_verify_credentials()["id"]])  # not followed

    assert amy.timeline_list(made["id"]) == []  # read once: from here the fanout writes it
    listener = Updates()
    handle = amy.stream_list(made["id"], listener, run_async=True)
    try:
        warm_up(ben, listener, "warm-up")
        said = str(ben.status_post("for the list")["id"])
        cat.status_post("not for the list")
        eventually(lambda: said in listener.updates or None)
        eventually(lambda: [str(s["id"]) for s in amy.timeline_list(made["id"], limit=1)] == [said] or None)
        assert all(str(s["account"]["id"]) == str(ben_id) for s in amy.timeline_list(made["id"], limit=40))
    finally:
        handle.close()
    amy.list_accounts_delete(made["id"], [ben_id])
    assert amy.list_accounts(made["id"]) == []
    amy.list_delete(made["id"])
    assert amy.lists() == []


def test_edits(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py edits (``status_update``, ``status_history``, ``status_source``, ``on_status_update``)."""
    amy, _, _ = register(gateway_url, app_keys, "amy")
    ben, _, _ = register(gateway_url, app_keys, "ben")
    ben.account_follow(amy.account_verify_credentials()["id"])
    listener = Updates()
    handle = ben.stream_user(listener, run_async=True)
    try:
        warm_up(amy, listener, "warm-up")
        posted = amy.status_post("first draft", spoiler_text="draft")
        changed = amy.status_update(posted["id"], "second draft", sensitive=True)
        assert (changed["content"], changed["spoiler_text"], changed["sensitive"]) == ("<p>second draft</p>", "",
                                                                                       True)
        assert changed["edited_at"] is not None and changed["edited_at"] >= changed["created_at"]
        eventually(lambda: (str(posted["id"]), "<p>second draft</p>") in listener.edited or None)
    finally:
        handle.close()
    versions = ben.status_history(posted["id"])
    assert [(v["content"], v["spoiler_text"]) for v in versions] == [("<p>first draft</p>", "draft"),
                                                                      ("<p>second draft</p>", "")]
    assert amy.status_source(posted["id"])["text"] == "second draft"
    assert ben.status(posted["id"])["content"] == "<p>second draft</p>"
    with pytest.raises(MastodonNotFoundError):
        ben.status_update(posted["id"], "not mine")


class Conversations(StreamListener):
    """The last status of each ``conversation`` event a direct stream brought."""

    def __init__(self) -> None:
        super().__init__()
        self.last: list[str] = []

    def on_conversation(self, conversation: Any) -> None:
        self.last.append(str(conversation["last_status"]["id"]))


def test_conversations(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py direct conversations (``conversations``, ``conversations_read``, ``stream_direct`` with
    ``on_conversation``, paging with ``fetch_next``)."""
    amy, _, _ = register(gateway_url, app_keys, "dma")
    ben, ben_name, _ = register(gateway_url, app_keys, "dmb")
    # Ben takes private mentions from anyone (Mastodon's default holds back those from accounts one does not follow).
    assert ben.update_notifications_policy(for_private_mentions="accept")["for_private_mentions"] == "accept"
    listener = Conversations()
    handle = ben.stream_direct(listener, run_async=True)
    try:
        warm: list[str] = []

        def delivered() -> bool:
            warm.append(str(amy.status_post(f"@{ben_name} warm-up", visibility="direct")["id"]))
            return bool(set(warm) & set(listener.last))

        eventually(delivered, timeout=30, interval=0.3)
        posted = amy.status_post(f"@{ben_name} just us", visibility="direct")
        eventually(lambda: str(posted["id"]) in listener.last or None)
    finally:
        handle.close()
    eventually(lambda: ben.conversations(limit=1)[0]["last_status"]["id"] == posted["id"])
    newest = ben.conversations(limit=1)
    assert newest[0]["unread"] is True
    assert newest[0]["accounts"][0]["id"] == amy.account_verify_credentials()["id"]
    read = ben.conversations_read(newest[0]["id"])
    assert read["unread"] is False and read["id"] == newest[0]["id"]
    # The next page, by the Link header's cursor: the warm-up's conversations, older first to come.
    after = ben.fetch_next(newest)
    assert after and str(after[0]["last_status"]["id"]) == warm[-1]


def test_filters(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py filters (``create_filter_v2``, ``filters_v2``, ``update_filter_v2``, ``add_filter_keyword_v2``,
    ``add_filter_status_v2``, ``filters``, ``delete_filter_v2``) and a home timeline they apply to."""
    amy, _, _ = register(gateway_url, app_keys, "fla")
    ben, _, _ = register(gateway_url, app_keys, "flb")
    amy.account_follow(ben.account_verify_credentials()["id"])
    made = amy.create_filter_v2("Spoilers", ["home"], "warn", keywords_attributes=[{"keyword": "finale"}])
    assert [k["keyword"] for k in made["keywords"]] == ["finale"]
    amy.add_filter_keyword_v2(made["id"], "twist", whole_word=False)
    hidden = amy.create_filter_v2("Hidden", ["home"], "hide", keywords_attributes=[{"keyword": "taxes"}])
    warned = ben.status_post("what a finale")
    ben.status_post("about my taxes")
    plain = ben.status_post("plain")
    amy.add_filter_status_v2(made["id"], plain["id"])
    eventually(lambda: any(s["id"] == plain["id"] for s in amy.timeline_home()) or None)
    shown = {s["id"]: s for s in amy.timeline_home()}
    assert [r["keyword_matches"] for r in shown[warned["id"]]["filtered"]] == [["finale"]]
    assert [r["status_matches"] for r in shown[plain["id"]]["filtered"]] == [[str(plain["id"])]]
    assert len(shown) == 2  # the hidden one left out
    assert sorted(f["title"] for f in amy.filters_v2()) == ["Hidden", "Spoilers"]
    assert sorted(f["phrase"] for f in amy.filters()) == ["finale", "taxes", "twist"]
    changed = amy.update_filter_v2(made["id"], title="Plot")
    assert changed["title"] == "Plot" and len(changed["keywords"]) == 2
    amy.delete_filter_v2(hidden["id"])
    eventually(lambda: len(amy.timeline_home()) == 3 or None)
    # v1: a filter of one phrase (``filter_create``, ``filter_update``, ``filter_delete``).
    phrase = amy.filter_create("plain", ["home"], irreversible=True)  # a list, as its check reads it
    assert (phrase["phrase"], phrase["irreversible"]) == ("plain", True)
    eventually(lambda: len(amy.timeline_home()) == 2 or None)
    assert amy.filter_update(phrase["id"], phrase="nothing")["phrase"] == "nothing"
    amy.filter_delete(phrase["id"])
    assert sorted(f["title"] for f in amy.filters_v2()) == ["Plot"]


def test_account_search(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py ``account_search`` (``@`` completion): accounts by the start of their username, or of the words
    of their display name."""
    amy, amy_name, _ = register(gateway_url, app_keys, "srch")
    ben, _, _ = register(gateway_url, app_keys, "srch")
    assert [a["username"] for a in amy.account_search(amy_name[:-2])] == [amy_name]
    assert [a["username"] for a in ben.account_search(f"@{amy_name[:-1]}")] == [amy_name]
    ben.account_follow(amy.account_verify_credentials()["id"])
    # Among every account named "srch..." (each run of this test adds two), the one ben follows.
    assert [a["username"] for a in ben.account_search("srch", following=True)] == [amy_name]
    word = "w" + uuid.uuid4().hex[:9]
    amy.account_update_credentials(display_name=f"Amy {word}")
    assert [a["username"] for a in ben.account_search(f"amy {word[:6]}")] == [amy_name]


def test_favourites(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py favourites and gives back, lists its favourites and who favourites a status; the author reads
    the notification."""
    lena, _, _ = register(gateway_url, app_keys, "lena")
    mo, mo_name, _ = register(gateway_url, app_keys, "mo")
    first, second = lena.status_post("first"), lena.status_post("second")
    liked = mo.status_favourite(first["id"])
    assert liked["favourited"] is True and liked["favourites_count"] == 1
    mo.status_favourite(second["id"])
    assert [s["id"] for s in mo.favourites()] == [second["id"], first["id"]]
    older = mo.fetch_next(mo.favourites(limit=1))
    assert older is not None and [s["id"] for s in older] == [first["id"]]
    assert [a["acct"] for a in lena.status_favourited_by(first["id"])] == [mo_name]
    assert lena.status(first["id"])["favourites_count"] == 1
    eventually(lambda: len(lena.notifications(types=["favourite"])) == 2)
    assert lena.notifications(types=["favourite"])[0]["status"]["id"] == second["id"]
    given_back = mo.status_unfavourite(first["id"])
    assert given_back["favourited"] is False and given_back["favourites_count"] == 0
    assert [s["id"] for s in mo.favourites()] == [second["id"]]
    eventually(lambda: [n["status"]["id"] for n in lena.notifications(types=["favourite"])] == [second["id"]])


def test_reblogs(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py reblogs, reads who reblogged, and gives the reblog back; the author reads the notification."""
    pia, _, _ = register(gateway_url, app_keys, "pia")
    quin, quin_name, _ = register(gateway_url, app_keys, "quin")
    status = pia.status_post("boost me")
    shared = quin.status_reblog(status["id"])
    assert shared["reblog"]["id"] == status["id"] and shared["reblog"]["reblogged"] is True
    assert pia.status(status["id"])["reblogs_count"] == 1
    assert [a["acct"] for a in pia.status_reblogged_by(status["id"])] == [quin_name]
    eventually(lambda: [n["status"]["id"] for n in pia.notifications(types=["reblog"])] == [status["id"]])
    assert [s["id"] for s in quin.account_statuses(shared["account"]["id"])] == [shared["id"]]
    given_back = quin.status_unreblog(status["id"])
    assert given_back["reblogged"] is False and given_back["reblogs_count"] == 0
    eventually(lambda: pia.notifications(types=["reblog"]) == [])

def test_bookmarks(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py bookmarks, lists its bookmarks a page at a time, and gives one back."""
    nia, _, _ = register(gateway_url, app_keys, "nia")
    olu, _, _ = register(gateway_url, app_keys, "olu")
    first, second = nia.status_post("first"), nia.status_post("second")
    kept = olu.status_bookmark(first["id"])
    assert kept["bookmarked"] is True and kept["favourited"] is False
    olu.status_bookmark(second["id"])
    assert [s["id"] for s in olu.bookmarks()] == [second["id"], first["id"]]
    older = olu.fetch_next(olu.bookmarks(limit=1))
    assert older is not None and [s["id"] for s in older] == [first["id"]]
    assert nia.status(first["id"])["bookmarked"] is False  # the author does not see olu's bookmark
    assert olu.status_unbookmark(first["id"])["bookmarked"] is False
    assert [s["id"] for s in olu.bookmarks()] == [second["id"]]


def test_pins(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py pins its own status, reads the profile's pinned statuses (as another user too), and unpins;
    pinning someone else's is Mastodon's error."""
    ria, _, _ = register(gateway_url, app_keys, "ria")
    sol, _, _ = register(gateway_url, app_keys, "sol")
    status, other = ria.status_post("pin this"), ria.status_post("not this")
    shown = ria.status_pin(status["id"])
    assert shown["pinned"] is True
    account = ria.me()["id"]
    assert [s["id"] for s in ria.account_statuses(account, pinned=True)] == [status["id"]]
    assert [s["id"] for s in sol.account_statuses(account, pinned=True)] == [status["id"]]
    assert [s["pinned"] for s in ria.account_statuses(account)] == [False, True]
    assert ria.instance()["configuration"]["accounts"]["max_pinned_statuses"] == 5
    with pytest.raises(MastodonAPIError, match="Someone else's post cannot be pinned"):
        sol.status_pin(other["id"])
    assert ria.status_unpin(status["id"])["pinned"] is False
    assert ria.account_statuses(account, pinned=True) == []


def test_app_verify_credentials(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py checks its app's credentials with a user's token."""
    wes, _, _ = register(gateway_url, app_keys, "wes")
    shown = wes.app_verify_credentials()
    assert (shown["name"], shown["scopes"]) == ("kicau-mastodon-py", ["follow", "push", "read", "write"])
    assert "client_secret" not in shown


def test_many_at_once(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py fetches several statuses and several accounts in one request each."""
    xia, _, _ = register(gateway_url, app_keys, "xia")
    yan, _, _ = register(gateway_url, app_keys, "yan")
    first, second = xia.status_post("one"), xia.status_post("two")
    assert [s["id"] for s in yan.statuses([second["id"], first["id"]])] == [second["id"], first["id"]]
    people = [xia.me()["id"], yan.me()["id"]]
    assert [a["id"] for a in yan.accounts(people)] == people


def test_polls(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py posts a poll, votes in it, and reads it back with its own votes; a second vote is Mastodon's
    error."""
    zoe, _, _ = register(gateway_url, app_keys, "zoe")
    ada, _, _ = register(gateway_url, app_keys, "ada")
    asked = zoe.status_post("lunch?", poll=zoe.make_poll(["soup", "salad", "both"], expires_in=600, multiple=True))
    assert [o["title"] for o in asked["poll"]["options"]] == ["soup", "salad", "both"]
    voted = ada.poll_vote(asked["poll"]["id"], [0, 2])
    assert (voted["votes_count"], voted["voters_count"], voted["own_votes"]) == (2, 1, [0, 2])
    assert [o["votes_count"] for o in zoe.poll(asked["poll"]["id"])["options"]] == [1, 0, 1]
    with pytest.raises(MastodonAPIError, match="already voted"):
        ada.poll_vote(asked["poll"]["id"], 1)
    assert zoe.instance()["configuration"]["polls"]["max_options"] == 4


def test_muted_threads(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py mutes a conversation: its statuses read ``muted``, a reply in it notifies no one, a mention
    elsewhere still does; unmuted, it reads so."""
    uma, _, _ = register(gateway_url, app_keys, "uma")
    vic, _, _ = register(gateway_url, app_keys, "vic")
    root = uma.status_post("quiet please")
    assert uma.status_mute(root["id"])["muted"] is True
    answer = vic.status_reply(root, "noise")  # mentions uma, in the muted thread
    assert uma.status(answer["id"])["muted"] is True and vic.status(answer["id"])["muted"] is False
    uma_name = uma.me()["acct"]
    elsewhere = vic.status_post(f"@{uma_name} over here")
    eventually(lambda: [n["status"]["id"] for n in uma.notifications(types=["mention"])] == [elsewhere["id"]])
    assert uma.status_unmute(answer["id"])["muted"] is False
    assert uma.status(root["id"])["muted"] is False


def test_markers(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py saves where it stopped reading, and a second client of the same account reads it back."""
    tia, _, email = register(gateway_url, app_keys, "tia")
    status = tia.status_post("read up to here")
    saved = tia.markers_set(["home"], [status["id"]])
    assert saved["home"]["last_read_id"] == status["id"] and saved["home"]["version"] == 1
    second = Mastodon(client_id=app_keys[0], client_secret=app_keys[1], api_base_url=gateway_url)
    second.log_in(email, "mastodon-py-password", scopes=["read", "write"])
    found = second.markers_get(["home", "notifications"])
    assert set(found) == {"home"} and found["home"]["last_read_id"] == status["id"]


def test_profile_update(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py changes the display name, note and bot flag; another user reads the profile as changed."""
    uma, _, _ = register(gateway_url, app_keys, "uma")
    vic, _, _ = register(gateway_url, app_keys, "vic")
    changed = uma.account_update_credentials(display_name="Uma U.", note="hello there", bot=True)
    assert (changed["display_name"], changed["bot"], changed["source"]["note"]) == ("Uma U.", True, "hello there")
    seen = vic.account(changed["id"])
    assert (seen["display_name"], seen["note"], seen["bot"]) == ("Uma U.", "<p>hello there</p>", True)
    with pytest.raises(MastodonAPIError, match="Display name is too long"):
        uma.account_update_credentials(display_name="u" * 31)


def test_scheduled_statuses(gateway_url: str, app_keys: tuple[str, str]) -> None:
    """Mastodon.py schedules a status (and gets its ScheduledStatus back, parsed), lists, reads, moves and drops
    scheduled statuses; a time too soon is Mastodon's error."""
    pia, _, _ = register(gateway_url, app_keys, "pia")
    when = datetime.now(UTC) + timedelta(hours=1)
    kept = pia.status_post("see you in an hour", scheduled_at=when, visibility="unlisted")
    assert kept["params"]["text"] == "see you in an hour" and kept["params"]["visibility"] == "unlisted"
    assert abs((kept["scheduled_at"] - when).total_seconds()) < 1  # parsed as a datetime
    assert [s["id"] for s in pia.scheduled_statuses()] == [kept["id"]]
    assert pia.scheduled_status(kept["id"])["params"]["text"] == "see you in an hour"
    moved = pia.scheduled_status_update(kept["id"], when + timedelta(hours=1))
    assert abs((moved["scheduled_at"] - when - timedelta(hours=1)).total_seconds()) < 1
    with pytest.raises(MastodonAPIError):
        pia.status_post("too soon", scheduled_at=datetime.now(UTC) + timedelta(minutes=1))
    pia.scheduled_status_delete(kept["id"])
    assert pia.scheduled_statuses() == []
    assert pia.account_statuses(pia.me()["id"]) == []
