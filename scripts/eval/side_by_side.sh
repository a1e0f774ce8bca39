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

limit="${LIMIT:-}"
# shellcheck source=embedded.sh
source "$(dirname "${BASH_SOURCE[0]}")/embedded.sh" aiplus-side-by-side
out="$data/eval"

# A key of the evaluation tenant (the server registers it at start) for lm_eval; aiplus eval
# makes its own.
key="$(curl -sf -H "authorization: Bearer $AIPLUS_TOKEN" -H 'x-aiplus-tenant: eval' -H 'content-type: application/json' \
  -d '{"name": "lm_eval side by side", "scopes": ["inference"]}' "$url/api/v1/keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"

echo "waiting for $model to load…" >&2
for _ in $(seq 1 600); do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -d "{\"model\": \"$model\", \"prompt\": \"1+1=\", \"max_tokens\": 1}" "$url/v1/completions")"
  [ "$code" = 200 ] && break
  sleep 1
done

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
