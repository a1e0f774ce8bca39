#!/usr/bin/env bash
# End-to-end check of ../lm_eval_side_by_side.sh against fake_openai_server.py, which answers
# every request with ANSWER (default B). lm_eval's accuracy must then equal the share of ANSWER
# among the gold letters of the rows asked (the first LIMIT rows, or all), per subject and overall,
# and its stderr must equal sqrt(p(1-p)/(n-1)). Every request body must be the documented shape.
#   scripts/eval/lm_eval_cmmlu/selftest.sh            # all 276 rows, completions mode
#   LIMIT=20 MODE=chat scripts/eval/lm_eval_cmmlu/selftest.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
ANSWER="${ANSWER:-B}"
MODE="${MODE:-completions}"
LIMIT="${LIMIT:-}"
CMMLU_DIR="${CMMLU_DIR:-$repo/../shared/evaldata/cmmlu}"
work="$repo/target/lm-eval/selftest-$$"
mkdir -p "$work"

python3 "$here/fake_openai_server.py" --port 0 --port-file "$work/port" --answer "$ANSWER" \
  --model fake-model --log "$work/requests.jsonl" --max-seconds 900 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port="$(cat "$work/port")"

line="$(AIPLUS_URL="http://127.0.0.1:$port/v1" AIPLUS_KEY=sk-selftest MODEL=fake-model MODE="$MODE" \
  LIMIT="$LIMIT" CMMLU_DIR="$CMMLU_DIR" OUT_DIR="$work/runs" "$here/../lm_eval_side_by_side.sh")"
echo "$line"

LINE="$line" ANSWER="$ANSWER" LIMIT="$LIMIT" MODE="$MODE" CMMLU_DIR="$CMMLU_DIR" REQS="$work/requests.jsonl" python3 - <<'PY'
import csv, json, math, os
out = json.loads(os.environ["LINE"])
answer, limit = os.environ["ANSWER"], os.environ["LIMIT"]
letter = next(c for c in answer if c in "ABCD")
total_n = total_hit = 0
fails = 0
for subj, got in out["subjects"].items():
    rows = list(csv.DictReader(open(f"{os.environ['CMMLU_DIR']}/test/{subj}.csv", encoding="utf-8")))
    if limit:
        rows = rows[: int(limit)]
    n, hit = len(rows), sum(r["Answer"] == letter for r in rows)
    p = hit / n
    se = math.sqrt(p * (1 - p) / (n - 1))
    ok = got["n"] == n and abs(got["acc"] - p) < 1e-12 and abs(got["stderr"] - se) < 1e-12
    fails += not ok
    print(f"{subj}: n={n} gold {letter}={hit} expected acc={p:.6f} se={se:.6f}; lm_eval acc={got['acc']:.6f} se={got['stderr']:.6f} n={got['n']} {'OK' if ok else 'MISMATCH'}")
    total_n, total_hit = total_n + n, total_hit + hit
p = total_hit / total_n
ok = out["overall"]["n"] == total_n and abs(out["overall"]["acc"] - p) < 1e-12
fails += not ok
print(f"overall: n={total_n} expected acc={p:.6f}; lm_eval acc={out['overall']['acc']:.6f} {'OK' if ok else 'MISMATCH'}")
reqs = [json.loads(l) for l in open(os.environ["REQS"], encoding="utf-8")]
posts = [r for r in reqs if r["method"] == "POST"]
path = "/v1/completions" if os.environ["MODE"] == "completions" else "/v1/chat/completions"
field = "prompt" if os.environ["MODE"] == "completions" else "messages"
want = {field, "model", "max_tokens", "temperature", "stop", "seed"}
bad = [r for r in posts if r["path"] != path or set(r["body"]) != want or r["body"]["max_tokens"] != 8
       or r["body"]["temperature"] != 0 or r["body"]["stop"] != ["\n"] or r["body"]["model"] != "fake-model"
       or not r["authorization_present"]]
print(f"requests: {len(reqs)} ({len(posts)} POST {path}), malformed: {len(bad)}, other: {len(reqs) - len(posts)}")
fails += bool(bad) + (len(posts) != total_n) + (len(reqs) != len(posts))
print("SELFTEST", "PASSED" if not fails else "FAILED")
raise SystemExit(1 if fails else 0)
PY
