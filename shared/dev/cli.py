"""The `threativator` console script: local database, migrations, tokens, dev stack."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import urllib.parse
from collections.abc import Callable, Sequence

# Development-only JWT secret. Settings refuse it when ENVIRONMENT=production.
DEV_JWT_SECRET = "threativator-dev-jwt-secret-not-for-production-use"  # noqa: S105 - refused in production
DEV_PORT = 8080


def _database_url(explicit: str | None) -> str:
    url = explicit or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set (or pass --database-url)")
    return url


def cmd_db(args: argparse.Namespace) -> int:
    from shared.dev import localdb

    if args.action == "start":
        print(localdb.start())
    elif args.action == "stop":
        print("stopped" if localdb.stop() else "not running")
    else:
        url = localdb.url()
        if url is None:
            print("the local database is not running; run `threativator db start`", file=sys.stderr)
            return 1
        print(url)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from shared.dev import migrate

    try:
        done = migrate.migrate(_database_url(args.database_url), local=args.local)
    except migrate.MigrationError as error:
        print(f"migrate: {error}", file=sys.stderr)
        return 1
    print(f"applied {len(done)} migration(s)" + (": " + ", ".join(done) if done else ""))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from shared.auth import mint_token
    from shared.config import ConfigError

    if args.role == "authenticated" and not args.user_id:
        print("token: a user token needs USER_ID", file=sys.stderr)
        return 2
    try:
        print(mint_token(args.user_id, role=args.role, ttl_seconds=args.ttl, email=args.email))
    except ConfigError as error:
        print(f"token: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    """Re-encrypt every vault item (kompromat, X tokens) to the newest key."""
    from shared.account import kompromat, x_oauth
    from shared.config import ConfigError, get_settings

    try:
        active = get_settings().active_kompromat_key_id()
    except ConfigError as error:
        print(f"rotate-keys: {error}", file=sys.stderr)
        return 1
    counts = {
        **kompromat.rotate_keys(active, args.batch_size),
        **x_oauth.rotate_keys(active, args.batch_size),
    }
    print(f"re-encrypted to key {active}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return 0


def cmd_reapply_erasures(args: argparse.Namespace) -> int:
    """After restoring a backup: erase again every account the erasure log names (restore runbook)."""
    from shared.account import leaving
    from shared.providers import storage

    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            tombstones = [line.strip() for line in handle if line.strip()]
    else:
        tombstones = storage.erasure_log()
    counts = leaving.reapply_erasures(tombstones)
    print(
        f"erasure log: {len(tombstones)} entries; {counts['erased']} account(s) erased again,"
        f" {counts['already_erased']} already gone"
    )
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    """Write (or, with --check, compare) openapi.json, generated from the functions."""
    from shared.dev import openapi

    text = openapi.render(openapi.build())
    if args.check:
        current = openapi.SPEC_PATH.read_text() if openapi.SPEC_PATH.exists() else ""
        if current != text:
            print("openapi.json is out of date; run `threativator openapi`", file=sys.stderr)
            return 1
        return 0
    if args.stdout:
        print(text, end="")
    else:
        openapi.SPEC_PATH.write_text(text)
        print(f"wrote {openapi.SPEC_PATH}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the scripted story against the running stack (`make dev` in another terminal)."""
    from shared.dev import demo, localdb

    url = os.environ.get("DATABASE_URL") or localdb.url()
    if url is None:
        print("demo: no database; start `make dev` first", file=sys.stderr)
        return 1
    _dev_defaults(url, urllib.parse.urlsplit(args.base_url).port or DEV_PORT)
    demo.run(args.base_url.rstrip("/"), fast=args.fast)
    return 0


def buckets_sql() -> str:
    """The proofs bucket, with the limits Storage enforces itself (no larger than the grader accepts,
    only the types it reads), and its policies: a user writes and reads only their own folder."""
    from psycopg import sql

    from shared.config import ConfigError, Settings, get_settings
    from shared.proof.capture import UPLOAD_MIME_TYPES

    try:
        name, limit = get_settings().submission_bucket, get_settings().grading_max_proof_bytes
    except ConfigError:
        # Printing the SQL (deploy.sh) needs no database or keys: only these two, or their defaults.
        fields = Settings.model_fields
        name = os.environ.get("SUBMISSION_BUCKET", str(fields["submission_bucket"].default))
        limit = int(os.environ.get("GRADING_MAX_PROOF_BYTES", str(fields["grading_max_proof_bytes"].default)))
    bucket = sql.Literal(name)
    statement = sql.SQL(
        """\
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ({bucket}, {bucket}, false, {limit}, {types})
on conflict (id) do update set public = false, file_size_limit = excluded.file_size_limit,
  allowed_mime_types = excluded.allowed_mime_types;
-- The erasure log's copy outside the database: private, no policy, so the service key alone reaches it.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('erasure-log', 'erasure-log', false, 1024, '{{text/plain}}')
on conflict (id) do update set public = false;
drop policy if exists "Users can upload proof into their own folder." on storage.objects;
create policy "Users can upload proof into their own folder."
  on storage.objects for insert to authenticated
  with check (bucket_id = {bucket} and (storage.foldername(name))[1] = (select auth.uid())::text);
drop policy if exists "Users can read their own proof." on storage.objects;
create policy "Users can read their own proof."
  on storage.objects for select to authenticated
  using (bucket_id = {bucket} and (storage.foldername(name))[1] = (select auth.uid())::text);
"""
    ).format(
        bucket=bucket,
        limit=sql.Literal(limit),
        types=sql.Literal(list(UPLOAD_MIME_TYPES)),
    )
    return statement.as_string(None)


