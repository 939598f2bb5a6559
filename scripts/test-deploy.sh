#!/usr/bin/env bash
# Checks the Databricks Apps deployment: builds dist/agent-app (every file ≤ 10 MB), checks the
# binary needs no glibc newer than the Apps container's (Ubuntu 22.04: 2.35), starts it from a copy
# of the folder as Apps would (read-only folder, only environment variables, in front of the fake
# model) and queries it, and parses app.yaml and databricks.yml.
source "$(dirname "$0")/lib.sh"

scripts/build-deploy.sh
out=dist/agent-app

log "deploy check: glibc"
binary=target/deploy/release/server
newest=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
[ "$(printf '%s\n2.35\n' "$newest" | sort -V | tail -1)" = "2.35" ] \
  || { echo "the binary needs glibc $newest; the Apps container has 2.35" >&2; exit 1; }
echo "newest glibc symbol: $newest (container: 2.35)"
if objdump -p "$binary" | grep -q 'NEEDED.*libstdc++'; then
  echo "the deployable binary links libstdc++ (it should not without the embedded model)" >&2; exit 1
fi

log "deploy check: start as Databricks Apps would"
app=$(mktemp -d)
cp -r "$out/." "$app/"
chmod -R a-w "$app"
cargo build -q -p fake-model
model_port=$(free_port)
app_port=$(free_port)
./target/debug/fake-model --port "$model_port" > target/deploy-fake-model.log 2>&1 &
model_pid=$!
scratch=$(mktemp -d)
(cd / && env -i PATH=/usr/bin:/bin HOME="$scratch" TMPDIR="$scratch" DATABRICKS_APP_PORT="$app_port" \
  DATABRICKS_APP_NAME=agent-app-deploy-check AGENT_HOST=127.0.0.1 \
  OPENAI_BASE_URL="http://127.0.0.1:$model_port/v1" sh "$app/start.sh") > target/deploy-server.log 2>&1 &
server_pid=$!
trap 'kill $server_pid $model_pid 2>/dev/null || true; chmod -R u+w "$app"; rm -rf "$app" "$scratch"' EXIT
wait_for_url "http://127.0.0.1:$app_port/health" "$server_pid" || { cat target/deploy-server.log >&2; exit 1; }
curl -fsS "http://127.0.0.1:$app_port/" | grep -q '/pkg/agent-app.js' || { echo "no chat page" >&2; exit 1; }
curl -fsS -o /dev/null "http://127.0.0.1:$app_port/pkg/agent-app.wasm" || { echo "no bundle" >&2; exit 1; }
answer=$(curl -fsS -X POST "http://127.0.0.1:$app_port/invocations" -H 'content-type: application/json' \
  -d '{"input":[{"role":"user","content":"hi"}]}')
echo "$answer" | grep -q '"status":"completed"' || { echo "unexpected answer: $answer" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$app_port/agent/info" | grep -q '"name":"agent-app-deploy-check"' \
  || { echo "the app's name did not come through" >&2; exit 1; }
echo "served the chat page, the bundle and /invocations from a read-only copy, from environment variables only"

log "deploy check: app.yaml and databricks.yml"
"${MLFLOW_VENV}/bin/python" - <<'PY'
import yaml
app = yaml.safe_load(open("deploy/app.yaml"))
assert app["command"] == ["sh", "start.sh"], app["command"]
env = {e["name"]: e for e in app["env"]}
assert env["MLFLOW_TRACKING_URI"]["value"] == "databricks"
assert env["MLFLOW_EXPERIMENT_ID"]["valueFrom"] == "experiment"
bundle = yaml.safe_load(open("databricks.yml"))
agent = bundle["resources"]["apps"]["agent_app"]
assert agent["source_code_path"] == "./dist/agent-app"
assert agent["config"]["command"] == app["command"], "databricks.yml and app.yaml start the app the same way"
benv = {e["name"]: e for e in agent["config"]["env"]}
assert benv["MLFLOW_EXPERIMENT_ID"]["value_from"] == "experiment"
resources = {r["name"]: r for r in agent["resources"]}
assert resources["experiment"]["experiment"]["permission"] == "CAN_MANAGE"
assert resources["serving-endpoint"]["serving_endpoint"]["permission"] == "CAN_QUERY"
assert bundle["targets"]["dev"]["default"] is True and bundle["targets"]["prod"]["mode"] == "production"
assert "agent_experiment" in bundle["resources"]["experiments"]
print("app.yaml and databricks.yml: as expected")
PY
log "deploy checks passed"
