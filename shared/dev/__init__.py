"""Development tooling: the CLI, dev server, demo, seeding, local database, migrator, OpenAPI. Never deployed."""
