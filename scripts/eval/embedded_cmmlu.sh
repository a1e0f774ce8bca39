#!/usr/bin/env bash
# CMMLU against the embedded chat model: a fresh `aiplus serve` on its defaults, then
# `aiplus eval run --suite cmmlu` through its gateway with any extra arguments, e.g.
#
#   scripts/eval/embedded_cmmlu.sh --limit 5          # 5 questions per subject, 335 in all
#   scripts/eval/embedded_cmmlu.sh                    # all 11,582 (hours on 2 CPU cores)
#
# Prints the run's report as JSON. Needs a release build and ../shared's CMMLU CSVs
# (CC BY-NC-SA 4.0: read from there, never bundled).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/target/release/aiplus"
cmmlu="${CMMLU_DIR:-$repo/../shared/evaldata/cmmlu}"
data="$(mktemp -d /tmp/aiplus-embedded-cmmlu.XXXXXX)"

cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  # The chat model's replica is a job of the local executor, which outlives the server by
  # design (a restarted server adopts it): stop the ones this data directory started.
  for p in /proc/[0-9]*; do
    if { tr '\0' '\n' < "$p/environ"; } 2>/dev/null | grep -qx "AIPLUS_ATTEMPT_DIR=$data/.*"; then kill "${p#/proc/}" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT

[ -x "$bin" ] || { echo "build first: cargo build --release -p aiplus" >&2; exit 2; }
AIPLUS_MODELS_DIR="${AIPLUS_MODELS_DIR:-$repo/target/aiplus-models/chat}" AIPLUS_LOG=warn \
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" > "$data/serve.out" 2> "$data/serve.err" &
server=$!
for _ in $(seq 1 100); do grep -q "http://" "$data/serve.out" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'http://[0-9.:]*' "$data/serve.out" | head -1)"
export AIPLUS_TOKEN="$(cat "$data/operator-token")"
model=qwen2.5-coder-0.5b-instruct

suites="$data/suites"
mkdir -p "$suites/cmmlu"
cp "$repo/suites/cmmlu/suite.toml" "$suites/cmmlu/"
ln -s "$(cd "$cmmlu" && pwd)" "$suites/cmmlu/data"

# The model answers 503 model_loading until its replica is up; the harness retries those, but
# a first start can take longer than its retries, so wait here.
echo "waiting for $model to load…" >&2
for _ in $(seq 1 600); do
  "$bin" eval run --server "$url" --model "$model" --suite cmmlu --suites-dir "$suites" --subjects agronomy --limit 1 \
    --out "$data/warmup" --json > /dev/null 2>&1 && break
  sleep 1
done
start=$(date +%s.%N)
"$bin" eval run --server "$url" --model "$model" --suite cmmlu --suites-dir "$suites" --out "$data/run" --json "$@"
echo "wall time: $(echo "$(date +%s.%N) - $start" | bc) s" >&2
