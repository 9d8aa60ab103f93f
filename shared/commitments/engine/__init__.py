"""trigger_consequence's core (the package: protocol, payout, humiliation): execute one consequence, exactly once.

1. Claim the row (pending -> executing, with a lease). A second caller gets the
   recorded result or a 409, never a second execution.
2. Carry it out:
   - monetary: a Stripe transfer to the charity's Connect account, idempotency
     key `consequence-<id>`, transfer group `goal_<goal id>`; the ledger forfeit
     is posted in the same transaction that records the transfer id. A retry
     first looks for the transfer by its group and metadata, so even past
     Stripe's 24-hour key window no money moves twice.
   - humiliation by email: one delivery row per verified target, written before
     the send; a row left `sending` by a crash is marked `uncertain` and never
     re-sent.
   - humiliation on X: the same delivery protocol around media upload + tweet.
3. Finish: completed, failed (permanent, with the reason), or pending again
   after an exponential backoff. The user is told, vaguely for humiliation.
"""

from shared.commitments.engine.protocol import ExecutionResult, TriggerRequest, execute

__all__ = ["ExecutionResult", "TriggerRequest", "execute"]
