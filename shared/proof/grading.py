"""grade_submission's core: AI grading, the human witness, and vouching.

The submission, checkpoint, goal and rubric always come from the database;
nothing in the request body is trusted about them. A submission is claimed
for one grader (app.begin_grading), so concurrent requests make one model call
and record one result.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Discriminator, Field, Tag

from shared import db, links, notifications, webhooks
from shared.auth import Caller
from shared.config import get_settings
from shared.errors import ApiError, bad_request, conflict, forbidden, not_found, unauthorized, unavailable
from shared.log import get_logger
from shared.proof import capture as proof
from shared.proof import fingerprints, injection
from shared.providers.errors import ProviderRefused, ProviderUnavailable

_logger = get_logger("threativator.grading")
GRADED = frozenset({"passed", "failed", "needs_review", "awaiting_witness"})


class GradeRequest(BaseModel):
    action: Literal["grade"] = "grade"
    submission_id: UUID
    force: bool = Field(default=False, description="Re-grade a graded submission (service callers only)")


class WitnessVerdictRequest(BaseModel):
    action: Literal["witness_verdict"]
    token: str = Field(min_length=20, max_length=2000)
    verdict: Literal["pass", "fail"]
    comment: str | None = Field(default=None, max_length=1000)


class VouchRequest(BaseModel):
    action: Literal["vouch"]
    submission_id: UUID


class WitnessProofRequest(BaseModel):
    action: Literal["witness_proof"]
    token: str = Field(min_length=20, max_length=2000, description="Either of the witness's two links' token")


def _action(value: Any) -> str:
    if webhooks.is_webhook(value) or isinstance(value, webhooks.DatabaseWebhook):
        return "webhook"
    if isinstance(value, dict):
        return str(value.get("action", "grade"))
    return str(getattr(value, "action", "grade"))


GradingRequest = Annotated[
    Annotated[GradeRequest, Tag("grade")]
    | Annotated[WitnessVerdictRequest, Tag("witness_verdict")]
    | Annotated[VouchRequest, Tag("vouch")]
    | Annotated[WitnessProofRequest, Tag("witness_proof")]
    | Annotated[webhooks.DatabaseWebhook, Tag("webhook")],
    Discriminator(_action),
]


@dataclass
class Submission:
    """A submission as grading carries it through its helpers: the row, with its checkpoint and goal."""

    id: UUID
    user_id: UUID
    checkpoint_id: UUID
    submission_type: Literal["file", "url"]
    file_path: str | None
    external_url: str | None
    description: str | None
    status: str
    ai_analysis_result: dict[str, Any] | None
    human_verdict: str | None
    submitted_at: datetime
    graded_at: datetime | None
    captured_at: datetime | None
    proof_sha256: str | None
    proof_phash: int | None
    proof_taken_at: datetime | None
    proof_taken_zoned: bool | None
    proof_text_sha256: str | None
    deadline: datetime
    checkpoint_title: str
    requirements: str | None
    proof_phrase: str | None
    goal_title: str
    grading_rubric: str
    referee_type: str
    witness_contact_id: UUID | None
    activated_at: datetime | None
    proof_challenge: bool
    # What the reuse checks found, carried to the grader's prompt.
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The page's address or the file's Storage path, whichever the type says (the table's check
        constraint guarantees it is there)."""
        value = self.external_url if self.submission_type == "url" else self.file_path
        if value is None:
            raise RuntimeError(f"submission {self.id} has no {self.submission_type} to grade")
        return value


_SUBMISSION = """
select s.id, s.user_id, s.checkpoint_id, s.submission_type::text as submission_type, s.file_path, s.external_url,
       s.description, s.status::text as status, s.ai_analysis_result, s.human_verdict::text as human_verdict,
       s.submitted_at, s.graded_at, s.captured_at, s.proof_sha256, s.proof_phash, s.proof_taken_at,
       s.proof_taken_zoned, s.proof_text_sha256, cp.deadline, cp.title as checkpoint_title, cp.requirements,
       cp.proof_phrase, g.title as goal_title, g.grading_rubric, g.referee_type::text as referee_type,
       g.witness_contact_id, g.activated_at, g.proof_challenge
from public.submissions s join public.checkpoints cp on cp.id = s.checkpoint_id
join public.goals g on g.id = cp.goal_id where s.id = %s"""


