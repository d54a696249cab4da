"""Media attachments, the post service's side (kicau/media.py says what they are): reading an upload as an image,
keeping its files and its row, and attaching it to one status.

* **An upload** is decoded with Pillow in a worker thread (one at a time: two cores, and a 16 MiB image takes
  a good part of a second), turned upright from its EXIF orientation, scaled down past 3840 x 2160 pixels, and
  written again without its metadata (EXIF with a camera's GPS position, XMP, comments; the colour profile kept);
  a GIF is kept byte for byte (its animation), with a PNG of its first frame as the preview. The preview fits 480
  x 480 pixels' area, the blurhash is computed from a 32 x 32 copy (``blurhash``, the one Mastodon.py uses).
* **Files** go to ``media_files`` in 1 MiB chunks, then the row to ``media_attachments``: a row is there only once
  its files are, so a crash in between leaves chunks no row names (no id was ever answered), never a row without
  its files.
* **Attaching** claims the row for the status (a lightweight transaction, ``IF status_id = null``), before the
  status is written, and the status keeps the attachments as they are then (``statuses.media``). A failed post
  gives its claims back. A claim by a status that was never written (its post service died between the claim
  and the write) is taken over once that status is old enough that no request can still be writing it, as the
  Idempotency-Key's claim is (services/post/service.py), so a retry can post the attachment again.
* **Deleting a status** gives its attachments back, as Mastodon's delete does for "delete and redraft": the
  client may name them again in the status it posts instead.

A scheduled status claims its attachments under its own id until it is posted; its post takes the claims over.
Profile pictures (an avatar, a header) are attachments too, cropped to their size and held by the profile
(``PROFILE_HOLDER``): no status takes them.

* **Uploads no status takes** are removed a day later (``KICAU_POST_UNATTACHED_MEDIA_SECONDS``), as Mastodon's:
  each upload's expiry is planned before its row (``media_expiries``, by hour) and ``expiry_runner`` (a runner of
  services/post/due_hours.py) deletes the row if no status holds it (the claim's own lightweight transaction
  decides between a late post and the removal; a claim names the account, so it never revives a removed row),
  then the files. An attachment given back by a deleted status after its expiry passed is kept.

Not done: video and audio (refused: 422); a custom ``thumbnail``; changing a status's attachments in an edit (an
edit that names other ones is a 422).
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import blurhash
import msgspec
from cassandra.cluster import Session
from cassandra.query import UNSET_VALUE
from PIL import Image, ImageOps, UnidentifiedImageError

from kicau import media
from kicau.clients import execute, write_preparer
from kicau.ids import ms_from_id
from kicau.media import Size, StoredMedia
from kicau.web import ApiError
from services.post.due_hours import DueRunner, HourProgress, hour_of

CHUNK_BYTES: Final = 1024 * 1024
# Pillow decodes nothing larger (its own guard against decompression bombs is at ~179 megapixels).
MAX_DECODED_PIXELS: Final = 64_000_000
_FORMATS: Final = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_SAVE_AS: Final = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
_UNREADABLE: Final = "Validation failed: File could not be read as an image (JPEG, PNG, WebP or GIF)"
_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder(StoredMedia)
# One upload decoded at a time (see the module's docstring).
_DECODING = asyncio.Semaphore(1)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processed:
    content_type: str
    extension: str
    original: bytes
    original_size: Size
    small: bytes
    small_size: Size
    blurhash: str


def _scaled(size: tuple[int, int], most_pixels: int) -> tuple[int, int]:
    width, height = size
    if width * height <= most_pixels:
        return width, height
    factor = math.sqrt(most_pixels / (width * height))
    return max(1, int(width * factor)), max(1, int(height * factor))


def _encoded(image: Image.Image, extension: str, icc_profile: bytes | None) -> bytes:
    out = io.BytesIO()
    options: dict[str, Any] = {"icc_profile": icc_profile} if icc_profile else {}
    if extension == "jpg":
        image = image if image.mode in ("RGB", "L") else image.convert("RGB")
        image.save(out, "JPEG", quality=90, **options)
    elif extension == "webp":
        image.save(out, "WEBP", quality=90, **options)
    else:
        image.save(out, "PNG", **options)
    return out.getvalue()


def _blurhash(image: Image.Image) -> str:
    tiny = image.convert("RGB").resize((32, 32))
    pixels = list(tiny.getdata())
    rows = [[list(pixels[y * 32 + x]) for x in range(32)] for y in range(32)]
    return str(blurhash.encode(rows, components_x=4, components_y=3))


def process(data: bytes, crop_to: tuple[int, int] | None = None) -> Processed:
    """The files and figures of an uploaded image; a 422 for what is not one of the images taken. ``crop_to``: a
    profile picture's size, which the image is cropped to fill (its centre kept; a GIF's first frame, as a PNG)."""
    try:
        image = Image.open(io.BytesIO(data))
        content_type = _FORMATS.get(image.format or "")
        if content_type is None:
            raise ApiError(422, f"Validation failed: File content type {image.format or 'unknown'} is not supported"
                                f" (JPEG, PNG, WebP or GIF)")
        if image.width * image.height > MAX_DECODED_PIXELS:
            raise ApiError(422, f"Validation failed: the image is larger than {MAX_DECODED_PIXELS:,} pixels")
        image.load()
    except ApiError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError,
            EOFError) as exc:
        raise ApiError(422, _UNREADABLE) from exc
    extension = media.IMAGE_TYPES[content_type]
    if crop_to is not None:
        upright = ImageOps.exif_transpose(image) or image
        if extension == "gif":
            upright, extension, content_type = upright.convert("RGBA"), "png", "image/png"
        picture = ImageOps.fit(upright, crop_to, Image.Resampling.LANCZOS)
        picture.info = {}
        encoded = _encoded(picture, extension, None)
        size = Size(picture.width, picture.height)
        return Processed(content_type=content_type, extension=extension, original=encoded, original_size=size,
                         small=encoded, small_size=size, blurhash=_blurhash(picture))
    if extension == "gif":
        # Kept as uploaded: re-encoding would cost its animation; a GIF carries no EXIF.
        original, first = data, image.convert("RGBA")
        original_size = Size(image.width, image.height)
    else:
        icc_profile = image.info.get("icc_profile")
        upright = ImageOps.exif_transpose(image) or image
        fitted = upright.resize(_scaled(upright.size, media.MAX_IMAGE_PIXELS), Image.Resampling.LANCZOS) \
            if upright.width * upright.height > media.MAX_IMAGE_PIXELS else upright
        # Written from pixels alone: nothing of the upload's metadata is passed on.
        fitted.info = {}
        original, first = _encoded(fitted, extension, icc_profile), fitted
        original_size = Size(fitted.width, fitted.height)
    small_image = first.resize(_scaled(first.size, media.SMALL_PIXELS), Image.Resampling.LANCZOS) \
        if first.width * first.height > media.SMALL_PIXELS else first
    small_extension = "png" if extension == "gif" else extension
    return Processed(content_type=content_type, extension=extension, original=original, original_size=original_size,
                     small=_encoded(small_image, small_extension, None),
                     small_size=Size(small_image.width, small_image.height), blurhash=_blurhash(first))


async def processed(data: bytes, crop_to: tuple[int, int] | None = None,
                    most_bytes: int = media.MAX_IMAGE_BYTES) -> Processed:
    if not data:
        raise ApiError(422, "Validation failed: File can't be blank")
    if len(data) > most_bytes:
        raise ApiError(422, f"Validation failed: File file size must be less than {most_bytes // 2**20} MB")
    async with _DECODING:
        return await asyncio.to_thread(process, data, crop_to)


def _chunks(data: bytes) -> list[bytes]:
    return [data[at:at + CHUNK_BYTES] for at in range(0, len(data), CHUNK_BYTES)] or [b""]


@dataclass(frozen=True, slots=True)
class Expiry:
    hour: int
    expires_at: datetime
    media_id: int


class MediaStore:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._expire = write("INSERT INTO media_expiries (hour, expires_at, media_id) VALUES (?, ?, ?)")
        self._forget_expiry = write("DELETE FROM media_expiries WHERE hour = ? AND expires_at = ? AND media_id = ?")
        self._expiring = session.prepare("SELECT expires_at, media_id FROM media_expiries WHERE hour = ?"
                                         " AND expires_at <= ?")
        self.expiries_progress = HourProgress(session, write_consistency, "media_expiries_progress")
        self._insert_chunk = write("INSERT INTO media_files (id, variant, chunk, data) VALUES (?, ?, ?, ?)")
        self._insert = write("INSERT INTO media_attachments (id, account_id, media, content_type, status_id)"
                             " VALUES (?, ?, ?, ?, ?)")
        self._describe = write("UPDATE media_attachments SET media = ? WHERE id = ?")
        self._row = session.prepare("SELECT * FROM media_attachments WHERE id = ?")
        self._rows = session.prepare("SELECT * FROM media_attachments WHERE id IN ?")
        self._file = session.prepare("SELECT data FROM media_files WHERE id = ? AND variant = ?")
        self._file.fetch_size = 4  # a few chunks a page: an answer of 16 chunks would pass the native frame's limit
        # ``account_id`` in the condition: a row removed meanwhile (an expired upload) has none, and the claim must
        # not make a row of the status id alone.
        self._claim = write("UPDATE media_attachments SET status_id = ? WHERE id = ? IF status_id = null"
                            " AND account_id = ?")
        self._take_over = write("UPDATE media_attachments SET status_id = ? WHERE id = ? IF status_id = ?")
        self._release = write("UPDATE media_attachments SET status_id = null WHERE id = ? IF status_id = ?")
        self._delete = write("DELETE FROM media_attachments WHERE id = ? IF status_id = null")
        self._remove = write("DELETE FROM media_attachments WHERE id = ?")
        self._delete_file = write("DELETE FROM media_files WHERE id = ? AND variant = ?")

    async def expire_at(self, media_id: int, moment: datetime) -> None:
        await execute(self._session, self._expire, (hour_of(moment), moment, media_id))

    async def forget_expiry(self, expiry: Expiry) -> None:
        await execute(self._session, self._forget_expiry, (expiry.hour, expiry.expires_at, expiry.media_id))

    async def due(self, hour: int, now: datetime) -> list[Expiry]:
        rows = await execute(self._session, self._expiring, (hour, now))
        return [Expiry(hour, row["expires_at"].replace(tzinfo=UTC), int(row["media_id"])) for row in rows]

    async def add(self, media_id: int, account_id: int, files: Processed, description: str,
                  focus: tuple[float, float], held_by: int | None = None) -> StoredMedia:
        stored = StoredMedia(id=media_id, extension=files.extension, original=files.original_size,
                             small=files.small_size, file_size=len(files.original), blurhash=files.blurhash,
                             description=description, focus_x=focus[0], focus_y=focus[1])
        await asyncio.gather(*(
            execute(self._session, self._insert_chunk, (media_id, variant, number, chunk))
            for variant, data in ((media.ORIGINAL, files.original), (media.SMALL, files.small))
            for number, chunk in enumerate(_chunks(data))))
        await execute(self._session, self._insert, (media_id, account_id, _ENCODE.encode(stored).decode(),
                                                    files.content_type, UNSET_VALUE if held_by is None else held_by))
        return stored

    async def get(self, media_id: int) -> tuple[StoredMedia, dict[str, Any]] | None:
        rows = await execute(self._session, self._row, (media_id,))
        if not rows or not rows[0].get("media"):
            return None
        return _DECODE.decode(rows[0]["media"]), rows[0]

    async def many(self, media_ids: list[int]) -> dict[int, tuple[StoredMedia, dict[str, Any]]]:
        rows = await execute(self._session, self._rows, (media_ids,))
        return {int(row["id"]): (_DECODE.decode(row["media"]), row) for row in rows if row.get("media")}

    async def describe(self, stored: StoredMedia) -> None:
        await execute(self._session, self._describe, (_ENCODE.encode(stored).decode(), stored.id))

    async def file(self, media_id: int, variant: str) -> bytes:
        rows = await execute(self._session, self._file, (media_id, variant))
        return b"".join(row["data"] or b"" for row in rows)

    async def claim(self, media_id: int, account_id: int, status_id: int) -> int | None:
        """None once ``status_id`` holds the account's attachment; else the status that holds it (a 422 when the
        attachment is gone, or is not the account's)."""
        rows = await execute(self._session, self._claim, (status_id, media_id, account_id))
        if rows[0]["[applied]"]:
            return None
        if rows[0].get("status_id") is None:
            raise ApiError(422, f"Validation failed: Media {media_id} not found")
        return int(rows[0]["status_id"])

    async def take_over(self, media_id: int, stale_id: int, status_id: int) -> bool:
        rows = await execute(self._session, self._take_over, (status_id, media_id, stale_id))
        return bool(rows[0]["[applied]"])

    async def release(self, media_id: int, status_id: int) -> None:
        await execute(self._session, self._release, (media_id, status_id))

    async def delete(self, media_id: int) -> bool:
        """Removes an unattached attachment and its files; False when a status holds it."""
        rows = await execute(self._session, self._delete, (media_id,))
        if not rows[0]["[applied]"]:
            return False
        await self._delete_files(media_id)
        return True

    async def remove(self, media_id: int) -> None:
        """Removes one of this server's own files (a page's picture no card names), whoever holds it."""
        await execute(self._session, self._remove, (media_id,))
        await self._delete_files(media_id)

    async def _delete_files(self, media_id: int) -> None:
        await asyncio.gather(*(execute(self._session, self._delete_file, (media_id, variant))
                               for variant in media.VARIANTS))


