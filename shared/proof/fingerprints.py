"""What a captured proof looks like to the reuse checks (issue 20): an image's perceptual hash and
the capture time its EXIF states, a page's main-text hash.

Images are decoded defensively: only the formats the upload accepts and Pillow can read (PNG,
JPEG, GIF, WebP), the pixel count checked from the header before any pixel is decoded
(PROOF_MAX_PIXELS, and Pillow's decompression-bomb guard turned into an error), JPEGs decoded at
reduced scale (a 12-megapixel photo is never decoded in full). An image that cannot be decoded
is refused with the reason: the user is told at once and can upload a sound file.

The near-reuse lookup is multi-index hashing over four 16-bit segments of the 64-bit hash: two
hashes within r bits agree to within r // 4 bits on at least one segment (pigeonhole), so
`segment_probes` lists, per segment, every value that close; each segment has its own index
(sql/029_proof_checks.sql) and the database compares whole hashes only for those candidates.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from shared.config import get_settings
from shared.proof import capture as proof

# Formats decoded for hashing; HEIC is accepted for grading but Pillow cannot read it.
DECODABLE = ("PNG", "JPEG", "GIF", "WEBP")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".heic", ".heif")
SEGMENTS = (48, 32, 16, 0)
# A page needs this much main text before its text hash can tell two pages apart.
MIN_PAGE_TEXT = 200
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 36867, 36868
_OFFSET_ORIGINAL, _OFFSET_DIGITIZED = 36881, 36882
# With no time zone in the EXIF, its clock may be any zone's: only a time earlier than this
# before activation is certainly before it.
UNZONED_SLACK = timedelta(hours=14)


@dataclass(frozen=True)
class Fingerprint:
    phash: int | None = None  # signed 64-bit, as stored in bigint
    taken_at: datetime | None = None
    taken_at_zoned: bool = False
    text_sha256: str | None = None
    image: str = "not_an_image"  # "hashed" | "not_an_image" | "not_decodable_format"


def of_file(path: str, data: bytes) -> Fingerprint:
    import filetype

    kind = filetype.guess(data)
    mime = kind.mime if kind else None
    if mime in ("image/heic", "image/heif"):
        return Fingerprint(image="not_decodable_format")
    if mime in proof.IMAGE_TYPES or path.lower().endswith(IMAGE_SUFFIXES):
        # Named or shaped as an image, it must decode as one.
        return _of_image(data)
    return Fingerprint()


def of_page(url: str, body: bytes, content_type: str) -> Fingerprint:
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in ("image/heic", "image/heif"):
        return Fingerprint(image="not_decodable_format")
    if mime in proof.IMAGE_TYPES:
        return _of_image(body)
    text = proof.from_page(url, body, content_type).text or ""
    folded = " ".join(text.split()).casefold()
    if len(folded) < MIN_PAGE_TEXT:
        return Fingerprint()
    return Fingerprint(text_sha256=hashlib.sha256(folded.encode("utf-8")).hexdigest())


def _of_image(data: bytes) -> Fingerprint:
    import imagehash
    from PIL import Image, UnidentifiedImageError

    cap = get_settings().proof_max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=DECODABLE) as image:
                width, height = image.size
                if width * height > cap:
                    raise proof.ProofRefused(
                        f"the image is {width} x {height} pixels, more than the {cap:,} the grader accepts"
                    )
                taken_at, zoned = taken_at_of(image)
                image.draft("L", (256, 256))  # JPEG: decode at the smallest scale still this large
                image.load()
                hashed = imagehash.phash(image)
        except proof.ProofRefused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise proof.ProofRefused("the image declares more pixels than the grader accepts") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, IndexError):
            raise proof.ProofRefused("the image could not be decoded: it is damaged, truncated or not one") from None
    return Fingerprint(phash=to_signed(int(str(hashed), 16)), taken_at=taken_at, taken_at_zoned=zoned, image="hashed")


def taken_at_of(image: Any) -> tuple[datetime | None, bool]:
    """When the EXIF says the picture was taken (aware; UTC when the EXIF names no zone), and
    whether it named one. Missing or malformed EXIF is normal: (None, False)."""
    try:
        ifd = image.getexif().get_ifd(_EXIF_IFD)
    except Exception:
        return None, False
    for stamp_tag, offset_tag in ((_DATETIME_ORIGINAL, _OFFSET_ORIGINAL), (_DATETIME_DIGITIZED, _OFFSET_DIGITIZED)):
        raw = ifd.get(stamp_tag)
        if not isinstance(raw, str):
            continue
        try:
            stamp = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue
        offset = ifd.get(offset_tag)
        match = re.fullmatch(r"([+-])(\d\d):(\d\d)", str(offset or "").strip("\x00 "))
        if match:
            sign = -1 if match.group(1) == "-" else 1
            zone = timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
            return stamp.replace(tzinfo=zone), True
        return stamp.replace(tzinfo=UTC), False
    return None, False


def taken_before(taken_at: datetime | None, zoned: bool, activated_at: datetime | None) -> bool:
    """The picture was certainly taken before the goal was activated."""
    if taken_at is None or activated_at is None:
        return False
    return taken_at < activated_at - (timedelta(0) if zoned else UNZONED_SLACK)


def to_signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def segment_probes(phash: int, bits: int) -> list[list[int]]:
    """Per 16-bit segment (high to low), every value within bits // 4 bits of the hash's own."""
    radius = bits // len(SEGMENTS)
    unsigned = phash & ((1 << 64) - 1)
    probes: list[list[int]] = []
    for shift in SEGMENTS:
        own = (unsigned >> shift) & 0xFFFF
        values = {own}
        for flips in range(1, radius + 1):
            for positions in itertools.combinations(range(16), flips):
                value = own
                for position in positions:
                    value ^= 1 << position
                values.add(value)
        probes.append(sorted(values))
    return probes


# Another submission made before this one (by submission time, then id), except the same user's
# for the same checkpoint.
EARLIER = (
    "(submitted_at, id) < (%(submitted_at)s, %(id)s) and (user_id <> %(user_id)s or checkpoint_id <> %(checkpoint_id)s)"
)

# The near-reuse lookup: candidates from the four segment indexes, then the whole hash compared.
# (Built from constants only; every value is a bound parameter.)
NEAR_QUERY = f"""
select id, bit_count((proof_phash # %(phash)s)::bit(64)) as distance from public.submissions
where proof_phash is not null and {EARLIER}
  and (((proof_phash >> 48) & 65535) = any(%(p0)s) or ((proof_phash >> 32) & 65535) = any(%(p1)s)
       or ((proof_phash >> 16) & 65535) = any(%(p2)s) or (proof_phash & 65535) = any(%(p3)s))
  and bit_count((proof_phash # %(phash)s)::bit(64)) <= %(bits)s
order by distance, submitted_at limit 1"""  # noqa: S608


def near_query_params(phash: int, bits: int, **row: Any) -> dict[str, Any]:
    p0, p1, p2, p3 = segment_probes(phash, bits)
    return {"phash": phash, "bits": bits, "p0": p0, "p1": p1, "p2": p2, "p3": p3, **row}
