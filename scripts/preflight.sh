#!/usr/bin/env bash
# Preflight: starts the server with your configuration (.env and the environment) on a free port,
# checks /health, sends one question to /invocations, and says PASS or FAIL with the reason. Run it
# before deploying. Uses target/release/server (built if missing, as scripts/run.sh builds it), or AGENT_SERVER_BINARY.
source "$(dirname "$0")/lib.sh"

load_env
binary="${AGENT_SERVER_BINARY:-target/release/server}"
if [ ! -x "$binary" ]; then
  ensure_llama_build_tools
  build_site release
  log "building the server (release)"
  cargo build --release -p server --bin server
fi

fail() { printf '\033[31mPREFLIGHT FAIL\033[0m: %s\n' "$*" >&2; exit 1; }

port=$(free_port)
server_log=$(mktemp)
data=$(mktemp -d)
# Its own data folder: a preflight must not write into your chats or traces.
AGENT_HOST=127.0.0.1 AGENT_DATA_DIR="$data" "$binary" --port "$port" > "$server_log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data" "$server_log"' EXIT
url="http://127.0.0.1:$port"
wait_for_url "$url/health" "$pid" 2>/dev/null || fail "the server did not start: $(tail -5 "$server_log")"
info=$(curl -fsS "$url/agent/info") || fail "/agent/info did not answer"
model=$(python3 -c 'import json,sys; i=json.load(sys.stdin); print(i["model"] + " via " + i["backend"])' <<<"$info")
log "server up on $url, model $model; asking it one question"

response=$(curl -sS -w '\n%{http_code}' --max-time "${PREFLIGHT_TIMEOUT_SECONDS:-180}" -X POST "$url/invocations" \
  -H 'content-type: application/json' \
  -d '{"input":[{"role":"user","content":"Reply with one short sentence: are you working?"}]}') \
  || fail "/invocations did not answer within ${PREFLIGHT_TIMEOUT_SECONDS:-180} s"
status=$(tail -1 <<<"$response")
body=$(sed '$d' <<<"$response")
answer=$(python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
texts = [p.get("text", "") for i in r.get("output", []) if i.get("type") == "message" for p in i.get("content", [])]
print(" ".join(t for t in texts if t).strip())' <<<"$body" 2>/dev/null || true)
[ "$status" = 200 ] || fail "/invocations answered HTTP $status: $body"
[ -n "$answer" ] || fail "/invocations answered without text: $body"
printf '\033[32mPREFLIGHT PASS\033[0m: %s answered: %s\n' "$model" "$answer"
