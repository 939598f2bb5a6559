#!/usr/bin/env bash
# Checks the Databricks Apps deployment against the platform's own rules (each check names where its
# rule comes from; no live workspace is used, none is reachable from here):
#   1. builds dist/agent-app (scripts/build-deploy.sh: every file at most 10 MB);
#   2. the binary needs no newer glibc than the Apps container (Ubuntu 22.04: 2.35) and no libstdc++;
#   3. it runs on an x86-64 CPU without AVX2 (qemu's Nehalem model): Apps promise no CPU features;
#   4. databricks.yml against the Databricks CLI's JSON schema, its platform rules, and the upload
#      set `databricks bundle deploy` computes (scripts/bundle_check.py);
#   5. the upload set, copied read-only and started with `sh start.sh` as Apps start it, in front of a
#      stand-in workspace and a real PostgreSQL: a chat saved, the app restarted, the chat still
#      there; a trace exported; a vote recorded (server/tests/it/apps_runtime.rs).
source "$(dirname "$0")/lib.sh"

scripts/build-deploy.sh
out=dist/agent-app
binary=target/deploy/release/server

log "deploy check: glibc and libstdc++ (the Apps container is Ubuntu 22.04, glibc 2.35)"
newest=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
[ "$(printf '%s\n2.35\n' "$newest" | sort -V | tail -1)" = "2.35" ] \
  || { echo "the binary needs glibc $newest; the Apps container has 2.35" >&2; exit 1; }
echo "newest glibc symbol: $newest (container: 2.35)"
if objdump -p "$binary" | grep -q 'NEEDED.*libstdc++'; then
  echo "the deployable binary links libstdc++ (it should not without the embedded model)" >&2; exit 1
fi

log "deploy check: runs on a CPU without AVX2 (qemu -cpu Nehalem: SSE4.2, no AVX)"
ensure_qemu
cargo build -q -p fake-model
model_port=$(free_port)
app_port=$(free_port)
./target/debug/fake-model --port "$model_port" > target/deploy-fake-model.log 2>&1 &
model_pid=$!
scratch=$(mktemp -d)
trap 'kill $model_pid ${qemu_pid:-} 2>/dev/null || true; rm -rf "$scratch"' EXIT
cat "$out"/server.gz.[0-9][0-9] | gzip -dc > "$scratch/server" && chmod +x "$scratch/server"
env -i PATH=/usr/bin:/bin HOME="$scratch" AGENT_DATA_DIR="$scratch/data" AGENT_HOST=127.0.0.1 \
  LEPTOS_SITE_ROOT="$out/site" OPENAI_BASE_URL="http://127.0.0.1:$model_port/v1" \
  qemu-x86_64 -cpu Nehalem "$scratch/server" --port "$app_port" > target/deploy-qemu.log 2>&1 &
qemu_pid=$!
wait_for_url "http://127.0.0.1:$app_port/health" "$qemu_pid" || { cat target/deploy-qemu.log >&2; exit 1; }
answer=$(curl -fsS -X POST "http://127.0.0.1:$app_port/invocations" -H 'content-type: application/json' \
  -d '{"input":[{"role":"user","content":"hi"}]}')
echo "$answer" | grep -q '"status":"completed"' || { echo "unexpected answer: $answer" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$app_port/" | grep -Eq '/pkg/[0-9a-f]{16}/agent-app\.js' || { echo "no chat page" >&2; exit 1; }
kill "$qemu_pid"; wait "$qemu_pid" 2>/dev/null || true
grep -q "Illegal instruction" target/deploy-qemu.log && { cat target/deploy-qemu.log >&2; exit 1; }
echo "served /health, the chat page and /invocations on an emulated Nehalem CPU"

log "deploy check: databricks.yml, app.yaml and what the bundle uploads"
ensure_bundle_check
if schema=$(bundle_schema); then
  "$BUNDLE_CHECK_VENV/bin/python" scripts/bundle_check.py "$schema" --list
elif [ "${CI:-}" = true ]; then
  exit 1
else
  echo "skipped the bundle checks: no schema beside the checkout (set AGENT_BUNDLE_SCHEMA to the CLI's jsonschema.json)"
fi

log "deploy check: the upload set started as Databricks Apps start it"
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  ensure_postgres
  start_postgres
  trap 'kill $model_pid 2>/dev/null || true; rm -rf "$scratch"; stop_postgres' EXIT
fi
AGENT_DEPLOY_DIR="$ROOT/$out" AGENT_REQUIRE_DEPLOY=1 AGENT_REQUIRE_POSTGRES=1 \
  cargo test --workspace --exclude frontend --test it apps_runtime:: -- --nocapture
log "deploy checks passed"
