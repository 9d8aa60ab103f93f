"""Money: the holding cell and everything that moves through it.

Owns deposits and withdrawals (`holding_cell`), Stripe's events as the ledger books them
(`stripe_events`), and the daily reconciliation with Stripe's balance transactions
(`reconciliation`). The ledger's rules themselves are SQL functions (`sql/functions/ledger.sql`,
`books.sql`): this package calls them, it never moves a total itself. Depends only on the
infrastructure and the providers."""