class GradeResponse(BaseModel):
    submission_id: UUID
    status: str
    result: dict[str, Any] | None = None
    human_verdict: str | None = None
    graded_at: datetime | None = None
    cached: bool = False


class ProofShown(BaseModel):
    kind: Literal["file", "url"]
    source: str = Field(description="The page's address, or the file's name")
    sha256: str = Field(description="SHA-256 of the proof as captured when it was submitted")
    captured_at: datetime | None = None
    text: str | None = Field(default=None, description="The page's main text as captured, or the file's text")
    images: list[str] = Field(default_factory=list, description="Images as data: URLs, the bytes captured")


class WitnessProof(BaseModel):
    """What a witness's link shows before the verdict: the proof exactly as it was captured."""

    submission_id: UUID
    goal_title: str
    checkpoint_title: str
    deadline: datetime
    rubric: str
    requirements: str | None = None
    proof_phrase: str | None = Field(default=None, description="The phrase the proof must show, when the goal asks")
    submitted_at: datetime
    description: str | None = Field(default=None, description="What the user wrote with the proof")
    proof: ProofShown


def handle(
    body: GradeRequest | WitnessVerdictRequest | VouchRequest | WitnessProofRequest | webhooks.DatabaseWebhook,
    caller: Caller | None,
) -> GradeResponse | WitnessProof:
    if isinstance(body, WitnessVerdictRequest):
        return witness_verdict(body)
    if isinstance(body, WitnessProofRequest):
        return witness_proof(body)
    if isinstance(body, webhooks.DatabaseWebhook):
        # A submission was inserted: capture and grade it exactly as a service call would. A second
        # delivery finds it graded (or being graded) and changes nothing.
        submission_id = webhooks.inserted_id(body, caller, "submissions")
        try:
            return grade(submission_id, SERVICE)
        except ApiError as error:
            if error.status != 409:
                raise
            return _view(_load(submission_id), cached=True)
    if caller is None:
        raise unauthorized()
    if isinstance(body, VouchRequest):
        if caller.user_id is None:
            raise forbidden("vouching is done by a signed-in user")
        return vouch(body.submission_id, caller.user_id)
    return grade(body.submission_id, caller, force=body.force)


# -----------------------------------------------------------------------------
# Loading and recording
# -----------------------------------------------------------------------------
def _load(submission_id: UUID) -> Submission:
    from psycopg.rows import class_row

    with db.as_service() as conn:
        row = conn.cursor(row_factory=class_row(Submission)).execute(_SUBMISSION, [submission_id]).fetchone()
    if row is None:
        raise not_found("no such submission")
    return row


def _view(sub: Submission, cached: bool) -> GradeResponse:
    return GradeResponse(
        submission_id=sub.id,
        status=sub.status,
        result=sub.ai_analysis_result,
        human_verdict=sub.human_verdict,
        graded_at=sub.graded_at,
        cached=cached,
    )


def _record(submission_id: UUID, status: str, result: dict[str, Any] | None, *, force: bool = False) -> None:
    with db.as_service() as conn:
        conn.execute(
            "select app.record_grade(%s, %s, %s, null, %s)",
            [submission_id, status, db.Json(result) if result is not None else None, force],
        )


