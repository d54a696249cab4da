"""Preview cards from a page's head and its oEmbed document (kicau/link_previews.py), pure: what a card says, and
that a player's HTML from another site reaches readers as one frame with a player's attributes and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from kicau.link_previews import card, embed_html, oembed_of, oembed_picture, with_oembed, with_picture

PAGE = "https://video.example/watch?v=1"
HEAD = """<html lang="en"><head><title>A bird sings</title>
<meta property="og:description" content="Two minutes of song.">
<link rel="alternate" type="application/json+oembed" href="/oembed?url=watch%3Fv%3D1&amp;format=json">
<link rel="alternate" type="text/xml+oembed" href="/oembed?format=xml">
</head><body><link rel="alternate" type="application/json+oembed" href="/not-in-the-head"></body></html>"""
OEMBED = "https://video.example/oembed?url=watch%3Fv%3D1&format=json"
PLAYER = {"type": "video", "version": "1.0", "title": "A bird sings (official)", "author_name": "Ana",
          "author_url": "https://video.example/@ana", "provider_name": "Video Example",
          "provider_url": "https://video.example/", "width": 560, "height": "315",
          "thumbnail_url": "/thumbs/1.jpg",
          "html": '<iframe width="560" height="315" src="https://video.example/embed/1" frameborder="0" '
                  'allow="autoplay; encrypted-media" allowfullscreen onload="steal()" style="position:fixed">'
                  '</iframe><script>steal()</script>'}


def test_the_page_names_its_json_oembed_document_in_its_head() -> None:
    assert oembed_of(PAGE, HEAD) == OEMBED
    assert oembed_of(PAGE, "<head><title>t</title></head>") is None
    assert oembed_of(PAGE, '<head><link rel="alternate" type="application/json+oembed" href="javascript:x()">'
                           "</head>") is None


def test_a_video_card_carries_the_player_frame_alone() -> None:
    made = with_oembed(card(PAGE, HEAD), PAGE, PLAYER, OEMBED)
    assert made is not None
    assert made["html"] == ('<iframe src="https://video.example/embed/1" width="560" height="315" frameborder="0" '
                            'allowfullscreen allow="autoplay; encrypted-media"></iframe>')
    assert (made["type"], made["title"], made["description"], made["width"], made["height"]) == (
        "video", "A bird sings (official)", "Two minutes of song.", 560, 315)
    assert (made["author_name"], made["author_url"], made["provider_name"], made["provider_url"]) == (
        "Ana", "https://video.example/@ana", "Video Example", "https://video.example/")
    assert made["authors"] == [{"name": "Ana", "url": "https://video.example/@ana", "account": None}]
    assert (made["url"], made["language"], made["embed_url"]) == (PAGE, "en", "")
    assert oembed_picture(PLAYER, OEMBED) == "https://video.example/thumbs/1.jpg"
    # The kept thumbnail does not change the player's size.
    shown = with_picture(made, "https://kicau.example/system/media/9/small.jpg", 480, 270, "LKO2?U%2Tw=w", "")
    assert (shown["width"], shown["height"], shown["image"]) == (
        560, 315, "https://kicau.example/system/media/9/small.jpg")


@pytest.mark.parametrize("html", [
    "<div>no frame</div>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe src="data:text/html,hi"></iframe>',
    '<iframe srcdoc="<script>x()</script>"></iframe>',
    "",
])
def test_a_player_without_a_web_frame_makes_a_link_card(html: str) -> None:
    assert embed_html(html) == ""
    made = with_oembed(card(PAGE, HEAD), PAGE, {**PLAYER, "html": html}, OEMBED)
    assert made is not None and (made["type"], made["html"]) == ("link", "")


def test_frame_attributes_are_escaped_and_sizes_checked() -> None:
    frame = embed_html('<iframe src="https://v.example/e?a=1&amp;b=&quot;2&quot;" width="100%" height="99999" '
                       'title="a &lt;b&gt; &quot;c&quot;"></iframe>')
    assert frame == '<iframe src="https://v.example/e?a=1&amp;b=&quot;2&quot;" title="a &lt;b&gt; &quot;c&quot;">' \
                    "</iframe>"


def test_photo_and_link_documents() -> None:
    photo: dict[str, Any] = {"type": "photo", "title": "Dawn", "url": "/photos/dawn.jpg", "width": 1200,
                             "height": 800}
    made = with_oembed(None, PAGE, photo, OEMBED)  # the page itself had no title
    assert made is not None
    assert (made["type"], made["title"], made["embed_url"], made["html"], made["provider_name"]) == (
        "photo", "Dawn", "https://video.example/photos/dawn.jpg", "", "video.example")
    assert oembed_picture(photo, OEMBED) == "https://video.example/photos/dawn.jpg"
    # No title anywhere: no card; a document of no known type, or no document at all: the page's own card.
    assert with_oembed(None, PAGE, {"type": "link"}, OEMBED) is None
    page_card = card(PAGE, HEAD)
    assert with_oembed(page_card, PAGE, {"type": "game", "title": "x"}, OEMBED) == page_card
    assert with_oembed(page_card, PAGE, ["not", "an", "object"], OEMBED) == page_card
    assert with_oembed(page_card, PAGE, None, OEMBED) == page_card
    # Sizes that are not sizes read as none.
    odd = with_oembed(page_card, PAGE, {**PLAYER, "width": True, "height": "-3"}, OEMBED)
    assert odd is not None and (odd["width"], odd["height"]) == (0, 0)


@pytest.mark.parametrize(("given", "published"), [
    ("2026-11-30T08:15:00+07:00", "2026-11-30T01:15:00.000Z"),
    ("2026-11-30T01:02:03.456789Z", "2026-11-30T01:02:03.456Z"),
    ("2026-11-30", "2026-11-30T00:00:00.000Z"),
    ("yesterday", None),
    ("0001-01-01", None),
    ("", None),
])
def test_when_the_page_was_published(given: str, published: str | None) -> None:
    page = f'<head><title>News</title><meta property="article:published_time" content="{given}"></head>'
    made = card(PAGE, page)
    assert made is not None and made["published_at"] == published
