#!/bin/sh
# The Databricks Apps start command: joins and unpacks the server binary shipped beside this script
# (gzipped, in parts: Apps take no file over 10 MB) where the container can write, and runs it.
# Databricks Apps set DATABRICKS_APP_PORT, DATABRICKS_HOST and the service principal's
# DATABRICKS_CLIENT_ID/SECRET; app.yaml adds the MLflow experiment.
set -e
here="$(cd "$(dirname "$0")" && pwd)"
bin="${TMPDIR:-/tmp}/agent-app-server"
cat "$here"/server.gz.[0-9][0-9] | gzip -dc > "$bin.partial"
chmod +x "$bin.partial"
mv "$bin.partial" "$bin"
export LEPTOS_SITE_ROOT="${LEPTOS_SITE_ROOT:-$here/site}"
# Local files (SQLite chat history when no database resource is bound, local traces) go where the
# container can write.
export AGENT_DATA_DIR="${AGENT_DATA_DIR:-${TMPDIR:-/tmp}/agent-app-data}"
exec "$bin"
