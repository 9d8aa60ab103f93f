#!/usr/bin/env bash
# Deploys Threativator to Google Cloud Functions (gen2) and a Supabase database.
#
#   ./deploy.sh [--dry-run] --project P --region R [--only FUNCTION]
#
# --dry-run runs only read-only checks and prints every command that would
# change something. Secrets live in Secret Manager and reach the functions
# through --set-secrets; none is ever put on a command line or in a file here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${ROOT}/build/functions"
UV="${ROOT}/.venv/bin/uv"
THREATIVATOR="${ROOT}/.venv/bin/threativator"
RUNTIME="python312"
GCLOUD="${GCLOUD:-gcloud}"

# name | extras | min instances | timeout (s) | memory | access
FUNCTIONS="
grade_submission|grading,email,vault|0|120|1Gi|public
trigger_consequence|stripe,email,vault,x,gcp|0|300|512Mi|private
send_notification|email,gcp|0|60|256Mi|public
check_deadlines|grading,email,vault,gcp,stripe,x|0|540|1Gi|public
holding_cell|stripe|1|60|256Mi|public
stripe_webhook|stripe|1|60|256Mi|public
upload_kompromat|vault|0|60|512Mi|public
connect_x|x,vault|0|60|256Mi|public
contest_consequence|email|0|60|256Mi|public
operator_review|email,grading,stripe|0|60|512Mi|public
operator_console||0|30|256Mi|public
change_goal|email|0|60|256Mi|public
delete_account|email|0|60|256Mi|public
"

# Secret Manager secret -> environment variable, per function.
# SUPABASE_SECRET_KEYS: Supabase's sb_secret_ keys, which service callers present (pg_cron, the
# scheduler's dispatch, the Database Webhooks' vault-store). SUPABASE_JWT_SECRET is the legacy HS256
# secret: given to every function only when the project still has one (JWKS-only projects don't).
COMMON_SECRETS="DATABASE_URL SUPABASE_SECRET_KEYS"
OPTIONAL_SECRETS="SUPABASE_JWT_SECRET"
declare -A SECRETS=(
  [grade_submission]="GEMINI_API_KEY SENDGRID_API_KEY LINK_SIGNING_SECRET DATABASE_WEBHOOK_SECRET"
  [trigger_consequence]="STRIPE_SECRET_KEY SENDGRID_API_KEY KOMPROMAT_KEYS X_CLIENT_SECRET"
  [send_notification]="SENDGRID_API_KEY LINK_SIGNING_SECRET DATABASE_WEBHOOK_SECRET"
  [check_deadlines]="GEMINI_API_KEY SENDGRID_API_KEY LINK_SIGNING_SECRET STRIPE_SECRET_KEY KOMPROMAT_KEYS X_CLIENT_SECRET"
  [holding_cell]="STRIPE_SECRET_KEY"
  [stripe_webhook]="STRIPE_WEBHOOK_SECRET"
  [upload_kompromat]="KOMPROMAT_KEYS"
  [connect_x]="KOMPROMAT_KEYS X_CLIENT_SECRET"
  [contest_consequence]="SENDGRID_API_KEY LINK_SIGNING_SECRET"
  [operator_review]="SENDGRID_API_KEY LINK_SIGNING_SECRET STRIPE_SECRET_KEY"
  [operator_console]=""
  [change_goal]="SENDGRID_API_KEY LINK_SIGNING_SECRET"
  [delete_account]="SENDGRID_API_KEY LINK_SIGNING_SECRET"
)
# Settings read from this environment (not secret); each is required.
REQUIRED_SETTINGS="SUPABASE_URL APP_BASE_URL CORS_ORIGINS X_CLIENT_ID X_REDIRECT_URI CHARITY_ACCOUNTS"

DRY_RUN=0
PROJECT=""
REGION=""
ONLY=""

die() { echo "deploy.sh: $*" >&2; exit 1; }

usage() {
  sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --project) PROJECT="${2:-}"; shift 2 ;;
    --region) REGION="${2:-}"; shift 2 ;;
    --only) ONLY="${2:-}"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "deploy.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done

[[ -n "$PROJECT" ]] || die "--project is required"
[[ -n "$REGION" ]] || die "--region is required"
if [[ -n "$ONLY" ]] && ! grep -q "^${ONLY}|" <<<"$FUNCTIONS"; then
  die "--only: no function named ${ONLY}"
fi

# Runs a command that changes something, or prints it under --dry-run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "$DRY_RUN" -eq 0 ]]; then
    "$@"
  fi
}

# ---------------------------------------------------------------------------
# Preflight: tools, settings, secrets. Read-only; runs under --dry-run too.
# ---------------------------------------------------------------------------
command -v "$GCLOUD" >/dev/null 2>&1 || die "gcloud is not installed (https://cloud.google.com/sdk/docs/install)"
[[ -x "$UV" && -x "$THREATIVATOR" ]] || die "the project is not installed here; run 'make install' first"
for setting in $REQUIRED_SETTINGS; do
  [[ -n "${!setting:-}" ]] || die "setting ${setting} is not set in the environment"
done

