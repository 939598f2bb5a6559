#!/bin/sh
# The Databricks Apps start command: runs the server binary shipped beside this script. Uploads may
# drop the executable bit and the app folder may be read-only, so it runs a copy when it must.
# Databricks Apps set DATABRICKS_APP_PORT, DATABRICKS_HOST and the service principal's
# DATABRICKS_CLIENT_ID/SECRET; app.yaml adds the MLflow experiment.
set -e
here="$(cd "$(dirname "$0")" && pwd)"
bin="$here/server"
if [ ! -x "$bin" ]; then
  cp "$bin" "${TMPDIR:-/tmp}/agent-app-server"
  chmod +x "${TMPDIR:-/tmp}/agent-app-server"
  bin="${TMPDIR:-/tmp}/agent-app-server"
fi
export LEPTOS_SITE_ROOT="${LEPTOS_SITE_ROOT:-$here/site}"
# Local files (SQLite chat history when no database resource is bound, local traces) go where the
# container can write.
export AGENT_DATA_DIR="${AGENT_DATA_DIR:-${TMPDIR:-/tmp}/agent-app-data}"
exec "$bin"
