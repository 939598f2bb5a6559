# Shared by the scripts in this folder: installs what the build and the tests need, each step skipped
# when already done, so a warm machine pays nothing and a fresh one gets everything.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Runs a command as root (directly when we are root, else through sudo).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root for: $*" >&2; return 1; fi
}

ensure_wasm_target() {
  rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    || { log "adding the wasm32-unknown-unknown target"; rustup target add wasm32-unknown-unknown; }
}

# The wasm-bindgen CLI must be exactly the version of the crate in Cargo.lock.
ensure_wasm_bindgen() {
  local version
  version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
    log "installing wasm-bindgen-cli $version (about 2 minutes, once)"
    # Not --locked: its lock file pins a crate version the registry no longer serves.
    cargo install wasm-bindgen-cli --version "$version"
  fi
}

ensure_chromium() {
  command -v chromium >/dev/null && return
  log "installing Debian's chromium"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q chromium
}

ensure_e2e_packages() {
  [ -d end2end/node_modules/@playwright/test ] && return
  log "installing the end-to-end test packages (npm ci)"
  (cd end2end && npm ci --no-audit --no-fund)
}

# Builds the browser bundle into target/site: PROFILE=debug (default) or release.
build_site() {
  local profile="${1:-debug}" cargo_profile=() out_dir=debug
  if [ "$profile" = release ]; then cargo_profile=(--profile wasm-release); out_dir=wasm-release; fi
  ensure_wasm_target
  ensure_wasm_bindgen
  log "building the browser bundle ($profile)"
  cargo build -p frontend --lib --target wasm32-unknown-unknown "${cargo_profile[@]}"
  rm -rf target/site && mkdir -p target/site/pkg
  cp -r public/. target/site/
  wasm-bindgen --target web --no-typescript --out-dir target/site/pkg --out-name agent-app \
    "target/wasm32-unknown-unknown/$out_dir/frontend.wasm"
  # Leptos loads /pkg/agent-app.wasm (LEPTOS_OUTPUT_NAME is set in .cargo/config.toml).
  mv target/site/pkg/agent-app_bg.wasm target/site/pkg/agent-app.wasm
  cp style/main.css target/site/pkg/agent-app.css
}

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until URL answers 200, failing early if process PID died.
wait_for_url() {
  local url="$1" pid="$2"
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited before $url answered" >&2; return 1; }
    sleep 0.5
  done
  echo "$url did not answer in 60 s" >&2
  return 1
}
