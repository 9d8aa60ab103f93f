"""Proof made for this checkpoint (issue 20): the same captured bytes or a near-identical image seen
before (for another checkpoint, or from another user), a photo taken before the goal began, and a
page whose text was already submitted go to a person, never to the model, and never fail anyone on
their own. Images that cannot be decoded are refused at once; challenge phrases must be shown."""

from __future__ import annotations

import random
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Response

from shared import db
from shared.auth import mint_token
from shared.proof import fingerprints
from tests import factories as f
from tests.http_helpers import bearer, client
from tests.images import PNG, picture, resized
from tests.test_grading import FAIL, PASS, Stack, as_user, file_submission, grade, row, url_submission
from tests.test_grading import _public_test_host as public_test_host
from tests.test_grading import stack as stack

Conn = psycopg.Connection[dict[str, Any]]


def matched(owner: Conn, submission: UUID) -> UUID | None:
    """The earlier submission a reuse check matched: the service's record, never the owner's."""
    row = owner.execute(
        "select earlier_submission_id from public.proof_matches where submission_id = %s", [submission]
    ).fetchone()
    return row["earlier_submission_id"] if row else None


def _second_checkpoint_submission(owner: Conn, stack: Stack, user: UUID, content: bytes, path: str) -> UUID:
    return file_submission(owner, stack, user, content, path=path)


def test_the_same_file_for_a_second_checkpoint_goes_to_a_person_and_the_model_never_sees_it(
    stack: Stack,
    owner: Conn,
) -> None:
    alice = f.user(owner, "alice")
    first = file_submission(owner, stack, alice, PNG, path="c/1.png")
    assert grade(first, as_user(alice)).json["status"] == "passed"
    assert len(stack.gemini.calls) == 1
    again = _second_checkpoint_submission(owner, stack, alice, PNG, "c/2.png")
    answer = grade(again, as_user(alice))
    assert answer.status_code == 200 and answer.json["status"] == "needs_review"
    assert answer.json["result"]["reused"] is True and matched(owner, again) == first
    assert len(stack.gemini.calls) == 1  # never sent to the model
    assert row(owner, again)["checkpoint"] == "pending"  # protected, not failed
    assert "a person will look" in stack.sendgrid.text(stack.sendgrid.mails[-1])
    # The operators see both proofs side by side.
    operator = mint_token(str(f.user(owner, "operator")), app_metadata={"role": "operator"})
    [item] = client("operator_review").post("/", json={"action": "list"}, headers=bearer(operator)).json["items"]
    assert (item["id"], item["why"]) == (str(again), "reused_proof")
    assert item["earlier_proof"]["submission_id"] == str(first) and item["earlier_proof"]["same_user"] is True


def test_another_users_identical_file_goes_to_a_person(stack: Stack, owner: Conn) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    theirs = file_submission(owner, stack, alice, PNG, path="a.png")
    assert grade(theirs, as_user(alice)).json["status"] == "passed"
    copied = file_submission(owner, stack, bob, PNG, path="a.png")
    assert grade(copied, as_user(bob)).json["status"] == "needs_review"
    assert len(stack.gemini.calls) == 1


def test_fresh_proof_and_a_resubmission_for_the_same_checkpoint_are_graded_as_usual(
    stack: Stack,
    owner: Conn,
) -> None:
    alice = f.user(owner, "alice")
    first = file_submission(owner, stack, alice, PNG, path="f/1.png")
    assert grade(first, as_user(alice)).json["status"] == "passed"
    fresh = file_submission(owner, stack, alice, picture(7), path="f/2.png")
    stack.gemini.script = [FAIL]
    assert grade(fresh, as_user(alice)).json["status"] == "failed"
    # The same file again for the same checkpoint (after a failed grade) is no reuse.
    checkpoint = owner.execute("select checkpoint_id from public.submissions where id = %s", [fresh]).fetchone()
    assert checkpoint is not None
    resubmitted = owner.execute(
        "insert into public.submissions (checkpoint_id, user_id, submission_type, file_path)"
        " values (%s, %s, 'file', %s) returning id",
        [checkpoint["checkpoint_id"], alice, f"{alice}/f/2.png"],
    ).fetchone()
    assert resubmitted is not None
    assert grade(resubmitted["id"], as_user(alice)).json["status"] == "passed"
    assert len(stack.gemini.calls) == 3


