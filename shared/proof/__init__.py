"""Proof: what a user submits, captured, fingerprinted and graded.

Owns capture and safe decoding (`capture`), the reuse and capture-time fingerprints
(`fingerprints`), the injection scan (`injection`), and grading by the model or a witness, with
vouches (`grading`). Depends only on the infrastructure and the providers."""
