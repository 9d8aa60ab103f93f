"""What one AI grade sends and costs: bytes on the wire, image tokens, and dollars per graded proof.

The real grader (`shared.providers.gemini.judge`, through google-genai) grades each proof against
the Gemini stand-in (tests/fakes.py), which answers `usageMetadata` in the API's shape, counting
tokens by Google's published rule for Gemini 3 models: an image costs a fixed budget by media
resolution (low 280, medium 560, high 1,120; high when unspecified), a PDF page likewise (medium
when unspecified), text about 4 characters a token. "Before" is the request as it was: the file
as captured, no media resolution; "after" is the request now: images at most
GRADING_IMAGE_MAX_SIDE pixels on a side, re-encoded without EXIF, media resolution as set.

Price: gemini-3.8-flash at Google's published $0.75 per million input tokens and $3.75 per million
output tokens (until 2026-12-31; $1.50 and $7.50 from 2027-01-01). Thinking tokens are billed as
output; the stand-in does not think, so the thinking budget (GEMINI_THINKING_LEVEL) is shown as
the most a grade can add.

    .venv/bin/python -m bench.grading_cost
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

from bench.common import write_section

PRICES = {"2026 (promotional)": (0.75, 3.75), "from 2027-01-01": (1.50, 7.50)}  # $ per million in, out


@dataclass
class Measured:
    request_bytes: int
    image_bytes: int
    prompt_tokens: int
    image_tokens: int
    output_tokens: int


def phone_photo() -> bytes:
    """A 12-megapixel photo with a camera's grain (sensor noise is what makes real ones 3 to 5 MB)."""
    import io

    from PIL import Image

    from tests.images import encode, picture

    with Image.open(io.BytesIO(picture(7, size=(4032, 3024)))) as smooth:
        grain = Image.effect_noise((4032, 3024), 24).convert("RGB")
        photo = Image.blend(smooth.convert("RGB"), grain, 0.25)
    return encode(photo, "JPEG", taken_at="2026:12:01 10:00:00", quality=92)


def proofs() -> dict[str, tuple[bytes, str]]:
    from tests.images import picture

    return {
        "phone photo, 4032 x 3024 JPEG with EXIF": (phone_photo(), "image/jpeg"),
        "screenshot, 2560 x 1440 PNG": (picture(8, size=(2560, 1440), fmt="PNG"), "image/png"),
        "small photo, 1024 x 768 JPEG": (picture(9, size=(1024, 768), fmt="JPEG", quality=85), "image/jpeg"),
    }


def grade_once(server: Any, fake: Any, data: bytes, mime: str) -> Measured:
    from shared.proof import capture as proofs_module
    from shared.providers import gemini

    server.clear_log()
    fake.calls.clear()
    evidence = proofs_module.Proof("file", "u/p", "0" * 64, blobs=[(data, mime)])
    verdict = gemini.judge("A full draft of chapter one.", None, evidence)
    assert verdict is not None
    [(request, response)] = server.log
    body = json.loads(request.get_data())
    usage = json.loads(response.get_data())["usageMetadata"]
    images = [
        len(base64.urlsafe_b64decode(p["inlineData"]["data"]))
        for c in body["contents"]
        for p in c["parts"]
        if "inlineData" in p
    ]
    image_tokens = sum(d["tokenCount"] for d in usage["promptTokensDetails"] if d["modality"] == "IMAGE")
    return Measured(
        len(request.get_data()), sum(images), usage["promptTokenCount"], image_tokens, usage["candidatesTokenCount"]
    )


def cost(m: Measured, price: tuple[float, float], thinking: int = 0) -> float:
    return (m.prompt_tokens * price[0] + (m.output_tokens + thinking) * price[1]) / 1_000_000