def _operator_items(owner: Conn) -> list[dict[str, Any]]:
    operator = mint_token(str(f.user(owner, "operator")), app_metadata={"role": "operator"})
    answer = client("operator_review").post("/", json={"action": "list"}, headers=bearer(operator))
    assert answer.status_code == 200
    return list(answer.json["items"])


PHOTO = picture(11, size=(1600, 1200), fmt="JPEG")


def test_a_resized_re_encoded_copy_goes_to_a_person_and_the_model_never_sees_it(stack: Stack, owner: Conn) -> None:
    alice = f.user(owner, "alice")
    first = file_submission(owner, stack, alice, PHOTO, path="r/1.jpg")
    assert grade(first, as_user(alice)).json["status"] == "passed"
    copy = resized(PHOTO, (640, 480), fmt="WEBP", quality=55)
    assert copy != PHOTO
    again = file_submission(owner, stack, alice, copy, path="r/2.webp")
    answer = grade(again, as_user(alice))
    assert answer.status_code == 200 and answer.json["status"] == "needs_review"
    assert answer.json["result"]["reused"] is True and matched(owner, again) == first
    assert answer.json["result"]["checks"]["exact_reuse"] == "clear"
    assert answer.json["result"]["checks"]["near_reuse"].startswith("matched")
    assert len(stack.gemini.calls) == 1
    assert row(owner, again)["checkpoint"] == "pending"
    assert "a person will look" in stack.sendgrid.text(stack.sendgrid.mails[-1])
    [item] = _operator_items(owner)
    assert (item["id"], item["why"]) == (str(again), "reused_proof")
    assert item["earlier_proof"]["submission_id"] == str(first)
    assert item["findings"]["checks"]["near_reuse"].startswith("matched")


def test_another_users_resized_image_goes_to_a_person(stack: Stack, owner: Conn) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    theirs = file_submission(owner, stack, alice, PHOTO, path="a.jpg")
    assert grade(theirs, as_user(alice)).json["status"] == "passed"
    copied = file_submission(owner, stack, bob, resized(PHOTO, (800, 600)), path="b.jpg")
    answer = grade(copied, as_user(bob)).json
    assert answer["status"] == "needs_review" and answer["result"]["reused"] is True
    assert matched(owner, copied) == theirs
    # Bob learns that his photo was seen before, never whose it was, nor when or where.
    assert str(theirs) not in str(answer) and str(alice) not in str(answer)
    [item] = _operator_items(owner)
    assert item["earlier_proof"]["same_user"] is False
    assert len(stack.gemini.calls) == 1


def test_a_different_picture_is_no_match_and_the_prompt_lists_the_checks(stack: Stack, owner: Conn) -> None:
    alice = f.user(owner, "alice")
    assert grade(file_submission(owner, stack, alice, PHOTO, path="d/1.jpg"), as_user(alice)).json["status"] == "passed"
    fresh = file_submission(owner, stack, alice, picture(12, size=(1600, 1200), fmt="JPEG"), path="d/2.jpg")
    answer = grade(fresh, as_user(alice)).json
    assert answer["status"] == "passed"
    assert answer["result"]["checks"] == {
        "exact_reuse": "clear",
        "near_reuse": "clear",
        "capture_time": "no_exif_time",  # missing EXIF is normal, not suspicious
    }
    texts = [p.get("text", "") for p in stack.gemini.calls[-1].json["contents"][0]["parts"]]
    [listed] = [t for t in texts if t.startswith("CHECKS")]
    assert "near reuse: clear" in listed and "capture time: no exif time" in listed
    assert len(stack.gemini.calls) == 2


def _exif_stamp(moment: datetime) -> str:
    return moment.strftime("%Y:%m:%d %H:%M:%S")


def test_a_photo_taken_before_the_goal_began_goes_to_a_person(stack: Stack, owner: Conn) -> None:
    alice = f.user(owner, "alice")
    old = picture(21, size=(800, 600), fmt="JPEG", taken_at="2025:06:01 10:00:00", offset="+02:00")
    submission = file_submission(owner, stack, alice, old, path="s/old.jpg")
    answer = grade(submission, as_user(alice)).json
    assert answer["status"] == "needs_review"
    assert answer["result"]["checks"]["capture_time"] == "before_activation"
    assert answer["result"]["stale"]["taken_at"].startswith("2025-06-01T10:00:00+02:00")
    assert stack.gemini.calls == []
    assert row(owner, submission)["checkpoint"] == "pending"
    [item] = _operator_items(owner)
    assert item["why"] == "stale_proof"


