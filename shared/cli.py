"""The `threativator` console script: local database, migrations, tokens, dev stack."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Development-only JWT secret. Settings refuse it when ENVIRONMENT=production.
DEV_JWT_SECRET = "threativator-dev-jwt-secret-not-for-production-use"  # noqa: S105 - refused in production
DEV_PORT = 8080


def _database_url(explicit: str | None) -> str:
    url = explicit or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set (or pass --database-url)")
    return url


def cmd_db(args: argparse.Namespace) -> int:
    from shared import localdb

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
    from shared import migrate

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
    from shared import kompromat, x_oauth
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


def cmd_seed(_: argparse.Namespace) -> int:
    from shared.seed import seed_demo

    demo = seed_demo()
    print(f"demo user {demo['user_id']} ({demo['email']}), goal {demo['goal_id']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from shared.devserver import serve

    serve(port=args.port)
    return 0


def _dev_kompromat_key() -> str:
    """A vault key for this machine's development data, made once and kept under .threativator/."""
    import base64
    import secrets

    from shared import localdb

    path = localdb.state_dir() / "dev-kompromat-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("dev1:" + base64.b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def _dev_defaults(database_url: str) -> None:
    os.environ.setdefault("ENVIRONMENT", "development")
    os.environ.setdefault("KOMPROMAT_KEYS", _dev_kompromat_key())
    os.environ.setdefault("SUPABASE_URL", f"http://127.0.0.1:{DEV_PORT}")
    os.environ.setdefault("SUPABASE_JWT_SECRET", DEV_JWT_SECRET)
    os.environ.setdefault("DATABASE_URL", database_url)


def cmd_dev(args: argparse.Namespace) -> int:
    """Start the database, migrate, seed, print a token, and serve until Ctrl-C."""
    from shared import localdb, migrate
    from shared.auth import mint_token
    from shared.devserver import function_sources, serve
    from shared.seed import seed_demo

    started_here = "DATABASE_URL" not in os.environ
    url = localdb.start() if started_here else os.environ["DATABASE_URL"]
    _dev_defaults(url)
    try:
        applied = migrate.migrate(url, local=True)
        print(f"database ready under {localdb.state_dir()} ({len(applied)} new migration(s))")
        demo = seed_demo()
        token = mint_token(demo["user_id"], email=demo["email"], ttl_seconds=7 * 24 * 3600)
        print(f"demo user {demo['user_id']} <{demo['email']}>, goal {demo['goal_id']}")
        print(f"development JWT (7 days):\n{token}")
        base = f"http://127.0.0.1:{args.port}"
        for name in function_sources():
            print(f"  {base}/{name}")
        print(f"  {base}/healthz")
        serve(port=args.port)
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