# -----------------------------------------------------------------------------
# Grading
# -----------------------------------------------------------------------------
def grade(submission_id: UUID, caller: Caller, *, force: bool = False) -> GradeResponse:
    sub = _load(submission_id)
    if not caller.is_service and sub.user_id != caller.user_id:
        raise not_found("no such submission")
    if force and not caller.is_service:
        raise forbidden("only the service can force a re-grade")
    if sub.status in GRADED and not force:
        return _view(sub, cached=True)
    if not caller.is_service:
        with db.as_service() as conn:
            conn.execute(
                "select app.note_grading_request(%s, %s, %s)",
                [sub.user_id, submission_id, get_settings().grading_requests_per_hour],
            )
    with db.as_service() as conn:
        claimed = conn.execute("select * from app.begin_grading(%s, %s)", [submission_id, force]).fetchone()
    if claimed is None or claimed["id"] is None:
        current = _load(submission_id)
        if current.status == "grading":
            raise conflict("this submission is being graded; ask again shortly")
        return _view(current, cached=True)
    try:
        try:
            evidence = _capture(sub)
        except ApiError as refused:
            # Proof that cannot be captured is the user's to fix before the deadline (422, with the
            # reason). After it, nobody can: a person decides, and the checkpoint waits for them.
            if refused.status != 422 or datetime.now(UTC) <= sub.deadline:
                raise
            status, result = _needs_review(sub, {"reason": f"{refused.message}; the deadline has passed"})
        else:
            status, result = _decide(sub, evidence)
        _record(submission_id, status, result, force=force)
    except BaseException:
        # Whatever stopped the grading, the submission goes back to pending, and the scheduler
        # re-grades it after a backoff (check_deadlines' regrading stage).
        _abort(submission_id)
        raise
    notifications.send_queued_about([submission_id, *_witness_request_ids(result)])
    return _view(_load(submission_id), cached=False)


def _witness_request_ids(result: dict[str, Any] | None) -> list[UUID]:
    request_id = (result or {}).get("witness_request_id")
    return [UUID(request_id)] if request_id else []


def _abort(submission_id: UUID) -> None:
    with db.as_service() as conn:
        conn.execute("select app.abort_grading(%s)", [submission_id])


SERVICE = Caller(role="service_role")


def regrade_due(deadline: float, limit: int = 100) -> dict[str, int]:
    """Re-grade submissions an outage left pending or stuck in grading, oldest first, each past its
    backoff, until `deadline` (time.monotonic()). A pass after the deadline completes the checkpoint
    as if graded in time: the on-time submission protected it meanwhile. Each submission is isolated."""
    import time

    with db.as_service() as conn:
        rows = conn.execute(
            "select s.id from public.submissions s join public.checkpoints cp on cp.id = s.checkpoint_id"
            " join public.goals g on g.id = cp.goal_id"
            " where g.status = 'active' and cp.status = 'pending'"
            " and ((s.status = 'pending' and (s.next_grading_at is null or s.next_grading_at <= now()))"
            "      or (s.status = 'grading' and s.updated_at < now() - interval '10 minutes'))"
            " order by s.submitted_at limit %s",
            [limit],
        ).fetchall()
    counts: dict[str, int] = {}
    for row in rows:
        if time.monotonic() > deadline:
            counts["deferred"] = counts.get("deferred", 0) + 1
            continue
        try:
            outcome = grade(row["id"], SERVICE).status
        except ApiError as error:
            outcome = "unavailable" if error.status == 503 else "refused"
        except Exception:
            _logger.exception("regrade failed", extra={"fields": {"submission_id": str(row["id"])}})
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _decide(sub: Submission, evidence: tuple[bytes, str] | None) -> tuple[str, dict[str, Any]]:
    """(status, result) for a claimed, captured submission."""
    if sub.submitted_at > sub.deadline:
        return "failed", {"outcome": "failed", "reason": "submitted after the checkpoint deadline"}
    late = _late_capture(sub)
    if late is not None:
        # Inserted in time, captured after the deadline (our webhook was slow, an instance was cold, a
        # provider was down): what we read now may not be what was there then, so a person compares.
        # Never the model, and the on-time insert protects the checkpoint meanwhile.
        return _needs_review(sub, {"reason": late})
    checks, found = _proof_checks(sub)
    if found is not None:
        # Proof is made for its checkpoint: the same or a near-identical capture seen before, or a
        # photo taken before the goal began, goes to a person with both proofs, before any model or
        # witness sees it. Never a fail on its own: a false match costs the user nothing.
        return _needs_review(sub, {**found, "checks": checks})
    sub.checks = checks
    if sub.referee_type == "human_witness":
        if not _witness_fell_silent(sub.id):
            return _ask_witness(sub, {"outcome": "awaiting_witness"})
        # The witness never answered: the captured proof is graded against the rubric instead, and
        # anything the grader doubts goes to a person. A referee's silence never costs the user.
        status, result = _ai_grade(sub, evidence)
        return status, {**result, "witness_fallback": True}
    return _ai_grade(sub, evidence)


