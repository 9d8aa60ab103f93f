"""Real images for proof tests: decodable, each seed a different picture to a perceptual hash."""

from __future__ import annotations

import io
import random


def picture(
    seed: int,
    size: tuple[int, int] = (96, 72),
    fmt: str = "PNG",
    *,
    taken_at: str | None = None,
    offset: str | None = None,
    quality: int = 90,
) -> bytes:
    """Smooth random blocks scaled up (a photo-like picture, not white noise); EXIF capture time
    ("YYYY:MM:DD HH:MM:SS", with an optional "+HH:MM" offset) when asked."""
    from PIL import Image

    rnd = random.Random(seed)
    blocks = Image.frombytes("RGB", (8, 6), bytes(rnd.randrange(256) for _ in range(8 * 6 * 3)))
    image = blocks.resize(size, Image.Resampling.BICUBIC)
    return encode(image, fmt, taken_at=taken_at, offset=offset, quality=quality)


def resized(data: bytes, size: tuple[int, int], fmt: str = "JPEG", quality: int = 70) -> bytes:
    """A resized, re-encoded copy, as a messaging app or a screenshot would make."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return encode(image.convert("RGB").resize(size, Image.Resampling.LANCZOS), fmt, quality=quality)


def encode(
    image: object, fmt: str, *, taken_at: str | None = None, offset: str | None = None, quality: int = 90
) -> bytes:
    from PIL import Image

    assert isinstance(image, Image.Image)
    out = io.BytesIO()
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if taken_at is not None:
        exif = Image.Exif()
        ifd = exif.get_ifd(0x8769)
        ifd[36867] = taken_at
        if offset is not None:
            ifd[36881] = offset
        options["exif"] = exif
    image.save(out, fmt, **options)
    return out.getvalue()


PNG = picture(0)
