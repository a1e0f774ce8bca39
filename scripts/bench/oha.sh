#!/usr/bin/env bash
# A second opinion on `aiplus gateway bench`'s concurrency-1 figures, from another load
# generator: oha (`cargo install oha`) sends 3,000 requests one at a time to the mock upstream
# directly, through the bare forwarder (the floor any proxy here reaches), and through aiplus
# (auth, limits, metering on), three rounds. What a proxy adds is its percentiles minus the
# direct ones. Then the throughput phase: 64 connections flat out for 10 s, floor and aiplus,
# three rounds. Build first: cargo build --release -p aiplus.
set -euo pipefail
B="$(cd "$(dirname "$0")/../.." && pwd)/target/release/aiplus"
command -v oha >/dev/null || { echo "oha is not installed: cargo install oha" >&2; exit 1; }
W="$(mktemp -d)"
cd "$W"
wait_line() { for i in $(seq 100); do [ -s "$1" ] && grep -q http "$1" && return; sleep 0.1; done; echo "no url in $1"; exit 1; }
$B gateway mock > mock.url 2>/dev/null & MP=$!
wait_line mock.url; M=$(grep -o 'http://[0-9.:]*' mock.url | head -1)
$B gateway mock --forward $M > floor.url 2>/dev/null & FP=$!
wait_line floor.url; F=$(grep -o 'http://[0-9.:]*' floor.url | head -1)
printf '[gateway]\nallow_local_upstreams = true\n[gateway.embedded]\nenabled = false\n[[gateway.model]]\nname = "bench"\n[[gateway.model.deployment]]\nid = "mock"\nbase_url = "%s/fast/v1"\n' $M > aiplus.toml
AIPLUS_LOG=warn AIPLUS_MODELS_CHAT= $B serve --listen 127.0.0.1:0 --data-dir data --config aiplus.toml > serve.url 2>serve.err & SP=$!
wait_line serve.url; G=$(grep -o 'http://[0-9.:]*' serve.url | head -1)
T=$(cat data/operator-token)
curl -s -X POST $G/api/v1/tenants -H "Authorization: Bearer $T" -H 'content-type: application/json' -d '{"id":"bench"}' >/dev/null
K=$(curl -s -X POST $G/api/v1/keys -H "Authorization: Bearer $T" -H 'x-aiplus-tenant: bench' -H 'content-type: application/json' \
  -d '{"limits":{"requests_per_min":100000000,"tokens_per_min":1000000000000,"tokens_per_day":1000000000000}}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["secret"])')
BODY='{"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
for round in 1 2 3; do
  for t in direct floor aiplus; do
    case $t in direct) U=$M/fast/v1/chat/completions;; floor) U=$F/fast/v1/chat/completions;; aiplus) U=$G/v1/chat/completions;; esac
    oha -n 3000 -c 1 -m POST -H "Authorization: Bearer $K" -H 'content-type: application/json' -d "$BODY" --no-tui --output-format json $U > $t.$round.json 2>/dev/null
    python3 -c "import json; d=json.load(open('$t.$round.json')); p=d['latencyPercentiles']; print('$round $t p50_us', round(p['p50']*1e6), 'p99_us', round(p['p99']*1e6), 'ok', d['summary']['successRate'])"
  done
done
for round in 1 2 3; do
  for t in floor aiplus; do
    case $t in floor) U=$F/fast/v1/chat/completions;; aiplus) U=$G/v1/chat/completions;; esac
    oha -z 10s -c 64 -m POST -H "Authorization: Bearer $K" -H 'content-type: application/json' -d "$BODY" --no-tui --output-format json $U > $t.c64.$round.json 2>/dev/null
    python3 -c "import json; d=json.load(open('$t.c64.$round.json')); p=d['latencyPercentiles']; s=d['summary']; print('$round $t c64 req_s', round(s['requestsPerSec']), 'p50_ms', round(p['p50']*1e3, 2), 'p99_ms', round(p['p99']*1e3, 2), 'ok', s['successRate'])"
  done
done
kill $MP $FP $SP
rm -rf "$W"