def _proof_checks(sub: Submission) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Which reuse checks ran on the capture and what they found, and the first finding that sends
    it to a person (None when all are clear). Earlier proof is any submission made before this one,
    by anyone, except the same user's for this same checkpoint (a resubmission is no reuse). Only
    earlier ones count: a copy made later never sends the original to review."""
    checks: dict[str, str] = {}
    earlier_of = {
        "id": sub.id,
        "user_id": sub.user_id,
        "checkpoint_id": sub.checkpoint_id,
        "submitted_at": sub.submitted_at,
    }
    with db.as_service() as conn:
        # A match found by an earlier grading of this submission is found again, or is no more.
        conn.execute("delete from public.proof_matches where submission_id = %s", [sub.id])

        def earlier(column: str) -> UUID | None:
            if getattr(sub, column) is None:
                return None
            row = conn.execute(
                f"select id from public.submissions where {column} = %(value)s"  # noqa: S608
                f" and {fingerprints.EARLIER} order by submitted_at limit 1",
                {"value": getattr(sub, column), **earlier_of},
            ).fetchone()
            return row["id"] if row else None

        exact = earlier("proof_sha256")
        checks["exact_reuse"] = "not_run" if sub.proof_sha256 is None else "matched" if exact else "clear"
        if exact is not None:
            return checks, _reused(conn, sub, exact, "exact_reuse", "this proof was already submitted before")
        if sub.proof_phash is None:
            checks["near_reuse"] = "not_run" if sub.proof_sha256 is None else "not_an_image_we_hash"
        else:
            bits = get_settings().proof_similarity_bits
            near = conn.execute(
                fingerprints.NEAR_QUERY, fingerprints.near_query_params(sub.proof_phash, bits, **earlier_of)
            ).fetchone()
            checks["near_reuse"] = f"matched ({near['distance']} of 64 bits differ)" if near else "clear"
            if near is not None:
                return checks, _reused(
                    conn, sub, near["id"], "near_reuse", "a near-identical image was already submitted before"
                )
        if sub.submission_type == "url":
            page = earlier("proof_text_sha256")
            checks["page_content"] = (
                "too_little_text_to_compare" if sub.proof_text_sha256 is None else "matched" if page else "clear"
            )
            if page is not None:
                return checks, _reused(
                    conn, sub, page, "page_content", "a page with the same text was already submitted before"
                )
    stamp = sub.proof_taken_at
    if stamp is None:
        checks["capture_time"] = "no_exif_time"
        return checks, None
    # A stamp stored without knowing its zone is read as unzoned: the cautious reading.
    if sub.activated_at is not None and fingerprints.taken_before(stamp, bool(sub.proof_taken_zoned), sub.activated_at):
        checks["capture_time"] = "before_activation"
        return checks, {
            "reason": "the photo's own capture time is before the goal began; a person will look at it",
            "stale": {"taken_at": stamp.isoformat(), "activated_at": sub.activated_at.isoformat()},
        }
    checks["capture_time"] = "after_activation"
    return checks, None


def _reused(conn: db.Connection, sub: Submission, earlier: UUID, check: str, what: str) -> dict[str, Any]:
    """The finding the owner reads says the proof was seen before, never whose: the earlier
    submission goes to `proof_matches`, which only the service (operator_review) reads."""
    conn.execute(
        "insert into public.proof_matches (submission_id, earlier_submission_id, check_name) values (%s, %s, %s)"
        " on conflict (submission_id) do update set earlier_submission_id = excluded.earlier_submission_id,"
        " check_name = excluded.check_name, found_at = now()",
        [sub.id, earlier, check],
    )
    return {"reason": f"{what}; a person will look at it", "reused": True}


def _witness_fell_silent(submission_id: UUID) -> bool:
    with db.as_service() as conn:
        found = conn.execute(
            "select 1 from public.witness_requests"
            " where submission_id = %s and used_at is null and expires_at <= now()",
            [submission_id],
        ).fetchone()
    return found is not None


def witness_fallback_due(limit: int = 100) -> int:
    """Witness requests unanswered for WITNESS_RESPONSE_HOURS: the link dies and the submission goes
    back to pending, so the regrading stage grades its captured proof instead. Returns how many."""
    hours = get_settings().witness_response_hours
    with db.as_service() as conn:
        rows = conn.execute(
            "with silent as (select w.id, w.submission_id from public.witness_requests w"
            " join public.submissions s on s.id = w.submission_id"
            " where s.status = 'awaiting_witness' and w.used_at is null"
            " and w.created_at < now() - %s * interval '1 hour' order by w.created_at limit %s for update of w),"
            " expired as (update public.witness_requests w set expires_at = now() from silent"
            " where w.id = silent.id returning w.id, w.submission_id, w.contact_id)"
            " update public.submissions s set status = 'pending', next_grading_at = null from expired"
            " where s.id = expired.submission_id and s.status = 'awaiting_witness'"
            " returning s.id, s.user_id, expired.id as request_id, expired.contact_id",
            [hours, limit],
        ).fetchall()
        for row in rows:
            conn.execute(
                "select app.audit('submission', %s, 'witness_silent', %s, '{}'::jsonb)", [row["id"], row["user_id"]]
            )
            # Both sides are told, in the transaction that replaces the witness.
            conn.execute(
                "select app.queue_notification('submission_result', %s, %s, %s, null, %s)",
                [
                    row["user_id"],
                    row["id"],
                    db.Json({"submission_id": str(row["id"]), "outcome": "witness_silent"}),
                    f"submission_result:witness_silent:{row['id']}",
                ],
            )
            conn.execute(
                "select app.queue_notification('witness_request', %s, %s, %s, %s, %s)",
                [
                    row["user_id"],
                    row["request_id"],
                    db.Json(
                        {
                            "submission_id": str(row["id"]),
                            "request_id": str(row["request_id"]),
                            "contact_id": str(row["contact_id"]),
                            "replaced": True,
                        }
                    ),
                    row["contact_id"],
                    f"witness_request:replaced:{row['request_id']}",
                ],
            )
    return len(rows)


def _late_capture(sub: Submission) -> str | None:
    """Why a proof captured after its deadline needs a person, or None when it is as on time: a
    Storage file whose object was last written before the deadline is the file that was there then."""
    if sub.captured_at is None or sub.captured_at <= sub.deadline:
        return None
    if sub.submission_type == "url":
        return "the page was captured after the deadline (it may have changed since); a person compares"
    with db.as_service() as conn:
        found = conn.execute(
            "select greatest(created_at, updated_at) as modified from storage.objects"
            " where bucket_id = %s and name = %s",
            [get_settings().submission_bucket, sub.source],
        ).fetchone()
    modified = found["modified"] if found else None
    if modified is not None and modified <= sub.deadline:
        return None
    if modified is None:
        return "the proof was captured after the deadline and Storage has no record of when it was written"
    return "the file was captured after the deadline and changed after it; a person compares"


def _needs_review(sub: Submission, result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Low confidence, suspicion or a refusal: a person reviews it. Never the owner-chosen witness,
    who could pass proof the grader refused; the owner may also resubmit before the deadline."""
    return "needs_review", {**result, "outcome": "needs_review"}


