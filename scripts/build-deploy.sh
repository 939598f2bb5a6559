#!/usr/bin/env bash
# Builds the folder Databricks Apps deploy, dist/agent-app: the release server binary (Linux x86_64,
# glibc; without the embedded model, which Apps do not need), gzipped and cut into parts of 8 MB
# (server.gz.00, .01, …), the site, app.yaml and start.sh (which joins, unpacks and runs the binary).
# Every file must be at most 10 MB (the Apps upload limit; the binary is ~22 MB, ~9.4 MB gzipped, so
# parts keep it deployable as it grows): checked here. The binary targets baseline x86-64 (no AVX2:
# Apps hosts are not promised any CPU features); only the embedded model wants x86-64-v3, and it is
# not in this build.
source "$(dirname "$0")/lib.sh"

out=dist/agent-app
# scripts/test.sh built the release site already (AGENT_SITE_BUILT=release): not again.
[ "${AGENT_SITE_BUILT:-}" = release ] || build_site release
log "building the server for deployment (release, no embedded model)"
# The commit goes into the binary: the deployed folder has no .git for version tracking to read.
# RUSTFLAGS replaces .cargo/config.toml's target-cpu=x86-64-v3 for this build only (and so must repeat its
# erase_components: the server and the browser bundle are built alike).
AGENT_GIT_SHA="$(git rev-parse HEAD 2>/dev/null || true)" RUSTFLAGS="-C target-cpu=x86-64 --cfg erase_components" \
  cargo build --release -p server --bin server --no-default-features --target-dir target/deploy
rm -rf "$out" && mkdir -p "$out"
gzip -9 -n -c target/deploy/release/server | split -b 8M -d -a 2 - "$out/server.gz."
cp -r target/site "$out/site"
cp deploy/app.yaml deploy/start.sh "$out/"

limit=$((10 * 1024 * 1024))
too_big=$(find "$out" -type f -size +"${limit}"c)
if [ -n "$too_big" ]; then
  echo "files over the 10 MB Databricks Apps limit:" >&2
  ls -l $too_big >&2
  exit 1
fi
log "deployable folder: $out ($(du -sh "$out" | cut -f1); largest file $(find "$out" -type f -printf '%s %p\n' | sort -n | tail -1))"