def claim_is_stale(holder: int, now_ms: float, in_flight_seconds: float) -> bool:
    """Whether a status that holds an attachment but was never written is old enough that no request can still
    be writing it."""
    return now_ms - ms_from_id(holder) >= in_flight_seconds * 1000


_NOT_FOUND: Final = "Record not found"
# Whether the holder of a claim (a status, or a scheduled status) still exists, by its id.
Written = Callable[[int], Awaitable[bool]]


@dataclass
class Attachments:
    """What the post service's routes and its posts do with attachments."""

    store: MediaStore
    public_url: str
    # How long a claim by a status never written holds (the Idempotency-Key's wait, services/post/service.py).
    in_flight_seconds: float
    # How long an upload no status has taken is kept (Mastodon: a day).
    unattached_seconds: float = 86_400.0

    def rendered(self, stored: StoredMedia) -> bytes:
        return _ENCODE.encode(media.entity(stored, self.public_url))

    async def upload(self, media_id: int, account_id: int, data: bytes, description: str,
                     focus: tuple[float, float]) -> bytes:
        files = await processed(data)
        # Its expiry first: a row is never there without one.
        await self.store.expire_at(media_id, datetime.now(UTC) + timedelta(seconds=self.unattached_seconds))
        return self.rendered(await self.store.add(media_id, account_id, files, description, focus))

    async def keep_page_picture(self, media_id: int, data: bytes) -> tuple[str, int, int, str] | None:
        """A linked page's picture kept as this server's own file, for its preview card to show (Mastodon serves
        its copy too: readers' clients fetch nothing from the page's host): the preview size's address, width,
        height and blurhash; None for what is no image taken here. No account's, held by no status."""
        try:
            files = await processed(data)
        except ApiError:
            return None
        stored = await self.store.add(media_id, media.NO_ACCOUNT, files, "", (0.0, 0.0),
                                      held_by=media.PROFILE_HOLDER)
        return (self.public_url + media.file_path(stored.id, media.SMALL, stored.small_extension),
                stored.small.width, stored.small.height, stored.blurhash)

    async def remove_picture(self, account_id: int, path: str) -> None:
        """Remove the account's profile picture at ``path`` (the gateway, once the account names another or the
        default one, or its change was refused); 404 for what is not one of the account's profile pictures."""
        found = await self.store.get(media.picture_id(path)) if media.is_picture_path(path) else None
        if found is None or found[1]["account_id"] != account_id or found[1].get("status_id") != media.PROFILE_HOLDER:
            raise ApiError(404, _NOT_FOUND)
        await self.store.remove(found[0].id)

    async def drop_page_picture(self, media_id: int) -> None:
        """A page's picture kept twice at once (two fetches): the copy no card names goes."""
        await self.store.remove(media_id)

    async def upload_picture(self, media_id: int, account_id: int, data: bytes, kind: str) -> str:
        """A profile picture (``kind``: avatar or header, kicau/media.py ``PROFILE_PICTURES``), kept as an
        attachment no status may take; the path of its file, for the account to name."""
        size = media.PROFILE_PICTURES.get(kind)
        if size is None:
            raise ApiError(422, f"Validation failed: {kind[:40]} is not a profile picture")
        files = await processed(data, size, media.MAX_PROFILE_PICTURE_BYTES)
        stored = await self.store.add(media_id, account_id, files, "", (0.0, 0.0), held_by=media.PROFILE_HOLDER)
        return media.file_path(stored.id, media.ORIGINAL, stored.extension)

    async def _own(self, account_id: int, media_id: int) -> tuple[StoredMedia, dict[str, Any]]:
        found = await self.store.get(media_id)
        if found is None or found[1]["account_id"] != account_id:
            raise ApiError(404, _NOT_FOUND)  # someone else's answers as a missing one
        return found

    async def show(self, account_id: int, media_id: int) -> bytes:
        return self.rendered((await self._own(account_id, media_id))[0])

    async def describe(self, account_id: int, media_id: int, description: str | None,
                       focus: tuple[float, float] | None) -> bytes:
        stored, row = await self._own(account_id, media_id)
        if row.get("status_id") is not None:
            # As Mastodon's: an attachment a status shows is changed by an edit of the status, not here.
            raise ApiError(404, _NOT_FOUND)
        changed = msgspec.structs.replace(
            stored, description=stored.description if description is None else description,
            focus_x=stored.focus_x if focus is None else focus[0],
            focus_y=stored.focus_y if focus is None else focus[1])
        await self.store.describe(changed)
        return self.rendered(changed)

    async def delete(self, account_id: int, media_id: int) -> None:
        await self._own(account_id, media_id)
        if not await self.store.delete(media_id):
            raise ApiError(422, "Media attachment is currently used by a status")

    async def file(self, media_id: int, name: str) -> tuple[bytes, str]:
        """A file's bytes and content type, by its public name (``original.jpg``, ``small.png``)."""
        variant, _, extension = name.partition(".")
        found = await self.store.get(media_id) if variant in media.VARIANTS else None
        if found is None:
            raise ApiError(404, _NOT_FOUND)
        stored = found[0]
        wanted = stored.extension if variant == media.ORIGINAL else stored.small_extension
        if extension != wanted:
            raise ApiError(404, _NOT_FOUND)
        content_type = next(kind for kind, ext in media.IMAGE_TYPES.items() if ext == wanted)
        return await self.store.file(media_id, variant), content_type

    async def attach(self, account_id: int, media_ids: tuple[int, ...], status_id: int,
                     written: Written, taking_from: int | None = None) -> list[StoredMedia]:
        """Claim the account's unattached ``media_ids`` for ``status_id``; the attachments as they are now, in
        order. ``written``: an awaitable function telling whether a status row (or a scheduled status) exists (a
        holder never written, and old enough, gives its claim up). ``taking_from``: a holder whose claims pass to
        ``status_id`` (a scheduled status, posted now). Claims already made are given back when one fails."""
        found = await self.store.many(list(media_ids))
        missing = [str(i) for i in media_ids if i not in found or found[i][1]["account_id"] != account_id]
        if missing:
            raise ApiError(422, f"Validation failed: Media {', '.join(missing)} not found")
        claimed: list[int] = []
        try:
            for media_id in media_ids:
                holder = await self.store.claim(media_id, account_id, status_id)
                if holder is not None and holder == taking_from and await self.store.take_over(media_id, holder,
                                                                                             status_id):
                    holder = None
                if holder is not None and holder != status_id and (
                        holder == media.PROFILE_HOLDER or not await self._take_over(media_id, holder, status_id,
                                                                                    written)):
                    raise ApiError(422, f"Validation failed: Media {media_id} is already attached to another post")
                claimed.append(media_id)
        except BaseException:
            await self.release(claimed, status_id)
            raise
        return [found[i][0] for i in media_ids]

    async def _take_over(self, media_id: int, holder: int, status_id: int, written: Written) -> bool:
        if not claim_is_stale(holder, time.time() * 1000, self.in_flight_seconds) or await written(holder):
            return False
        return await self.store.take_over(media_id, holder, status_id)

    async def release(self, media_ids: list[int], status_id: int) -> None:
        """Give claims back (a failed post, a deleted status); a failure is logged, as the post's outcome stands."""
        results = await asyncio.gather(*(self.store.release(i, status_id) for i in media_ids),
                                       return_exceptions=True)
        for media_id, result in zip(media_ids, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("could not give attachment %s back from status %s: %r", media_id, status_id, result)


def expiry_runner(store: MediaStore, *, poll_seconds: float = 1.0) -> DueRunner[Expiry]:
    """Removes the uploads no status took when their time is up (services/post/due_hours.py): the row only if no
    status holds it (the same lightweight transaction a claim makes, so a post and the removal never both win),
    then its files; an attachment a status holds is left, and its expiry forgotten."""

    async def expire(expiry: Expiry) -> int:
        removed = await store.delete(expiry.media_id)
        await store.forget_expiry(expiry)
        return int(removed)

    return DueRunner("unattached media", store, store.expiries_progress, expire, poll_seconds=poll_seconds)