def _ai_grade(sub: Submission, fresh: tuple[bytes, str] | None) -> tuple[str, dict[str, Any]]:
    from shared.providers import gemini

    settings = get_settings()
    if gemini.dry():
        return "needs_review", {"outcome": "needs_review", "reason": "grader not configured"}
    try:
        evidence = _from_capture(sub, fresh)
    except proof.ProofRefused as refused:
        return _needs_review(sub, {"reason": str(refused)})
    checks = dict(sub.checks or {})
    phrase = sub.proof_phrase if sub.proof_challenge else None
    if sub.proof_challenge:
        checks["challenge_phrase"] = "asked of the grader" if phrase else "not issued: the checkpoint has not opened"
    base = {
        "model": settings.gemini_model,
        "prompt_version": gemini.PROMPT_VERSION,
        "proof_sha256": evidence.sha256,
        "checks": checks,
    }
    if sub.proof_challenge and phrase is None:
        # Proof for a checkpoint that has not opened cannot show its phrase: resubmit once it opens.
        return "failed", {
            **base,
            "outcome": "failed",
            "reason": "this checkpoint has not opened yet, so it has no challenge phrase; submit again once it opens",
        }
    suspected = injection.suspicious(evidence)
    try:
        verdict = gemini.judge(sub.grading_rubric, sub.requirements, evidence, phrase=phrase, checks=checks)
        if verdict is None:  # malformed output: one more try
            verdict = gemini.judge(sub.grading_rubric, sub.requirements, evidence, phrase=phrase, checks=checks)
    except gemini.GraderUnavailable:
        raise unavailable(
            "the grader is unavailable; the submission stays pending, try again shortly", retry_after_seconds=30
        ) from None
    except gemini.GraderRefused as refused:
        return _needs_review(sub, {**base, "reason": str(refused)})
    if verdict is None:
        return _needs_review(sub, {**base, "reason": "the grader's answer was malformed"})
    result = {**base, **verdict.model_dump(), "injection_suspected": suspected}
    if verdict.instructions_in_proof or suspected:
        # Proof that talks to the grader never passes on the AI's word.
        if verdict.passed:
            return _needs_review(sub, {**result, "reason": "the proof appears to address the grader"})
        return "failed", {**result, "outcome": "failed"}
    if phrase is not None:
        shown = _phrase_in(phrase, evidence.text) or verdict.phrase_shown is True
        checks["challenge_phrase"] = "shown" if shown else "missing"
        if not shown:
            return "failed", {
                **result,
                "passed": False,
                "outcome": "failed",
                "reason": f"the proof does not show this checkpoint's challenge phrase “{phrase}”",
            }
    if verdict.confidence < settings.grading_confidence_threshold:
        return _needs_review(sub, {**result, "reason": "the grader was not confident"})
    status = "passed" if verdict.passed else "failed"
    return status, {**result, "outcome": status}


