# Sourced by the evaluation scripts: a fresh `aiplus serve` on its embedded defaults (the chat
# model served by llama.cpp), a suites directory with CMMLU's manifest over ../shared's CSVs,
# and their cleanup. Sets: repo, bin, data, server, url, model, suites; exports AIPLUS_TOKEN.
# Takes the data directory's prefix as $1.

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/target/release/aiplus"
cmmlu="${CMMLU_DIR:-$repo/../shared/evaldata/cmmlu}"
data="$(mktemp -d "/tmp/$1.XXXXXX")"
model=qwen2.5-coder-0.5b-instruct

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
AIPLUS_TOKEN="$(cat "$data/operator-token")"
export AIPLUS_TOKEN

suites="$data/suites"
mkdir -p "$suites/cmmlu"
cp "$repo/suites/cmmlu/suite.toml" "$suites/cmmlu/"
ln -s "$(cd "$cmmlu" && pwd)" "$suites/cmmlu/data"
