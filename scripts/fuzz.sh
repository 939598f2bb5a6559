#!/usr/bin/env bash
# Fuzzes the request parser, the SSE frame parser and the markdown renderer (fuzz/fuzz_targets),
# each for SECONDS (default 20: the bounded run the tests do; by hand, e.g. `scripts/fuzz.sh 600`).
# cargo-fuzz drives libFuzzer; RUSTC_BOOTSTRAP lets the stable compiler take its coverage flags.
source "$(dirname "$0")/lib.sh"

seconds="${1:-20}"
ensure_cargo_fuzz
cd fuzz
for target in request_parser sse_parser markdown; do
  log "fuzzing $target for ${seconds}s"
  mkdir -p "corpus/$target"
  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 | tail -15
done