def _phrase_in(phrase: str, text: str | None) -> bool:
    """The phrase appears in a text proof, ignoring case, spacing and punctuation between its words."""
    if not text:
        return False
    words = re.findall(r"[0-9a-z]+", phrase.casefold())
    return re.search(r"[^0-9a-z]+".join(words), text.casefold()) is not None


# -----------------------------------------------------------------------------
# Capture: what the proof was when it was submitted
# -----------------------------------------------------------------------------
def _download(path: str) -> bytes:
    from shared.providers import storage

    try:
        return storage.download(path)
    except ProviderUnavailable:
        raise unavailable("proof storage is unavailable; try again shortly") from None
    except ProviderRefused:
        raise proof.ProofRefused("the proof file could not be read from storage") from None


def _capture(sub: Submission) -> tuple[bytes, str] | None:
    """Capture the proof the first time a submission is graded: a URL's page is stored with its
    SHA-256, a file's SHA-256 recorded. Returns (bytes, content type) as read now, or None when it
    was captured before. A capture that fails is answered at once (422 with the reason) so the user can fix it
    in time; one that fails because a provider is down marks the attempt (an outage of ours never
    costs the user their checkpoint) and answers 503."""
    if sub.proof_sha256 is not None:
        return None
    try:
        if sub.submission_type == "url":
            body, content_type = proof.fetch_raw(sub.source)
        else:
            body, content_type = _download(sub.source), ""
    except proof.ProofRefused as refused:
        raise ApiError(422, "proof_capture_failed", f"the proof could not be captured: {refused}") from None
    except ApiError as error:
        if error.status == 503:
            with db.as_service() as conn:
                conn.execute(
                    "update public.submissions set capture_blocked_at = coalesce(capture_blocked_at, now())"
                    " where id = %s",
                    [sub.id],
                )
        raise
    digest = hashlib.sha256(body).hexdigest()
    try:
        if sub.submission_type == "url":
            fingerprint = fingerprints.of_page(sub.source, body, content_type)
        else:
            fingerprint = fingerprints.of_file(sub.source, body)
    except proof.ProofRefused as refused:
        # Nothing is recorded: the user uploads a sound file and asks again.
        raise ApiError(422, "proof_capture_failed", f"the proof could not be captured: {refused}") from None
    with db.as_service() as conn:
        captured = conn.execute(
            "update public.submissions set captured_at = coalesce(captured_at, now()), proof_sha256 = %s,"
            " proof_phash = %s, proof_taken_at = %s, proof_taken_zoned = %s, proof_text_sha256 = %s"
            " where id = %s returning captured_at",
            [
                digest,
                fingerprint.phash,
                fingerprint.taken_at,
                fingerprint.taken_at_zoned if fingerprint.taken_at else None,
                fingerprint.text_sha256,
                sub.id,
            ],
        ).fetchone()
        if sub.submission_type == "url":
            conn.execute(
                "insert into public.proof_captures (submission_id, content, content_type, sha256)"
                " values (%s, %s, %s, %s) on conflict (submission_id) do nothing",
                [sub.id, body, content_type, digest],
            )
    sub.captured_at, sub.proof_sha256 = (captured or {}).get("captured_at"), digest
    sub.proof_phash, sub.proof_text_sha256 = fingerprint.phash, fingerprint.text_sha256
    sub.proof_taken_at, sub.proof_taken_zoned = fingerprint.taken_at, fingerprint.taken_at_zoned
    return body, content_type