# Supabase Database Webhooks: a submission's insert starts its grading, a queued notification's
# insert sends it. Supabase's payload shape; the URLs and the shared secret are read from Vault
# at fire time (`threativator vault-store`), so no secret is written into the schema, and the
# record carries only the row's id (the functions read the rest from the database). A webhook
# that cannot be sent never blocks the insert: the scheduler's pass is the safety net.
WEBHOOKS_SQL = """\
create or replace function app.database_webhook() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_url text;
  v_secret text;
begin
  select ds.decrypted_secret into v_url from vault.decrypted_secrets ds where ds.name = tg_argv[0];
  select ds.decrypted_secret into v_secret from vault.decrypted_secrets ds where ds.name = 'database_webhook_secret';
  if v_url is null or v_secret is null then
    return null;
  end if;
  perform net.http_post(
    url := v_url,
    body := jsonb_build_object('type', tg_op, 'table', tg_table_name, 'schema', tg_table_schema,
                               'record', jsonb_build_object('id', new.id), 'old_record', null),
    headers := jsonb_build_object('Content-Type', 'application/json', 'X-Webhook-Secret', v_secret),
    timeout_milliseconds := 5000);
  return null;
exception when others then
  raise warning 'database webhook % not sent: %', tg_argv[0], sqlerrm;
  return null;
end
$$;
revoke all on function app.database_webhook() from public;
drop trigger if exists submissions_grade_webhook on public.submissions;
create trigger submissions_grade_webhook after insert on public.submissions
  for each row execute function app.database_webhook('grade_submission_url');
drop trigger if exists notifications_send_webhook on public.notifications;
create trigger notifications_send_webhook after insert on public.notifications
  for each row when (new.status = 'queued') execute function app.database_webhook('send_notification_url');
"""


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Print (or install on DATABASE_URL) the two Database Webhooks."""
    if args.print_sql:
        print(WEBHOOKS_SQL, end="")
        return 0
    import psycopg

    with psycopg.connect(_database_url(None)) as conn:
        conn.execute(WEBHOOKS_SQL)
    print("Database Webhooks installed: submissions -> grade_submission, notifications -> send_notification")
    return 0


def cmd_buckets(args: argparse.Namespace) -> int:
    """Print (or apply to DATABASE_URL) the Storage bucket and its policies."""
    if args.print_sql:
        print(buckets_sql(), end="")
        return 0
    import psycopg

    with psycopg.connect(_database_url(None)) as conn:
        conn.execute(buckets_sql())
    print("proofs bucket and policies created")
    return 0


def cmd_vault_store(args: argparse.Namespace) -> int:
    """Store check_deadlines' URL and the service key in Supabase Vault for the pg_cron job."""
    import psycopg

    # Supabase's new secret key first (the first listed in SUPABASE_SECRET_KEYS); the legacy
    # service_role key only for a project that has no secret key yet.
    secret_keys = [k.strip() for k in os.environ.get("SUPABASE_SECRET_KEYS", "").split(",") if k.strip()]
    key = secret_keys[0] if secret_keys else os.environ.get("SUPABASE_SERVICE_ROLE_KEY")
    if not key:
        print(
            "vault-store: set SUPABASE_SECRET_KEYS (or, for a legacy project, SUPABASE_SERVICE_ROLE_KEY)",
            file=sys.stderr,
        )
        return 1
    values = [("check_deadlines_url", args.check_deadlines_url), ("check_deadlines_service_key", key)]
    webhook_secret = os.environ.get("DATABASE_WEBHOOK_SECRET")
    if args.grade_submission_url and args.send_notification_url and webhook_secret:
        values += [
            ("grade_submission_url", args.grade_submission_url),
            ("send_notification_url", args.send_notification_url),
            ("database_webhook_secret", webhook_secret),
        ]
    with psycopg.connect(_database_url(None)) as conn:
        for name, value in values:
            existing = conn.execute("select id from vault.secrets where name = %s", [name]).fetchone()
            if existing:
                conn.execute("select vault.update_secret(%s, %s)", [existing[0], value])
            else:
                conn.execute("select vault.create_secret(%s, %s)", [value, name])
    print("stored " + ", ".join(name for name, _ in values) + " in Vault")
    return 0


