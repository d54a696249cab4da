"""Media attachments: what the services agree on about an image attached to a status.

An account uploads an image (``POST /api/v2/media``), gets a MediaAttachment back, and names its id in a new status's
``media_ids[]`` (four at most). The post service owns them (services/post/media.py): it decodes the image, keeps a
re-encoded original (its metadata, a phone's GPS position among it, left behind) and a small preview, both in
Cassandra, and the attachment's description, focus point and sizes in a row of its own. A status keeps its
attachments as they were when it was posted (``statuses.media``, JSON, ``StoredMedia``), and every rendering of the
status shows them from there, so a timeline read never looks an attachment up.

What is here: the limits (the instance's ``configuration.media_attachments`` says them), the stored form and its
rendering as Mastodon's MediaAttachment, the focus point's parsing and the files' public paths.

Only images: JPEG, PNG, WebP and GIF (a GIF kept as it is, animation and all, and shown as ``image``; Mastodon turns
an animated one into a ``gifv`` video). Video and audio are refused with a 422, as a file Mastodon cannot read is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from kicau.web import ApiError

MAX_PER_STATUS: Final = 4
MAX_DESCRIPTION: Final = 1500  # characters, Mastodon's
MAX_IMAGE_BYTES: Final = 16 * 1024 * 1024  # Mastodon's image_size_limit
MAX_IMAGE_PIXELS: Final = 8_294_400  # 3840 x 2160: a larger original is scaled down to it, as Mastodon does
SMALL_PIXELS: Final = 230_400  # the preview's area (480 x 480), Mastodon's "small" style
# Content types taken, and the extension each is served under.
IMAGE_TYPES: Final = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}
# Profile pictures (an account's avatar and header): cropped to fill these sizes, as Mastodon's are.
PROFILE_PICTURES: Final = {"avatar": (400, 400), "header": (1500, 500)}
MAX_PROFILE_PICTURE_BYTES: Final = 8 * 1024 * 1024
# What a profile picture's ``media_attachments.status_id`` holds: no status may take it, and it is not deleted.
# A linked page's picture (a preview card's copy, services/post/link_previews.py) is held so too.
PROFILE_HOLDER: Final = 0
# The account a linked page's picture is kept under: none (no account has id 0), so no one may attach or change it.
NO_ACCOUNT: Final = 0
_PICTURE_PATH = re.compile(r"/system/media/[0-9]{1,19}/original\.(?:jpg|png|webp)")


def is_picture_path(value: str) -> bool:
    """Whether ``value`` is the path of a profile picture's file, as the post service answers it."""
    return bool(_PICTURE_PATH.fullmatch(value))


def picture_id(path: str) -> int:
    """The attachment id in a profile picture's path (one ``is_picture_path`` accepts)."""
    return int(path.split("/")[3])


ORIGINAL: Final = "original"
SMALL: Final = "small"
VARIANTS: Final = (ORIGINAL, SMALL)
PATH_PREFIX: Final = "/system/media"
CONFIGURATION: Final = {
    "supported_mime_types": list(IMAGE_TYPES),
    "image_size_limit": MAX_IMAGE_BYTES,
    "image_matrix_limit": MAX_IMAGE_PIXELS,
    "video_size_limit": 0,
    "video_frame_rate_limit": 0,
    "video_matrix_limit": 0,
    "description_limit": MAX_DESCRIPTION,
}


class Size(msgspec.Struct, frozen=True):
    width: int
    height: int

    def meta(self, *, size_in_bytes: int | None = None) -> dict[str, Any]:
        block: dict[str, Any] = {"width": self.width, "height": self.height,
                                 "size": f"{self.width}x{self.height}",
                                 "aspect": round(self.width / self.height, 4) if self.height else 1.0}
        if size_in_bytes is not None:
            block["file_size"] = size_in_bytes
        return block


class StoredMedia(msgspec.Struct, frozen=True):
    """One attachment as a status keeps it, and as the post service's ``media_attachments`` row describes it."""

    id: int
    extension: str  # of both files: the original's format (a preview of a GIF is a PNG, see small_extension)
    original: Size
    small: Size
    file_size: int
    blurhash: str
    description: str = ""
    focus_x: float = 0.0
    focus_y: float = 0.0

    @property
    def small_extension(self) -> str:
        return "png" if self.extension == "gif" else self.extension


_ENCODE = msgspec.json.Encoder()
_DECODE_LIST = msgspec.json.Decoder(list[StoredMedia])


def stored(media: Iterable[StoredMedia]) -> str | None:
    """The ``statuses.media`` column's value; None (the column left unset) for a status with none."""
    listed = list(media)
    return _ENCODE.encode(listed).decode() if listed else None


def read(column: str | None) -> list[StoredMedia]:
    return _DECODE_LIST.decode(column) if column else []


def file_path(media_id: int, variant: str, extension: str) -> str:
    return f"{PATH_PREFIX}/{media_id}/{variant}.{extension}"


def entity(media: StoredMedia, public_url: str) -> dict[str, Any]:
    """A MediaAttachment, processed (Kicau decodes an image before it answers, so ``url`` is never null)."""
    return {
        "id": str(media.id),
        "type": "image",
        "url": public_url + file_path(media.id, ORIGINAL, media.extension),
        "preview_url": public_url + file_path(media.id, SMALL, media.small_extension),
        "remote_url": None,
        "preview_remote_url": None,
        "text_url": None,
        "meta": {
            "original": media.original.meta(size_in_bytes=media.file_size),
            "small": media.small.meta(),
            "focus": {"x": media.focus_x, "y": media.focus_y},
        },
        "description": media.description or None,
        "blurhash": media.blurhash,
    }


# A rendered status holds this once it has an attachment (msgspec writes no spaces; a status's own text is escaped,
# so no text can hold it).
_WITH_MEDIA: Final = '"media_attachments":[{'


def shows_media(status_json: str) -> bool:
    """Whether a rendered status (its JSON, as the fanout delivers it) has attachments of its own, without
    decoding it."""
    return _WITH_MEDIA in status_json


def entities(column: str | None, public_url: str) -> list[dict[str, Any]]:
    return [entity(media, public_url) for media in read(column)]


def ids_of(column: str | None) -> list[int]:
    return [media.id for media in read(column)]


# One coordinate of a focal point: a decimal from -1 to 1 ("0", "-0.25", ".5", "1.0"), nothing else.
_COORDINATE: Final = r"-?(?:0?\.[0-9]+|0\.?|1(?:\.0*)?|0\.[0-9]*)"
# ``"x,y"`` as the API takes it (the gateway's OpenAPI document says the same pattern).
FOCUS_PATTERN: Final = f"^{_COORDINATE},{_COORDINATE}$"
_FOCUS = re.compile(FOCUS_PATTERN)


def parse_focus(value: str) -> tuple[float, float]:
    """``"x,y"``, each from -1.0 to 1.0 (Mastodon's focal point: the centre is 0,0, the top left -1,1)."""
    if not _FOCUS.fullmatch(value):
        raise ApiError(422, "Validation failed: focus must be two numbers from -1.0 to 1.0, as x,y")
    x, y = (float(part) for part in value.split(","))
    return x, y


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise ApiError(422, f"Validation failed: Description is too long (maximum is {MAX_DESCRIPTION} characters)")
    if "\x00" in description:
        raise ApiError(422, "Validation failed: Description must not contain NUL characters")
    return description