def _from_capture(sub: Submission, fresh: tuple[bytes, str] | None) -> proof.Proof:
    """The proof as captured: just now, the stored page, or the file if it is still the one captured."""
    if fresh is not None:
        body, content_type = fresh
        if sub.submission_type == "url":
            return proof.from_page(sub.source, body, content_type)
        return proof.from_file(sub.source, body)
    if sub.submission_type == "url":
        with db.as_service() as conn:
            page = conn.execute(
                "select content, content_type from public.proof_captures where submission_id = %s", [sub.id]
            ).fetchone()
        if page is None:
            raise proof.ProofRefused("the captured page is missing")
        return proof.from_page(sub.source, bytes(page["content"]), page["content_type"])
    data = _download(sub.source)
    if hashlib.sha256(data).hexdigest() != sub.proof_sha256:
        raise proof.ProofRefused("the proof file was changed after it was submitted")
    return proof.from_file(sub.source, data)


# -----------------------------------------------------------------------------
# The human witness
# -----------------------------------------------------------------------------
def _ask_witness(sub: Submission, result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    with db.as_service() as conn:
        witness = conn.execute(
            "select id, verified, declined_at from public.contacts where id = %s", [sub.witness_contact_id]
        ).fetchone()
        if witness is None or not witness["verified"] or witness["declined_at"] is not None:
            raise conflict("the goal's witness has not confirmed their address")
        expires = datetime.now(UTC) + timedelta(hours=get_settings().witness_link_ttl_hours)
        request = conn.execute(
            "insert into public.witness_requests (submission_id, contact_id, expires_at) values (%s, %s, %s)"
            " on conflict (submission_id) do update set expires_at = excluded.expires_at"
            " where public.witness_requests.used_at is null returning id",
            [sub.id, witness["id"], expires],
        ).fetchone()
        if request is not None:
            # The witness's email is queued with the request it carries the links of.
            conn.execute(
                "select app.queue_notification('witness_request', %s, %s, %s, %s)",
                [
                    sub.user_id,
                    request["id"],
                    db.Json(
                        {
                            "submission_id": str(sub.id),
                            "request_id": str(request["id"]),
                            "contact_id": str(witness["id"]),
                        }
                    ),
                    witness["id"],
                ],
            )
    if request is None:
        raise conflict("the witness has already given a verdict")
    return "awaiting_witness", {**result, "witness_request_id": str(request["id"])}


def witness_verdict(body: WitnessVerdictRequest) -> GradeResponse:
    try:
        claims = links.read_witness_token(body.token)
    except links.LinkError as error:
        raise bad_request(str(error), code="invalid_token") from None
    if claims["verdict"] != body.verdict:
        raise bad_request("this link is for the other verdict", code="invalid_token")
    submission_id = UUID(claims["sub"])
    with db.as_service() as conn:
        row = conn.execute(
            "select * from app.record_witness_verdict(%s, %s, %s, %s)",
            [UUID(claims["jti"]), submission_id, body.verdict, body.comment],
        ).fetchone()
    assert row is not None
    notifications.send_queued_about([submission_id])
    return _view(_load(submission_id), cached=False)


def witness_proof(body: WitnessProofRequest) -> WitnessProof:
    """The proof behind an open witness link, as it was captured: never the live page or a file
    replaced since (a changed file is refused, as the grader refuses it)."""
    try:
        claims = links.read_witness_token(body.token)
    except links.LinkError as error:
        raise bad_request(str(error), code="invalid_token") from None
    submission_id = UUID(claims["sub"])
    with db.as_service() as conn:
        request = conn.execute(
            "select used_at, expires_at <= now() as expired from public.witness_requests"
            " where id = %s and submission_id = %s",
            [UUID(claims["jti"]), submission_id],
        ).fetchone()
    if request is None:
        raise bad_request("this witness link is not valid", code="invalid_token")
    sub = _load(submission_id)
    if request["used_at"] is not None or request["expired"] or sub.status != "awaiting_witness":
        raise ApiError(409, "link_closed", "this witness link was already used or is no longer open")
    try:
        shown = show_captured(sub)  # a storage outage is a 503 with Retry-After (_download)
    except proof.ProofRefused as refused:
        raise ApiError(409, "proof_unavailable", f"the proof cannot be shown: {refused}") from None
    return WitnessProof(
        submission_id=submission_id,
        goal_title=sub.goal_title,
        checkpoint_title=sub.checkpoint_title,
        deadline=sub.deadline,
        rubric=sub.grading_rubric,
        requirements=sub.requirements,
        proof_phrase=sub.proof_phrase,
        submitted_at=sub.submitted_at,
        description=sub.description,
        proof=shown,
    )


def show_captured(sub: Submission) -> ProofShown:
    """A submission's proof as it was captured, for a person to judge (a witness, an operator): the
    stored page's text, images as data: URLs of the bytes captured, a file only while its SHA-256 is
    the one recorded. Raises proof.ProofRefused when it cannot be shown."""
    import base64

    shown = _from_capture(sub, None)
    return ProofShown(
        kind=sub.submission_type,
        # The file's own name: its path begins with the owner's id, which a witness has no need of.
        source=sub.source if sub.submission_type == "url" else sub.source.rsplit("/", 1)[-1],
        sha256=shown.sha256,
        captured_at=sub.captured_at,
        text=shown.text,
        images=[f"data:{mime};base64,{base64.b64encode(data).decode()}" for data, mime in shown.blobs],
    )


def load(submission_id: UUID) -> Submission:
    """One submission with its checkpoint and goal (404 when unknown): for the service's own views."""
    return _load(submission_id)


# -----------------------------------------------------------------------------
# Vouching
# -----------------------------------------------------------------------------
def vouch(submission_id: UUID, voucher: UUID) -> GradeResponse:
    """The voucher learns that a person will look, and nothing of the owner's proof or its grading."""
    with db.as_service() as conn:
        conn.execute("select app.record_vouch(%s, %s, %s)", [submission_id, voucher, get_settings().vouches_per_day])
    notifications.send_queued_about([submission_id])
    return GradeResponse(submission_id=submission_id, status="needs_review", result={"vouched_by": str(voucher)})
