"""Commitments: deadlines and what follows from them.

Owns the scheduler's pass (`deadlines`), goal changes under the notice period (`goal_changes`),
contests (`contests`), the human review queue (`review`), and the consequence engine (`engine`).
The top domain: it may use money, proof and account; nothing below imports it."""