def test_exif_times_after_activation_or_within_an_unknown_time_zone_are_graded_as_usual(
    stack: Stack, owner: Conn
) -> None:
    alice = f.user(owner, "alice")
    now = datetime.now(UTC)
    cases = [
        (
            picture(31, fmt="JPEG", taken_at=_exif_stamp(now + timedelta(minutes=5)), offset="+00:00"),
            "after_activation",
        ),
        # No zone: a clock that reads 3 hours before activation may be a zone 3 hours behind.
        (picture(32, fmt="JPEG", taken_at=_exif_stamp(now - timedelta(hours=3))), "after_activation"),
    ]
    for n, (content, finding) in enumerate(cases):
        submission = file_submission(owner, stack, alice, content, path=f"t/{n}.jpg")
        answer = grade(submission, as_user(alice)).json
        assert (answer["status"], answer["result"]["checks"]["capture_time"]) == ("passed", finding)
    # Without a zone, two days before is before activation in every zone.
    stale = file_submission(
        owner, stack, alice, picture(33, fmt="JPEG", taken_at=_exif_stamp(now - timedelta(days=2))), path="t/old.jpg"
    )
    assert grade(stale, as_user(alice)).json["status"] == "needs_review"


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * (1 + width // 8) * 64, 9)  # a few rows of a 1-bit picture
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )


