#!/usr/bin/env bash
# Sets up and runs agent-app: the chat UI and the API on http://localhost:8000 (or --port N).
# With no model configured in .env (see .env.example) the agent runs on the embedded model, which this
# fetches first. Extra arguments go to the server (--help lists them).
source "$(dirname "$0")/lib.sh"

[ -f .env ] && set -a && source .env && set +a
if [ -z "${DATABRICKS_HOST:-}" ] && [ -z "${OPENAI_BASE_URL:-}" ]; then
  case "${AGENT_LOCAL_MODEL:-qwen2.5-coder-0.5b}" in
    */*|*.gguf) ;;   # a GGUF file of your own
    *) ensure_model "${AGENT_LOCAL_MODEL:-qwen2.5-coder-0.5b}" ;;
  esac
fi
ensure_llama_build_tools
build_site release
log "building the server (release)"
cargo build --release -p server
log "starting the server (it logs the address it listens on; default http://localhost:8000)"
exec ./target/release/server "$@"
