-- =============================================================================
-- No function in app or private is executable by PUBLIC. PostgreSQL grants
-- EXECUTE on every new function to PUBLIC, and a per-schema ALTER DEFAULT
-- PRIVILEGES (003) cannot take back a global default: every function was left
-- executable by anyone, held back only by the missing usage on the schema. The
-- default is revoked for the role that migrates, and from what exists. Each role
-- keeps exactly the grants sql/functions/ gives it (tests/test_function_grants.py
-- holds the catalogue to an explicit list).
-- =============================================================================
alter default privileges revoke execute on functions from public;
revoke execute on all functions in schema app from public;
revoke execute on all functions in schema private from public;
