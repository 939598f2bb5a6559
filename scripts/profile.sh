#!/usr/bin/env bash
# Counts the server's CPU instructions per request under callgrind (repeatable, unlike timings) and
# prints the hottest functions. Usage: scripts/profile.sh [stream|nostream] [requests]
source "$(dirname "$0")/lib.sh"
mode="${1:-stream}" requests="${2:-100}"
stream=$([ "$mode" = stream ] && echo true || echo false)
cargo build --profile profiling -p server -p fake-model
out="$(mktemp -d)"
model_port=$(free_port); app_port=$(free_port)
./target/profiling/fake-model --port "$model_port" > "$out/fake.log" 2>&1 &
model_pid=$!
OPENAI_BASE_URL="http://127.0.0.1:$model_port/v1" AGENT_HOST=127.0.0.1 RUST_LOG=warn \
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
  ./target/profiling/server --port "$app_port" --workers 1 > "$out/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid $model_pid 2>/dev/null || true' EXIT
wait_for_url "http://127.0.0.1:$app_port/health" "$server_pid"
body="{\"input\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":$stream}"
curl -s -o /dev/null -X POST "http://127.0.0.1:$app_port/invocations" -d "$body"   # warm-up
callgrind_control -z "$server_pid" > /dev/null
for _ in $(seq "$requests"); do curl -s -o /dev/null -X POST "http://127.0.0.1:$app_port/invocations" -d "$body"; done
callgrind_control -d "$server_pid" > /dev/null
sleep 1
dump=$(ls -t "$out"/callgrind.out* | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$mode: $((total / requests)) instructions per request ($requests requests)"
callgrind_annotate --threshold=100 --auto=no "$dump" 2>/dev/null | grep -v "start_thread\|clone.S\|tokio-1\.[0-9.]*/src/runtime/\(blocking\|context\|task/\|scheduler/multi_thread/worker.rs:\)\|thread_start\|call_once{{vtable" \
  | sed -n '/file:function/,$p' | sed -n 2,26p | cut -c1-170