def cmd_stripe_webhook(args: argparse.Namespace) -> int:
    """Make Stripe's webhook endpoint at --url receive exactly the events the handler applies."""
    from shared.money.stripe_events import HANDLED_EVENTS

    events = list(HANDLED_EVENTS)
    print(f"Stripe webhook endpoint {args.url} receives: {' '.join(events)}")
    if args.print_events:
        return 0
    if not os.environ.get("STRIPE_SECRET_KEY"):
        print("stripe-webhook: STRIPE_SECRET_KEY is not set", file=sys.stderr)
        return 1
    from shared.providers import stripe_api

    endpoint_id, verb = stripe_api.upsert_webhook_endpoint(url=args.url, events=events)
    print(f"webhook endpoint {endpoint_id} {verb}")
    if verb == "created":
        print("store its signing secret (Stripe Dashboard -> Webhooks) as STRIPE_WEBHOOK_SECRET in Secret Manager")
    return 0


def cmd_seed(_: argparse.Namespace) -> int:
    from shared.dev.seed import seed_demo

    demo = seed_demo()
    print(f"demo user {demo['user_id']} ({demo['email']}), goal {demo['goal_id']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from shared.dev.devserver import serve

    serve(port=args.port)
    return 0


def _dev_secret(name: str, make: Callable[[], str]) -> str:
    """A secret for this machine's development data, made once and kept under .threativator/."""
    from shared.dev import localdb

    path = localdb.state_dir() / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _dev_kompromat_key() -> str:
    import base64
    import secrets

    return _dev_secret("dev-kompromat-key", lambda: "dev1:" + base64.b64encode(secrets.token_bytes(32)).decode())


def _dev_defaults(database_url: str, port: int = DEV_PORT) -> None:
    """Everything make dev needs to answer every function with no setting: providers without keys
    run dry, and the links and X's consent screen go to the dev server's own pages."""
    import secrets

    from shared.dev import localdb

    base = f"http://127.0.0.1:{port}"
    os.environ.setdefault("ENVIRONMENT", "development")
    os.environ.setdefault("KOMPROMAT_KEYS", _dev_kompromat_key())
    os.environ.setdefault("SUPABASE_URL", base)
    os.environ.setdefault("SUPABASE_JWT_SECRET", DEV_JWT_SECRET)
    os.environ.setdefault("DATABASE_URL", database_url)
    os.environ.setdefault("LINK_SIGNING_SECRET", _dev_secret("dev-link-signing-secret", lambda: secrets.token_hex(32)))
    os.environ.setdefault("APP_BASE_URL", f"{base}/app")
    os.environ.setdefault("DEV_STORAGE_DIR", str(localdb.state_dir() / "storage"))
    if not os.environ.get("X_CLIENT_ID"):
        os.environ.setdefault("X_AUTHORIZE_URL", f"{base}/app/x/authorize")
        os.environ.setdefault("X_REDIRECT_URI", f"{base}/app/x/callback")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_dev(args: argparse.Namespace) -> int:
    """Start the database, migrate, seed, print a token, and serve until Ctrl-C."""
    from shared.auth import mint_token
    from shared.config import get_settings
    from shared.dev import localdb, migrate
    from shared.dev.devserver import dev_cron_seconds, function_sources, provider_modes, serve
    from shared.dev.seed import seed_demo

    started_here = "DATABASE_URL" not in os.environ
    # A closed terminal (SIGHUP) or a process manager (SIGTERM) stops the stack as Ctrl-C does: the
    # database with it. Without this, Python dies at once on either and leaves PostgreSQL running.
    # SIGINT too: a process started in the background by a script inherits SIGINT ignored, and would
    # then never stop on Ctrl-C.
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _interrupt)
    url = localdb.start() if started_here else os.environ["DATABASE_URL"]
    _dev_defaults(url, args.port)
    try:
        applied = migrate.migrate(url, local=True)
        import psycopg

        with psycopg.connect(url) as conn:  # the proofs bucket and its limits, as `threativator buckets`
            conn.execute(buckets_sql())
        print(f"database ready under {localdb.state_dir()} ({len(applied)} new migration(s))")
        demo = seed_demo()
        token = mint_token(demo["user_id"], email=demo["email"], ttl_seconds=7 * 24 * 3600)
        operator_token = mint_token(
            demo["operator_id"],
            email=demo["operator_email"],
            app_metadata={"role": "operator"},
            ttl_seconds=7 * 24 * 3600,
        )
        base = f"http://127.0.0.1:{args.port}"
        cron = dev_cron_seconds()
        print("=" * 72)
        print("Threativator local stack")
        print("providers: " + ", ".join(f"{name} {mode}" for name, mode in provider_modes().items()))
        print(f"scheduler: check_deadlines every {cron:g}s (DEV_CRON_SECONDS)")
        print(f"operator page: {base}/    health: {base}/healthz")
        for name in function_sources():
            print(f"  {base}/{name}")
        settings = get_settings()
        origins = settings.allowed_origins()
        print("browser origins allowed (CORS_ORIGINS): " + (", ".join(origins) or "none"))
        print(f"emailed links open: {settings.app_base_url}/... (APP_BASE_URL)")
        print(f"X consent page: {settings.x_authorize_url}; X returns to {settings.x_redirect_uri}")
        print(f"demo user {demo['user_id']} <{demo['email']}>, goal {demo['goal_id']}")
        print(f"development JWT (7 days):\n{token}")
        print(f"operator console: {base}/operator_console, with this development operator token (7 days):")
        print(operator_token)
        print("=" * 72, flush=True)
        serve(port=args.port, scheduler_seconds=cron if cron > 0 else None, dev_jwt=token)
    except KeyboardInterrupt:
        pass
    finally:
        if started_here:
            localdb.stop()
            print("local database stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threativator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="manage the local embedded PostgreSQL")
    db.add_argument("action", choices=["start", "stop", "url"])
    db.set_defaults(func=cmd_db)

    mig = sub.add_parser("migrate", help="apply sql/ to DATABASE_URL")
    mig.add_argument("--local", action="store_true", help="apply sql/local/ first")
    mig.add_argument("--database-url", help="instead of DATABASE_URL")
    mig.set_defaults(func=cmd_migrate)

    tok = sub.add_parser("token", help="mint a development JWT signed with SUPABASE_JWT_SECRET")
    tok.add_argument("user_id", nargs="?", metavar="USER_ID")
    tok.add_argument("--role", choices=["authenticated", "service_role"], default="authenticated")
    tok.add_argument("--ttl", type=int, default=3600, metavar="SECONDS")
    tok.add_argument("--email")
    tok.set_defaults(func=cmd_token)

    rot = sub.add_parser("rotate-keys", help="re-encrypt vault items to the newest key")
    rot.add_argument("--batch-size", type=int, default=100)
    rot.set_defaults(func=cmd_rotate_keys)

    api = sub.add_parser("openapi", help="generate openapi.json from the functions")
    api.add_argument("--check", action="store_true", help="fail when the committed file differs")
    api.add_argument("--stdout", action="store_true")
    api.set_defaults(func=cmd_openapi)

    dem = sub.add_parser("demo", help="a narrated story against the running local stack")
    dem.add_argument("--base-url", default=f"http://127.0.0.1:{DEV_PORT}")
    dem.add_argument("--fast", action="store_true", help="wind the clock forward instead of waiting two minutes")
    dem.set_defaults(func=cmd_demo)

    rea = sub.add_parser("reapply-erasures", help="after a restore: erase again every account the erasure log names")
    rea.add_argument("--file", help="read the tombstone ids from this file (one per line) instead of Storage")
    rea.set_defaults(func=cmd_reapply_erasures)
    bkt = sub.add_parser("buckets", help="the Storage bucket for proof files and its policies")
    bkt.add_argument("--print-sql", action="store_true", help="print the SQL instead of applying it")
    bkt.set_defaults(func=cmd_buckets)

    vlt = sub.add_parser("vault-store", help="store check_deadlines' URL and the service key in Supabase Vault")
    vlt.add_argument("--check-deadlines-url", required=True)
    vlt.add_argument("--grade-submission-url", help="for the submissions Database Webhook")
    vlt.add_argument("--send-notification-url", help="for the notifications Database Webhook")
    vlt.set_defaults(func=cmd_vault_store)

    dbw = sub.add_parser("webhooks", help="the Supabase Database Webhooks for submissions and notifications")
    dbw.add_argument("--print-sql", action="store_true", help="print the SQL instead of applying it")
    dbw.set_defaults(func=cmd_webhooks)

    whk = sub.add_parser("stripe-webhook", help="configure Stripe's webhook endpoint with the handled events")
    whk.add_argument("--url", required=True, help="stripe_webhook's URL")
    whk.add_argument("--print-events", action="store_true", help="print the events and change nothing")
    whk.set_defaults(func=cmd_stripe_webhook)

    seed = sub.add_parser("seed", help="create the demo user, contacts and goal")
    seed.set_defaults(func=cmd_seed)

    srv = sub.add_parser("serve", help="serve every function on one port")
    srv.add_argument("--port", type=int, default=DEV_PORT)
    srv.set_defaults(func=cmd_serve)

    dev = sub.add_parser("dev", help="the whole local stack (what `make dev` runs)")
    dev.add_argument("--port", type=int, default=DEV_PORT)
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
