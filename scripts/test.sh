#!/usr/bin/env bash
# Sets up and runs every test: Rust unit and integration tests (real HTTP against the scripted fake
# model), then the end-to-end tests in Debian's Chromium against the real server, then a short
# benchmark run to check the benchmark itself works.
source "$(dirname "$0")/lib.sh"

log "format"
cargo fmt --all --check

ensure_chromium
ensure_e2e_packages
ensure_llama_build_tools
ensure_postgres
ensure_mlflow
ensure_mcp
ensure_model qwen2.5-coder-0.5b
# The chat-template fixtures are what Python's jinja2 renders, as transformers sets it up.
log "chat-template fixtures (Python jinja2)"
"$MLFLOW_VENV/bin/python" scripts/render-chat-templates.py server/tests/fixtures/chat_templates \
  | diff -u server/tests/fixtures/chat_templates/rendered.json - \
  || { echo "rendered.json is not what Python renders: run scripts/render-chat-templates.py" >&2; exit 1; }
# The tests drive the bundle users get: release, size-optimised, and within its size budget.
build_site release
export AGENT_SITE_BUILT=release
log "browser bundle size"
bundle_size 300 | tee target/bundle-size.txt

log "cargo tests"
stop_services() { stop_postgres; stop_mlflow; }
start_postgres
trap stop_services EXIT
start_mlflow
export TEST_MCP_PYTHON="$MCP_VENV/bin/python"
# The embedded-model, PostgreSQL, MLflow and MCP tests must run here, not skip for want of them.
AGENT_REQUIRE_LOCAL_MODEL=1 AGENT_REQUIRE_POSTGRES=1 AGENT_REQUIRE_MLFLOW=1 AGENT_REQUIRE_MCP=1 cargo test --workspace --exclude frontend 2>&1 | tee target/cargo-test.log
grep -q "^test result: ok" target/cargo-test.log

# After the tests: the build scripts' output (llama.cpp's build above all) and the proc-macros are
# theirs, reused here instead of built again.
log "lints"
# The server side and the browser bundle, every target (tests, benches, binaries), warnings as errors.
cargo clippy --workspace --exclude frontend --all-targets -- -D warnings
cargo clippy -p frontend -p app --target wasm32-unknown-unknown -- -D warnings

log "end-to-end tests (Chromium)"
cargo build -p server -p fake-model -p agent-bench
model_port=$(free_port)
app_port=$(free_port)
./target/debug/fake-model --port "$model_port" > target/e2e-fake-model.log 2>&1 &
model_pid=$!
export CHAT_GREETING="Ask me anything: I am tested."
# Chats in a fresh SQLite file; no title calls (they would take the replies the tests script).
e2e_data=$(mktemp -d)
# The official MCP SDK's test server as a stdio MCP server, whose `add` waits for the user's approval;
# documents to cite; the agent of agent.rs with a Billing agent to hand over to.
printf '{"mcpServers": {"files": {"command": "%s", "args": ["server/tests/mcp/test_server.py", "stdio"]}}}' \
  "$MCP_VENV/bin/python" > "$e2e_data/mcp.json"
AGENT_MCP_CONFIG="$e2e_data/mcp.json" AGENT_REQUIRE_APPROVAL=add AGENT_DOCS_DIR=end2end/fixtures/docs AGENT_EXAMPLE=handoffs \
AGENT_DATA_DIR="$e2e_data" AGENT_CHAT_TITLES=false OPENAI_BASE_URL="http://127.0.0.1:$model_port/v1" AGENT_HOST=127.0.0.1 LEPTOS_SITE_ROOT=target/site \
  ./target/debug/server --port "$app_port" > target/e2e-server.log 2>&1 &
server_pid=$!
trap 'kill $server_pid $model_pid 2>/dev/null || true; stop_services' EXIT
wait_for_url "http://127.0.0.1:$app_port/health" "$server_pid"
(cd end2end && CI=1 BASE_URL="http://127.0.0.1:$app_port" FAKE_MODEL_URL="http://127.0.0.1:$model_port" \
  npx playwright test) 2>&1 | tee target/e2e.log
# What a first visit and a reload cost over a 9 Mbit/s, 60 ms link (figures; fails if a reload
# downloads the bundle again).
log "first load over a throttled link (Chromium)"
(cd end2end && BASE_URL="http://127.0.0.1:$app_port" node bench/first-load.mjs 3) 2>&1 | tee target/first-load.log
# The load test as users run it against a deployed app: a short ramp, with a bearer token.
log "load test smoke run"
./target/debug/agent-bench --url "http://127.0.0.1:$app_port" --users 1,4 --step-seconds 1 --token smoke-test \
  | tee target/load-test.log
grep -q " 0 failed$" target/load-test.log
kill $server_pid $model_pid 2>/dev/null || true
trap stop_services EXIT

# The Databricks Apps deployment: the folder, its file sizes, glibc, a start from environment
# variables only, the YAML.
scripts/test-deploy.sh 2>&1 | tee target/deploy-check.log

# Preflight, as a user runs it before deploying: on the embedded model it must pass, and with an
# unreachable model endpoint it must fail and say why.
log "preflight"
AGENT_SERVER_BINARY=target/debug/server scripts/preflight.sh
if AGENT_SERVER_BINARY=target/debug/server OPENAI_BASE_URL=http://127.0.0.1:9/v1 MODEL_MAX_RETRIES=0 \
  scripts/preflight.sh 2> target/preflight-fail.log; then
  echo "preflight passed with an unreachable model endpoint" >&2; exit 1
fi
grep -q "PREFLIGHT FAIL.*could not reach the model endpoint" target/preflight-fail.log \
  || { cat target/preflight-fail.log >&2; echo "preflight failed without the reason" >&2; exit 1; }

# A bounded fuzzing run of the parsers and the markdown renderer (longer by hand: scripts/fuzz.sh 600).
log "fuzzing (bounded)"
scripts/fuzz.sh 15

# Debug build: this checks that the benchmark runs and sees no errors, not how fast (see README).
log "benchmark smoke run"
./target/debug/agent-bench --quick --server target/debug/server
# 1,000 streams open at once (20 ms between tokens: each stream lasts ~1.3 s), held for 20 s: every
# request must succeed (it fails otherwise) and the memory figures are printed.
log "load: 1,000 concurrent streams"
./target/debug/agent-bench --server target/debug/server --soak-seconds 20 --soak-streams 1000 --token-delay-ms 20

cargo_passed=$(awk '/^test result:/ {n += $4} END {print n + 0}' target/cargo-test.log)
e2e_passed=$(sed -n 's/^ *\([0-9][0-9]*\) passed.*/\1/p' target/e2e.log | tail -1)
echo "all tests: $((cargo_passed + ${e2e_passed:-0})) passed, 0 failed"
