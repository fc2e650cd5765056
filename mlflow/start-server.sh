#!/usr/bin/env bash
# Start the MLflow tracking server of the stack: backend store on PostgreSQL, artifacts served by
# the server (proxied) from MLFLOW_ARTIFACTS_DESTINATION, login by MLflow's basic-auth app.
# `make stack-up` (jobs/stack.py) runs it with these variables set; docker/compose.yaml runs it too.
#
#   MLFLOW_BACKEND_STORE_URI      postgresql+psycopg2://user@host:port/msp_mlflow   (required)
#   MLFLOW_AUTH_DATABASE_URI      postgresql+psycopg2://user@host:port/msp_mlflow_auth (required)
#   MLFLOW_ARTIFACTS_DESTINATION  file:///path or s3://bucket/prefix              (required)
#   MLFLOW_AUTH_ADMIN_USERNAME    the admin login created on first start          (default admin)
#   MLFLOW_AUTH_ADMIN_PASSWORD    its password, read by MLflow on first start     (required)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  the auth app's CSRF secret, the same on every server  (required)
#   MLFLOW_STATE_DIR              where the generated auth config goes            (default ./var/stack/mlflow)
#   MLFLOW_HOST / MLFLOW_PORT     bind address and port                           (default 127.0.0.1:5000)
#   MLFLOW_WORKERS                server worker processes                         (default 1)
set -euo pipefail

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (PostgreSQL URL of the tracking store)}"
: "${MLFLOW_AUTH_DATABASE_URI:?set MLFLOW_AUTH_DATABASE_URI (PostgreSQL URL of the user store)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (file:// or s3:// URL)}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD (the admin login is created with it)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (CSRF secret of the auth app)}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${MLFLOW_STATE_DIR:-var/stack/mlflow}"
mkdir -p "$state"
umask 077  # the generated config holds the user store's URL
config="$state/basic_auth.ini"
# configparser treats % specially: double it in the URL (a password may hold one)
uri="${MLFLOW_AUTH_DATABASE_URI//%/%%}"
sed -e "s|@AUTH_DATABASE_URI@|${uri//|/\\|}|" \
    -e "s|@ADMIN_USERNAME@|${MLFLOW_AUTH_ADMIN_USERNAME:-admin}|" \
    "$here/basic_auth.ini" > "$config"
export MLFLOW_AUTH_CONFIG_PATH="$config"

exec mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --serve-artifacts --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --app-name basic-auth \
  --host "${MLFLOW_HOST:-127.0.0.1}" --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-1}" \
  ${MLFLOW_ALLOWED_HOSTS:+--allowed-hosts "$MLFLOW_ALLOWED_HOSTS"}