def main() -> None:
    from pytest_httpserver import HTTPServer

    from shared.config import get_settings
    from shared.providers import gemini
    from tests.fakes import FakeGemini

    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    verdict = {
        "passed": True,
        "feedback": "The draft covers every point of the rubric.",
        "confidence": 0.93,
        "criteria": [{"criterion": "A full draft", "met": True, "evidence": "Twelve pages of chapter one."}],
        "instructions_in_proof": False,
        "phrase_shown": None,
    }
    fake = FakeGemini(server=server, default=verdict).install()
    os.environ.update(
        {
            "ENVIRONMENT": "development",
            "SUPABASE_URL": "http://127.0.0.1:1",
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "GEMINI_API_KEY": "bench-key",
            "GEMINI_API_BASE": server.url_for("/").rstrip("/"),
        }
    )
    get_settings.cache_clear()
    gemini.client.cache_clear()
    settings = get_settings()
    thinking = gemini.THINKING_BUDGETS[settings.gemini_thinking_level]
    rows = []
    totals: dict[str, list[Measured]] = {"before": [], "after": []}
    for name, (data, mime) in proofs().items():
        now = grade_once(server, fake, data, mime)
        # Before: the file as captured, and no media resolution chosen.
        original, resolutions = gemini.for_model, dict(gemini.MEDIA_RESOLUTIONS)
        gemini.for_model = lambda d, m: (d, m)  # type: ignore[assignment]
        gemini.MEDIA_RESOLUTIONS.update(dict.fromkeys(resolutions, "MEDIA_RESOLUTION_UNSPECIFIED"))
        try:
            then = grade_once(server, fake, data, mime)
        finally:
            gemini.for_model = original
            gemini.MEDIA_RESOLUTIONS.update(resolutions)
        totals["before"].append(then)
        totals["after"].append(now)
        promo = PRICES["2026 (promotional)"]
        rows.append(
            f"| {name} | {len(data):,} | {then.image_bytes:,} / {then.request_bytes:,} | {now.image_bytes:,} /"
            f" {now.request_bytes:,} | {then.image_tokens:,} / {now.image_tokens:,} | {then.prompt_tokens:,} /"
            f" {now.prompt_tokens:,} | ${cost(then, promo):.5f} / ${cost(now, promo):.5f} |"
        )
        print(rows[-1], flush=True)
    server.stop()
    after = totals["after"]
    mean_prompt = sum(m.prompt_tokens for m in after) / len(after)
    mean_output = sum(m.output_tokens for m in after) / len(after)
    price_rows = [
        f"| {label} | ${mean_prompt * p[0] / 1e6:.5f} | ${mean_output * p[1] / 1e6:.5f} |"
        f" ${thinking * p[1] / 1e6:.5f} | ${(mean_prompt * p[0] + (mean_output + thinking) * p[1]) / 1e6:.5f} |"
        for label, p in PRICES.items()
    ]
    body = f"""\
## Grading: what one AI grade sends and costs

`python -m bench.grading_cost`: the real grader against the Gemini stand-in, which counts tokens by
Google's published rule for Gemini 3 (an image costs a fixed budget by media resolution: low 280,
medium 560, high 1,120, high when unspecified). Before: the file as captured, no media resolution.
After: at most {settings.grading_image_max_side} px on the longest side, re-encoded as JPEG without
EXIF, media resolution `{settings.gemini_media_resolution}`, model `{settings.gemini_model}`.

| proof | file bytes | image / request bytes before | image / request bytes after | image tokens before / after | prompt tokens before / after | input + answer cost before / after (2026 price) |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Image tokens do not move: Gemini 3 bills a fixed budget per image by media resolution, whatever its
pixels, and the default for an unspecified image was already high. What moves is the upload (the
request body carries the image base64-encoded): about {_ratio(totals)} fewer bytes for a phone photo,
which is upload time on every grade and distance from the 20 MB inline request limit. Medium
resolution would halve the image tokens (560); it is a setting (`GEMINI_MEDIA_RESOLUTION`), kept at
high because a wrong fail costs a user a contest and high costs about $0.0004 more per photo.

Cost per graded proof after the change (mean over the proofs above), at gemini-3.8-flash's published
prices; thinking is billed as output, and `{settings.gemini_thinking_level}` caps it at {thinking:,} tokens:

| price | input | answer | thinking, at most | total, at most |
|---|---|---|---|---|
{chr(10).join(price_rows)}
"""
    write_section("grading-cost", body)
    print(body)


def _ratio(totals: dict[str, list[Measured]]) -> str:
    before, after = totals["before"][0].request_bytes, totals["after"][0].request_bytes
    return f"{before / after:.0f}x"


if __name__ == "__main__":
    main()
