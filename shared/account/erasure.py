"""The data map: what erasure (app.erase_user, sql/functions/erasure.sql) does to every table and
column, and why. tests/test_leaving.py fails when a table or column in the database has no rule
here, so a new one cannot be forgotten.

Each table says what happens to its rows of an erased account (`rows`), then every column is
either personal (with what erasure does to it) or a fact that is kept. Money and commitment facts
(amounts, dates, charities, Stripe ids, outcomes) are kept under the account's random tombstone
id for FINANCIAL_RECORD_RETENTION_YEARS; nothing that identifies the person is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Rows = Literal["delete", "keep", "not_personal"]
Action = Literal["delete", "redact", "rekey"]


@dataclass(frozen=True)
class Table:
    rows: Rows
    why: str
    personal: dict[str, tuple[Action, str]] = field(default_factory=dict)
    facts: frozenset[str] = frozenset()

    def columns(self) -> set[str]:
        return set(self.personal) | set(self.facts)


def _facts(names: str) -> frozenset[str]:
    return frozenset(names.split())


def _all(names: str, why: str) -> dict[str, tuple[Action, str]]:
    """Every column of a table whose rows erasure deletes."""
    return dict.fromkeys(names.split(), ("delete", why))


_REKEY: tuple[Action, str] = ("rekey", "follows the account to its tombstone id (on update cascade)")

DATA_MAP: dict[str, Table] = {
    "users": Table(
        "keep",
        "the tombstone: the money records point at it",
        {
            "id": ("rekey", "replaced by a random tombstone id"),
            "email": ("redact", "identifies the person"),
            "display_name": ("redact", "identifies the person"),
            "time_zone": ("redact", "reset to UTC: it narrows down where the person lives"),
            "unsubscribe_token_hash": ("redact", "a credential, no longer needed"),
            "leaving_requested_at": ("redact", "cleared when the account is erased"),
        },
        _facts("stripe_customer_id holding_cell_balance onboarding_completed mute_reminders created_at updated_at")
        | _facts("erased_at"),
    ),
    "kompromat": Table(
        "delete",
        "the most sensitive thing held: deleted (its data key with it), and destroyed"
        " KOMPROMAT_RETENTION_DAYS after it is last needed",
        {
            c: ("delete", "kompromat")
            for c in [
                "id",
                "user_id",
                "file_path",
                "original_filename",
                "file_type",
                "severity",
                "description",
                "encrypted_content",
                "key_id",
                "size_bytes",
                "created_at",
                "updated_at",
            ]
        },
    ),
    "contacts": Table(
        "delete",
        "other people's names and addresses",
        {
            c: ("delete", "a contact of the person")
            for c in [
                "id",
                "user_id",
                "name",
                "email",
                "role",
                "verified",
                "verified_at",
                "declined_at",
                "created_at",
                "updated_at",
                "verification_token_hash",
                "verification_expires_at",
            ]
        },
    ),
    "contact_suppressions": Table(
        "delete",
        "a declined mailbox: no one can write to it through an erased account anyway",
        _all("user_id mailbox declined_at", "a contact's mailbox"),
    ),
    "user_data_keys": Table(
        "delete",
        "the key kompromat is sealed under: destroyed, every copy of the ciphertext (backups too) stops opening",
        _all("user_id key_id wrapped created_at", "a key"),
    ),
    "x_connections": Table(
        "delete",
        "X tokens, revoked at X before erasure",
        {
            c: ("delete", "a credential")
            for c in [
                "user_id",
                "x_user_id",
                "access_token_sealed",
                "refresh_token_sealed",
                "key_id",
                "scope",
                "expires_at",
                "connected_at",
                "updated_at",
            ]
        },
    ),
    "x_oauth_states": Table(
        "delete",
        "a half-finished X connection",
        {
            c: ("delete", "a credential")
            for c in ["state_hash", "user_id", "code_verifier_sealed", "key_id", "expires_at", "created_at"]
        },
    ),
    "notifications": Table(
        "delete",
        "rendered words about the person (titles, names) and recipients",
        {
            c: ("delete", "about the person")
            for c in [
                "id",
                "type",
                "user_id",
                "recipient_contact_id",
                "subject_id",
                "dedupe_key",
                "template_data",
                "status",
                "attempts",
                "next_attempt_at",
                "lease_expires_at",
                "provider_message_id",
                "last_error",
                "created_at",
                "sent_at",
                "updated_at",
            ]
        },
    ),
    "submissions": Table(
        "delete",
        "proof: files (deleted from Storage), URLs, words and verdicts; the outcome lives on the checkpoint",
        {
            c: ("delete", "proof")
            for c in [
                "id",
                "checkpoint_id",
                "user_id",
                "submission_type",
                "file_path",
                "external_url",
                "description",
                "ai_analysis_result",
                "human_verdict",
                "status",
                "submitted_at",
                "graded_at",
                "updated_at",
                "vouched_by",
                "vouched_at",
                "captured_at",
                "proof_sha256",
                "proof_phash",
                "proof_taken_at",
                "proof_taken_zoned",
                "proof_text_sha256",
                "capture_blocked_at",
                "grading_attempts",
                "next_grading_at",
            ]
        },
    ),
    "proof_captures": Table(
        "delete",
        "the captured proof itself (cascade with its submission)",
        _all("submission_id content content_type sha256 captured_at", "proof"),
    ),
    "witness_requests": Table(
        "delete",
        "the witness's address link and comment (cascade with the submission)",
        {
            c: ("delete", "a witness's words")
            for c in ["id", "submission_id", "contact_id", "created_at", "expires_at", "used_at", "verdict", "comment"]
        },
    ),
    "proof_matches": Table(
        "delete",
        "which earlier proof a reuse check matched (cascade with the submission)",
        _all("submission_id earlier_submission_id check_name found_at", "a proof's match"),
    ),
    "grading_requests": Table(
        "delete",
        "rate-limit bookkeeping",
        _all("id user_id submission_id requested_at", "bookkeeping"),
    ),
    "team_members": Table(
        "delete",
        "memberships of other people's goals",
        _all("goal_id user_id created_at", "a membership"),
    ),
    "goals": Table(
        "keep",
        "the commitment and its stake (a money fact); drafts, never a commitment, are deleted",
        {
            "user_id": _REKEY,
            "title": ("redact", "the person's own words"),
            "description": ("redact", "the person's own words"),
            "grading_rubric": ("redact", "the person's own words"),
            "witness_contact_id": ("redact", "the contact is deleted"),
            "minor_kompromat_id": ("redact", "the kompromat is deleted"),
            "major_kompromat_id": ("redact", "the kompromat is deleted"),
        },
        _facts("id final_deadline referee_type monetary_stake charity_destination status activated_at closed_at")
        | _facts("created_at updated_at proof_challenge"),
    ),
    "checkpoints": Table(
        "keep",
        "the deadlines a consequence was for",
        {
            "title": ("redact", "the person's own words"),
            "description": ("redact", "the person's own words"),
            "requirements": ("redact", "the person's own words"),
        },
        _facts(
            "id goal_id deadline order_position status is_final completed_at missed_at created_at updated_at"
            " proof_phrase stake_cents"
        ),
    ),
    "consequences": Table(
        "keep",
        "what was charged or sent, and when: money and outcome facts",
        {
            "user_id": _REKEY,
            "kompromat_id": ("redact", "the kompromat is deleted"),
            "target_contact_id": ("redact", "the contact is deleted"),
            "contest_reason": ("redact", "the person's own words"),
            "decision_reason": ("redact", "may quote the person"),
            "last_error": ("redact", "may name a recipient"),
        },
        _facts("id checkpoint_id goal_id consequence_type monetary_amount charity_destination social_platform")
        | _facts("roulette_roll triggered_at executed_at execution_status attempts next_attempt_at")
        | _facts("lease_expires_at lease_owner provider_reference updated_at earmarked_cents execute_after")
        | _facts("contest_status contested_at decided_by decided_at deferred_reason"),
    ),
    "consequence_deliveries": Table(
        "keep",
        "that a delivery happened, and its provider reference",
        {
            "recipient": ("redact", "an address or handle"),
            "contact_id": ("redact", "the contact is deleted"),
            "last_error": ("redact", "may name the recipient"),
        },
        _facts("id consequence_id channel status provider_reference created_at updated_at"),
    ),
    "roulette_rolls": Table(
        "keep",
        "the draw behind a consequence",
        {"user_id": _REKEY},
        _facts("checkpoint_id goal_id draw odds_numerator odds_denominator outcome consequence_id rolled_at"),
    ),
    "goal_change_requests": Table(
        "keep",
        "how a commitment changed (the pending ones are deleted)",
        {"user_id": _REKEY, "change": ("redact", "may carry a new checkpoint's title")},
        _facts("id goal_id change_type status requested_at effective_at applied_at canceled_at outcome"),
    ),
    "holding_cells": Table(
        "keep",
        "money held (zero when erased)",
        {"user_id": _REKEY},
        _facts("available_cents reserved_cents forfeited_cents disputed_cents updated_at"),
    ),
    "ledger_entries": Table(
        "keep",
        "money facts",
        {"user_id": _REKEY},
        _facts("id entry_type amount_cents available_delta reserved_delta forfeited_delta disputed_delta goal_id")
        | _facts("consequence_id stripe_object_id reference created_at"),
    ),
    "withdrawals": Table(
        "keep", "money facts", {"user_id": _REKEY}, _facts("id amount_cents idempotency_key created_at updated_at")
    ),
    "withdrawal_refunds": Table(
        "keep",
        "money facts",
        {"user_id": _REKEY},
        _facts("id withdrawal_id payment_intent_id position amount_cents stripe_refund_id status last_error")
        | _facts("created_at updated_at"),
    ),
    "stripe_movements": Table(
        "keep",
        "the books",
        {"user_id": _REKEY},
        _facts("id reference source_id kind amount_cents fee_cents balance_transaction_id created_at"),
    ),
    "platform_entries": Table(
        "keep",
        "the books",
        {"user_id": _REKEY},
        _facts("id account amount_cents reference reason stripe_object_id goal_id consequence_id created_at"),
    ),
    "money_items": Table(
        "keep",
        "operators' money matters",
        {"user_id": _REKEY},
        _facts("id kind source_id cents stripe_cents ledger_cents details created_at resolved_at resolved_by")
        | _facts("resolution"),
    ),
    "disputes": Table(
        "keep",
        "a card dispute on a deposit: a money fact",
        {"user_id": _REKEY},
        _facts("id payment_intent_id amount_cents status opened_at closed_at"),
    ),
    "audit_log": Table(
        "keep",
        "what happened and when; a decision's words are dropped",
        {"user_id": _REKEY, "details": ("redact", "reasons and quoted words are removed")},
        _facts("id occurred_at actor entity entity_id action"),
    ),
    "master_keys": Table(
        "not_personal",
        "the master keys' ids and lifecycle (first seen, active, retired, destroy after); never key material",
        facts=_facts("key_id first_seen_at active_since retired_at destroy_after removed_at"),
    ),
    "erasure_log": Table(
        "not_personal",
        "an erased account's tombstone id and when, so a restore from a backup erases it again; names no one",
        facts=_facts("tombstone_id erased_at exported_at"),
    ),
    "stripe_events": Table(
        "not_personal",
        "Stripe event ids and types; a parked object is cleared when it is applied",
        facts=_facts("id type object_id received_at parked_on parked_object"),
    ),
    "reconciliation_runs": Table(
        "not_personal",
        "runs of the reconciliation",
        facts=_facts("id covered_from covered_until started_at finished_at transactions differences fees_booked error"),
    ),
    "dev_outbox": Table(
        "not_personal",
        "development only: never written in production",
        facts=_facts("id channel recipient summary payload created_at"),
    ),
}
