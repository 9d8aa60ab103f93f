-- =============================================================================
-- What the migration linter (squawk, in `make test`) found in applied migrations,
-- fixed here because applied files are never edited.
-- =============================================================================

-- 003's policy name was longer than PostgreSQL's 63-byte identifiers and was
-- silently cut short; it gets a name that fits. No client refers to a policy by name.
-- squawk-ignore renaming-object
alter policy "Users can see the teams of their goals and their own membership" on public.team_members rename to "Users see their goals' teams and their own memberships.";