UNREADABLE = {
    "decompression_bomb": ("bomb.png", _png_declaring(60_000, 60_000)),  # 3.6 gigapixels in a few KB
    "over_the_pixel_cap": ("huge.png", _png_declaring(9_000, 9_000)),  # 81 MP: under Pillow's guard, over ours
    "truncated": ("cut.jpg", PHOTO[: len(PHOTO) // 2]),
    "not_an_image": ("photo.png", b"#!/bin/sh\necho this is a script, not a photo\n" * 20),
    "random_bytes": ("photo.jpg", random.Random(5).randbytes(4096)),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_an_image_that_cannot_be_decoded_is_a_clear_4xx_and_nothing_is_stored(
    stack: Stack, owner: Conn, case: str
) -> None:
    alice = f.user(owner, "alice")
    name, content = UNREADABLE[case]
    submission = file_submission(owner, stack, alice, content, path=f"u/{name}")
    answer = grade(submission, as_user(alice))
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["code"] == "proof_capture_failed"
    assert "pixels" in answer.json["error"]["message"] or "decoded" in answer.json["error"]["message"]
    stored = owner.execute(
        "select status::text as status, captured_at, proof_sha256, proof_phash, proof_taken_at, ai_analysis_result"
        " from public.submissions where id = %s",
        [submission],
    ).fetchone()
    assert stored == {
        "status": "pending",
        "captured_at": None,
        "proof_sha256": None,
        "proof_phash": None,
        "proof_taken_at": None,
        "ai_analysis_result": None,
    }
    assert stack.gemini.calls == []
    # A sound file uploaded in its place is graded as usual.
    stack.storage.objects[f"proofs/{alice}/u/{name}"] = picture(41)
    assert grade(submission, as_user(alice)).json["status"] == "passed"


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sets(st.integers(0, 63), max_size=6))
def test_every_hash_within_the_similarity_bits_is_a_candidate_of_the_segment_index(value: int, flips: set[int]) -> None:
    other = value
    for bit in flips:
        other ^= 1 << bit
    other = fingerprints.to_signed(other & (2**64 - 1))
    probes = fingerprints.segment_probes(value, 6)
    unsigned = other & (2**64 - 1)
    segments = [(unsigned >> shift) & 0xFFFF for shift in fingerprints.SEGMENTS]
    assert any(segment in probe for segment, probe in zip(segments, probes, strict=True))


LONG_PAGE = "<html><body><!-- rendered {stamp} --><main><h1>Chapter two</h1><p>{text}</p></main></body></html>"
CHAPTER = " ".join(["The rain had not stopped for three days, and the river was rising."] * 6)


def test_a_page_with_the_same_text_for_a_second_checkpoint_goes_to_a_person(
    stack: Stack, owner: Conn, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer
) -> None:
    public_test_host(monkeypatch, httpserver)
    served = {"stamp": "first"}
    httpserver.expect_request("/chapter").respond_with_handler(
        lambda _: Response(LONG_PAGE.format(stamp=served["stamp"], text=CHAPTER), content_type="text/html")
    )
    alice = f.user(owner, "alice")
    first = url_submission(owner, alice, "http://proof.example.com/chapter")
    assert grade(first, as_user(alice)).json["status"] == "passed"
    served["stamp"] = "again, a day later"  # the bytes differ, the text does not
    second = url_submission(owner, alice, "http://proof.example.com/chapter")
    answer = grade(second, as_user(alice)).json
    assert answer["status"] == "needs_review"
    assert answer["result"]["checks"]["exact_reuse"] == "clear"
    assert answer["result"]["checks"]["page_content"] == "matched"
    assert answer["result"]["reused"] is True and matched(owner, second) == first
    assert len(stack.gemini.calls) == 1


# -----------------------------------------------------------------------------
# Challenge phrases
# -----------------------------------------------------------------------------
def _phrases(owner: Conn, goal: UUID) -> list[str | None]:
    rows = owner.execute(
        "select proof_phrase from public.checkpoints where goal_id = %s order by deadline, order_position", [goal]
    ).fetchall()
    return [r["proof_phrase"] for r in rows]


def _text_submission(owner: Conn, stack: Stack, user: UUID, checkpoint: UUID, text: str, name: str) -> UUID:
    path = f"{user}/{name}"
    stack.storage.objects[f"proofs/{path}"] = text.encode()
    found = owner.execute(
        "insert into public.submissions (checkpoint_id, user_id, submission_type, file_path)"
        " values (%s, %s, 'file', %s) returning id",
        [checkpoint, user, path],
    ).fetchone()
    assert found is not None
    return UUID(str(found["id"]))


def test_a_challenge_phrase_opens_with_its_checkpoint_and_must_be_shown(stack: Stack, owner: Conn) -> None:
    alice = f.user(owner, "alice")
    goal = f.goal(owner, alice, challenge=True)
    first, second, final = f.checkpoint_ids(owner, goal)
    phrases = _phrases(owner, goal)
    assert phrases[0] is not None and phrases[1:] == [None, None]  # only the open checkpoint has one
    phrase = str(phrases[0])
    # Absent: a fail with that reason, whatever else the model thought.
    absent = _text_submission(owner, stack, alice, first, "Chapter one, all of it.", "c/absent.md")
    answer = grade(absent, as_user(alice)).json
    assert answer["status"] == "failed"
    assert answer["result"]["reason"] == f"the proof does not show this checkpoint's challenge phrase “{phrase}”"
    assert answer["result"]["checks"]["challenge_phrase"] == "missing"
    sent = stack.gemini.calls[-1].json
    texts = [p.get("text", "") for p in sent["contents"][0]["parts"]]
    assert f'CHALLENGE PHRASE the proof must show: "{phrase}"' in texts
    assert "phrase_shown" in str(sent["generationConfig"])
    # Present (written with other spacing and case): graded as usual, and the next checkpoint opens.
    written = phrase.upper().replace(" ", " - ")
    present = _text_submission(owner, stack, alice, first, f"Chapter one.\n{written}\n", "c/present.md")
    answer = grade(present, as_user(alice)).json
    assert answer["status"] == "passed" and answer["result"]["checks"]["challenge_phrase"] == "shown"
    later = _phrases(owner, goal)
    assert later[0] == phrase and later[1] is not None and later[1] != phrase and later[2] is None
    # An image proof: the model says whether the phrase is in the picture.
    stack.gemini.script = [{**PASS, "phrase_shown": True}]
    photo = file_submission(owner, stack, alice, picture(51), path="c/photo.png")
    owner.execute("update public.submissions set checkpoint_id = %s where id = %s", [second, photo])
    assert grade(photo, as_user(alice)).json["status"] == "passed"
    assert _phrases(owner, goal)[2] is not None  # the final checkpoint opened in turn
    del final


def test_proof_for_a_checkpoint_that_has_not_opened_fails_and_phrases_are_the_services(
    stack: Stack, owner: Conn
) -> None:
    alice = f.user(owner, "alice")
    goal = f.goal(owner, alice, challenge=True)
    _, second, _ = f.checkpoint_ids(owner, goal)
    early = _text_submission(owner, stack, alice, second, "Chapter two, done early.", "e/early.md")
    answer = grade(early, as_user(alice)).json
    assert answer["status"] == "failed" and "has not opened yet" in answer["result"]["reason"]
    assert stack.gemini.calls == []
    # The owner can neither write a phrase nor turn the challenge off once the goal is active.
    claims = {"sub": str(alice), "role": "authenticated", "aud": "authenticated"}
    for statement, params in [
        ("update public.checkpoints set proof_phrase = 'my own words' where id = %s", [second]),
        ("update public.goals set proof_challenge = false where id = %s", [goal]),
    ]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_role("authenticated", claims) as conn:
            conn.execute(statement, params)
    assert owner.execute("select proof_challenge from public.goals where id = %s", [goal]).fetchone() == {
        "proof_challenge": True
    }
    # Without the challenge, no phrase is issued at all.
    plain = f.goal(owner, alice)
    assert set(_phrases(owner, plain)) == {None}


def test_the_witness_is_told_the_phrase_the_proof_must_show(stack: Stack, owner: Conn) -> None:
    alice = f.user(owner, "alice")
    witness = f.contact(owner, alice, email="wanda@example.com")
    submission = file_submission(
        owner, stack, alice, picture(61), referee="human_witness", witness=witness, challenge=True
    )
    assert grade(submission, as_user(alice)).json["status"] == "awaiting_witness"
    phrase = owner.execute(
        "select cp.proof_phrase from public.submissions s join public.checkpoints cp on cp.id = s.checkpoint_id"
        " where s.id = %s",
        [submission],
    ).fetchone()
    assert phrase is not None and phrase["proof_phrase"]
    [mail] = [m for m in stack.sendgrid.mails if stack.sendgrid.to(m) == ["wanda@example.com"]]
    assert f"The proof must show this phrase, chosen by us when the checkpoint opened: “{phrase['proof_phrase']}”." in (
        stack.sendgrid.text(mail)
    )


def test_an_owner_cannot_write_their_proofs_fingerprints(stack: Stack, owner: Conn) -> None:
    """The dodge: a row inserted with a made-up hash or capture time, or one edited after capture,
    to slip past the checks. Only the grader writes them."""
    alice = f.user(owner, "alice")
    checkpoint = f.checkpoint_ids(owner, f.goal(owner, alice))[0]
    claims = {"sub": str(alice), "role": "authenticated", "aud": "authenticated"}
    for column, value in [
        ("proof_phash", 12345),
        ("proof_taken_at", datetime.now(UTC)),
        ("proof_taken_zoned", True),
        ("proof_text_sha256", "0" * 64),
    ]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_role("authenticated", claims) as conn:
            conn.execute(
                f"insert into public.submissions (checkpoint_id, user_id, submission_type, file_path, {column})"
                " values (%s, %s, 'file', %s, %s)",
                [checkpoint, alice, f"{alice}/x.png", value],
            )
    graded = file_submission(owner, stack, alice, picture(71), path="g/1.png")
    assert grade(graded, as_user(alice)).json["status"] == "passed"
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_role("authenticated", claims) as conn:
        conn.execute("update public.submissions set proof_phash = 0 where id = %s", [graded])
    stored = owner.execute("select proof_phash from public.submissions where id = %s", [graded]).fetchone()
    assert stored is not None and stored["proof_phash"] is not None and stored["proof_phash"] != 0


def test_a_later_copy_never_sends_the_original_to_review(
    stack: Stack, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dodge turned on someone else: bob copies alice's photo while her grade waits out our
    outage. His copy goes to a person; her original, made first, is graded as usual."""
    monkeypatch.setenv("GEMINI_RETRY_ATTEMPTS", "1")
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    original = file_submission(owner, stack, alice, PHOTO, path="o/1.jpg")
    stack.gemini.default = 503
    assert grade(original, as_user(alice)).status_code == 503  # captured, then the grader was down
    stack.gemini.default = PASS
    copy = file_submission(owner, stack, bob, resized(PHOTO, (640, 480)), path="o/2.jpg")
    copied = grade(copy, as_user(bob)).json
    assert copied["status"] == "needs_review" and copied["result"]["reused"] is True
    assert matched(owner, copy) == original
    answer = grade(original, as_user(alice)).json
    assert answer["status"] == "passed"
    assert answer["result"]["checks"]["near_reuse"] == "clear"
