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

# shellcheck source=embedded.sh
source "$(dirname "${BASH_SOURCE[0]}")/embedded.sh" aiplus-embedded-cmmlu

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