needed_secrets() {
  local all="$COMMON_SECRETS" name
  for name in "${!SECRETS[@]}"; do all="$all ${SECRETS[$name]}"; done
  tr ' ' '\n' <<<"$all" | sed '/^$/d' | sort -u
}
for secret in $(needed_secrets); do
  "$GCLOUD" secrets describe "$secret" --project="$PROJECT" --format="value(name)" >/dev/null 2>&1 \
    || die "secret ${secret} is missing from Secret Manager in ${PROJECT}"
done
PRESENT_OPTIONAL=""
for secret in $OPTIONAL_SECRETS; do
  if "$GCLOUD" secrets describe "$secret" --project="$PROJECT" --format="value(name)" >/dev/null 2>&1; then
    PRESENT_OPTIONAL="${PRESENT_OPTIONAL:+${PRESENT_OPTIONAL} }${secret}"
  fi
done

FUNCTIONS_SA="threativator-functions@${PROJECT}.iam.gserviceaccount.com"
SCHEDULER_SA="threativator-scheduler@${PROJECT}.iam.gserviceaccount.com"
url_of() { echo "https://${REGION}-${PROJECT}.cloudfunctions.net/$1"; }

# ---------------------------------------------------------------------------
# Service accounts, created once; the functions' one may read the secrets.
# ---------------------------------------------------------------------------
for sa in threativator-functions threativator-scheduler; do
  if ! "$GCLOUD" iam service-accounts describe "${sa}@${PROJECT}.iam.gserviceaccount.com" \
      --project="$PROJECT" >/dev/null 2>&1; then
    run "$GCLOUD" iam service-accounts create "$sa" --project="$PROJECT" --display-name="Threativator ${sa#threativator-}"
  fi
done
for secret in $(needed_secrets) $PRESENT_OPTIONAL; do
  run "$GCLOUD" secrets add-iam-policy-binding "$secret" --project="$PROJECT" \
    --member="serviceAccount:${FUNCTIONS_SA}" --role="roles/secretmanager.secretAccessor" --quiet
done

# ---------------------------------------------------------------------------
# Staging: one bundle per function with its main.py, a copy of shared/ without
# the development tooling (shared/dev/), and a requirements.txt pinned from
# uv.lock with only the groups it uses.
# ---------------------------------------------------------------------------
stage() {
  local name="$1" extras="$2" dir="${BUILD}/$1" extra_args=() group
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "${ROOT}/functions/${name}/main.py" "$dir/main.py"
  cp -R "${ROOT}/shared" "$dir/shared"
  rm -rf "$dir/shared/dev"
  find "$dir/shared" -name '__pycache__' -type d -prune -exec rm -rf {} +
  IFS=',' read -r -a groups <<<"$extras"
  for group in "${groups[@]}"; do
    if [[ -n "$group" ]]; then extra_args+=(--extra "$group"); fi
  done
  (cd "$ROOT" && "$UV" export --frozen --quiet --no-hashes --no-emit-project --no-header \
    --no-annotate "${extra_args[@]}" --output-file "$dir/requirements.txt")
}

env_file() {
  local name="$1" file="${BUILD}/$1/.env.yaml"
  {
    echo "ENVIRONMENT: production"
    echo "FUNCTION_URL: '$(url_of "$name")'"
    echo "SUPABASE_URL: '${SUPABASE_URL}'"
    echo "APP_BASE_URL: '${APP_BASE_URL}'"
    echo "CORS_ORIGINS: '${CORS_ORIGINS}'"
    echo "X_CLIENT_ID: '${X_CLIENT_ID}'"
    echo "X_REDIRECT_URI: '${X_REDIRECT_URI}'"
    echo "CHARITY_ACCOUNTS: '${CHARITY_ACCOUNTS}'"
    echo "SCHEDULER_SERVICE_ACCOUNT: '${SCHEDULER_SA}'"
    echo "FUNCTIONS_SERVICE_ACCOUNT: '${FUNCTIONS_SA}'"
    echo "TRIGGER_CONSEQUENCE_URL: '$(url_of trigger_consequence)'"
    echo "DISPATCH_WITH_ID_TOKEN: 'true'"
    # The operator console signs in through Supabase Auth with the project's publishable key.
    if [[ -n "${SUPABASE_PUBLISHABLE_KEY:-}" ]]; then echo "SUPABASE_PUBLISHABLE_KEY: '${SUPABASE_PUBLISHABLE_KEY}'"; fi
  } >"$file"
  echo "$file"
}

secrets_flag() {
  local name="$1" flag="" secret
  for secret in $COMMON_SECRETS $PRESENT_OPTIONAL ${SECRETS[$name]}; do
    flag="${flag:+${flag},}${secret}=${secret}:latest"
  done
  echo "$flag"
}

# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------
while IFS='|' read -r name extras min_instances timeout memory access; do
  [[ -n "$name" ]] || continue
  [[ -z "$ONLY" || "$ONLY" == "$name" ]] || continue
  stage "$name" "$extras"
  env_path="$(env_file "$name")"
  auth_flag="--allow-unauthenticated"
  [[ "$access" == "private" ]] && auth_flag="--no-allow-unauthenticated"
  run "$GCLOUD" functions deploy "$name" --gen2 --runtime="$RUNTIME" --entry-point="$name" --trigger-http \
    --source="${BUILD}/${name}" --region="$REGION" --project="$PROJECT" \
    --service-account="$FUNCTIONS_SA" --min-instances="$min_instances" --timeout="${timeout}s" \
    --memory="$memory" "$auth_flag" --env-vars-file="$env_path" --set-secrets="$(secrets_flag "$name")" --quiet
  if [[ "$access" == "private" ]]; then
    run "$GCLOUD" functions add-invoker-policy-binding "$name" --region="$REGION" --project="$PROJECT" \
      --member="serviceAccount:${FUNCTIONS_SA}"
  fi
done <<<"$FUNCTIONS"

# ---------------------------------------------------------------------------
# Scheduler: check_deadlines every five minutes with the scheduler's OIDC token.
# ---------------------------------------------------------------------------
if [[ -z "$ONLY" || "$ONLY" == "check_deadlines" ]]; then
  verb="create"
  if "$GCLOUD" scheduler jobs describe check-deadlines --location="$REGION" --project="$PROJECT" >/dev/null 2>&1; then
    verb="update"
  fi
  run "$GCLOUD" scheduler jobs "$verb" http check-deadlines --location="$REGION" --project="$PROJECT" \
    --schedule="*/5 * * * *" --time-zone="Etc/UTC" --uri="$(url_of check_deadlines)" --http-method=POST \
    --headers="Content-Type=application/json" --message-body='{"source":"cloud-scheduler"}' \
    --oidc-service-account-email="$SCHEDULER_SA" --oidc-token-audience="$(url_of check_deadlines)" \
    --attempt-deadline=540s
fi

# ---------------------------------------------------------------------------
# Database: migrations, and the Vault secrets pg_cron's job reads. The URL and
# the key travel in the environment of one process, never on a command line.
# ---------------------------------------------------------------------------
if [[ -z "$ONLY" ]]; then
  echo "+ DATABASE_URL=<Secret Manager: DATABASE_URL> ${THREATIVATOR} migrate"
  echo "+ DATABASE_URL=<Secret Manager: DATABASE_URL> SUPABASE_SECRET_KEYS=<Secret Manager> DATABASE_WEBHOOK_SECRET=<Secret Manager> ${THREATIVATOR} vault-store --check-deadlines-url $(url_of check_deadlines) --grade-submission-url $(url_of grade_submission) --send-notification-url $(url_of send_notification)"
  echo "+ DATABASE_URL=<Secret Manager: DATABASE_URL> ${THREATIVATOR} webhooks"
  if [[ "$DRY_RUN" -eq 0 ]]; then
    DATABASE_URL="$("$GCLOUD" secrets versions access latest --secret=DATABASE_URL --project="$PROJECT")"
    SUPABASE_SECRET_KEYS="$("$GCLOUD" secrets versions access latest --secret=SUPABASE_SECRET_KEYS \
      --project="$PROJECT")"
    DATABASE_WEBHOOK_SECRET="$("$GCLOUD" secrets versions access latest --secret=DATABASE_WEBHOOK_SECRET \
      --project="$PROJECT")"
    export DATABASE_URL SUPABASE_SECRET_KEYS DATABASE_WEBHOOK_SECRET
    "$THREATIVATOR" migrate
    "$THREATIVATOR" vault-store --check-deadlines-url "$(url_of check_deadlines)" \
      --grade-submission-url "$(url_of grade_submission)" --send-notification-url "$(url_of send_notification)"
    "$THREATIVATOR" webhooks
    unset DATABASE_URL SUPABASE_SECRET_KEYS DATABASE_WEBHOOK_SECRET
  fi
  # The Stripe webhook endpoint receives exactly the events the handler applies (one list, in
  # shared/stripe_events.py): configured through the Stripe API, never remembered by hand.
  echo "+ STRIPE_SECRET_KEY=<Secret Manager> ${THREATIVATOR} stripe-webhook --url $(url_of stripe_webhook)"
  "$THREATIVATOR" stripe-webhook --url "$(url_of stripe_webhook)" --print-events
  if [[ "$DRY_RUN" -eq 0 ]]; then
    STRIPE_SECRET_KEY="$("$GCLOUD" secrets versions access latest --secret=STRIPE_SECRET_KEY --project="$PROJECT")"
    export STRIPE_SECRET_KEY
    "$THREATIVATOR" stripe-webhook --url "$(url_of stripe_webhook)"
    unset STRIPE_SECRET_KEY
  fi
  cat <<'BUCKETS'

Storage buckets (Supabase dashboard -> Storage, or `threativator buckets --print-sql`):
  proofs      private; users upload to <their user id>/..., read their own; the service key reads all
BUCKETS
  "$THREATIVATOR" buckets --print-sql
fi
if [[ "$DRY_RUN" -eq 1 ]]; then
  echo "deploy.sh: dry run finished; nothing was changed"
else
  echo "deploy.sh: done"
fi
