#!/usr/bin/env bash
# Sets up and runs agent-app: the chat UI and the API on http://localhost:8000 (or --port N).
# Configure the model in .env (see .env.example). Extra arguments go to the server (--help lists them).
source "$(dirname "$0")/lib.sh"

build_site release
log "building the server (release)"
cargo build --release -p server
log "starting: open http://localhost:${DATABRICKS_APP_PORT:-8000}"
exec ./target/release/server "$@"
