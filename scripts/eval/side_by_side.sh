#!/usr/bin/env bash
# aiplus eval and lm-evaluation-harness, side by side, on the same two CMMLU subjects
# (agronomy, chinese_foreign_policy), the same items, the same prompt (lm_eval's CMMLU layout,
# 5-shot from dev) and the same endpoint: a fresh `aiplus serve` with its embedded chat model,
# asked through /v1/completions by greedy generation, the letter extracted from the answer.
# Prints both reports and fails unless the overall accuracies agree within one standard error.
#
#   scripts/eval/side_by_side.sh            # the whole of both subjects (about 15 min on 2 cores)
#   LIMIT=20 scripts/eval/side_by_side.sh   # the first 20 items of each
#
# Needs a release build (cargo build --release -p aiplus), Python ≥ 3.10, and ../shared's CMMLU
# CSVs (CC BY-NC-SA 4.0: read from there, never bundled). lm_eval is installed pinned into
# target/lm-eval-venv by lm_eval_side_by_side.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/target/release/aiplus"
cmmlu="${CMMLU_DIR:-$repo/../shared/evaldata/cmmlu}"
limit="${LIMIT:-}"
data="$(mktemp -d /tmp/aiplus-side-by-side.XXXXXX)"
out="$data/eval"

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
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" > "$data/serve.out" &
server=$!
for _ in $(seq 1 100); do grep -q "http://" "$data/serve.out" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'http://[0-9.:]*' "$data/serve.out" | head -1)"
export AIPLUS_TOKEN="$(cat "$data/operator-token")"
model=qwen2.5-coder-0.5b-instruct

# A key of the evaluation tenant for lm_eval (aiplus eval makes its own).
curl -sf -H "authorization: Bearer $AIPLUS_TOKEN" -H 'content-type: application/json' \
  -d '{"id": "eval", "name": "Evaluation"}' "$url/api/v1/tenants" > /dev/null
key="$(curl -sf -H "authorization: Bearer $AIPLUS_TOKEN" -H 'x-aiplus-tenant: eval' -H 'content-type: application/json' \
  -d '{"name": "lm_eval side by side", "scopes": ["inference"]}' "$url/api/v1/keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"

echo "waiting for $model to load…" >&2
for _ in $(seq 1 600); do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -d "{\"model\": \"$model\", \"prompt\": \"1+1=\", \"max_tokens\": 1}" "$url/v1/completions")"
  [ "$code" = 200 ] && break
  sleep 1
done

suites="$data/suites"
mkdir -p "$suites/cmmlu"
cp "$repo/suites/cmmlu/suite.toml" "$suites/cmmlu/"
ln -s "$(cd "$cmmlu" && pwd)" "$suites/cmmlu/data"

start=$(date +%s)
"$bin" eval run --server "$url" --model "$model" --suite cmmlu --suites-dir "$suites" \
  --subjects agronomy,chinese_foreign_policy ${limit:+--limit "$limit"} \
  --endpoint completions --method generate --concurrency 1 --out "$out" --json > "$data/aiplus.json"
aiplus_s=$(( $(date +%s) - start ))

start=$(date +%s)
AIPLUS_URL="$url/v1" AIPLUS_KEY="$key" MODEL="$model" LIMIT="$limit" CMMLU_DIR="$cmmlu" \
  "$here/lm_eval_side_by_side.sh" > "$data/lm_eval.json"
lm_eval_s=$(( $(date +%s) - start ))

python3 - "$data/aiplus.json" "$data/lm_eval.json" "$aiplus_s" "$lm_eval_s" "$out/samples.jsonl" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
l = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
# Item by item: the letter each harness read from the same item's answer.
ours = {}
for line in open(sys.argv[5], encoding="utf-8"):
    s = json.loads(line)
    ours[s["id"]] = s.get("answer")
same = total = 0
for line in open(l["items"], encoding="utf-8"):
    t = json.loads(line)
    theirs = t["extracted"] if t["extracted"] in ("A", "B", "C", "D") else None
    total += 1
    same += ours.get(f'{t["subject"]}/{t["row"]}') == theirs
print(f"items where both read the same letter: {same} of {total}")
print(json.dumps({"aiplus": {"accuracy": a["accuracy"], "stderr": a["stderr"], "n": a["items"], "seconds": int(sys.argv[3]),
                             "subjects": {g["name"]: [g["accuracy"], g["stderr"], g["n"]] for g in a["groups"]}},
                  "lm_eval": l, "lm_eval_seconds": int(sys.argv[4])}, ensure_ascii=False, indent=1))
la = l["overall"]["acc"] if "overall" in l else l["acc"]
diff = abs(a["accuracy"] - la)
se = max(a["stderr"], l["overall"]["stderr"] if "overall" in l else l["stderr"])
print(f"difference {diff:.4f}, one standard error {se:.4f}: {'agree' if diff <= se else 'DISAGREE'}")
sys.exit(0 if diff <= se else 1)
PY
