#!/usr/bin/env bash
# Runs EleutherAI lm-evaluation-harness (PyPI lm_eval, pinned) on two CMMLU subjects against an
# OpenAI-compatible endpoint, with lm_eval's own CMMLU prompt format (5-shot from dev, first_n)
# in a generation variant, reading the local CSVs. Prints ONE JSON line on stdout with per-subject
# and overall accuracy, standard error and n; everything else goes to stderr and to the run dir.
#
#   AIPLUS_URL=http://127.0.0.1:8080/v1 AIPLUS_KEY=sk-... MODEL=qwen2.5-coder-0.5b-instruct \
#     scripts/eval/lm_eval_side_by_side.sh
#
# Environment:
#   AIPLUS_URL  base URL of the OpenAI-compatible API, ending in /v1 (required)
#   AIPLUS_KEY  bearer key (required; sent as "Authorization: Bearer $AIPLUS_KEY")
#   MODEL       model name sent in the request body (required)
#   LIMIT       only the first LIMIT test rows of each subject (optional; lm_eval --limit)
#   MODE        completions (default: POST $AIPLUS_URL/completions, the prompt as one string)
#               or chat (POST $AIPLUS_URL/chat/completions, --apply_chat_template, which makes the
#               description a system message and the 5 shots user/assistant turns)
#   CMMLU_DIR   directory with test/ and dev/ CSVs (default: <repo>/../shared/evaldata/cmmlu)
#   OUT_DIR     where runs go (default: <repo>/target/lm-eval/runs)
#   VENV        the virtualenv (default: <repo>/target/lm-eval-venv), created if missing
#
# Concurrency is 1 (num_concurrent=1, batch_size=1). lm_eval's response cache (--use_cache) and
# prompt cache (--cache_requests) are not used; Hugging Face datasets' cache lives in target/.
# Nothing is fetched from the Hugging Face hub (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1).
set -euo pipefail

LM_EVAL_VERSION=0.4.13
SUBJECTS=(agronomy chinese_foreign_policy)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
: "${AIPLUS_URL:?set AIPLUS_URL (e.g. http://127.0.0.1:8080/v1)}"
: "${AIPLUS_KEY:?set AIPLUS_KEY (bearer key)}"
: "${MODEL:?set MODEL (model name)}"
MODE="${MODE:-completions}"
CMMLU_DIR="${CMMLU_DIR:-$repo/../shared/evaldata/cmmlu}"
OUT_DIR="${OUT_DIR:-$repo/target/lm-eval/runs}"
VENV="${VENV:-$repo/target/lm-eval-venv}"
LIMIT="${LIMIT:-}"

log() { printf '%s\n' "$*" >&2; }

CMMLU_DIR="$(cd "$CMMLU_DIR" && pwd)"
for s in "${SUBJECTS[@]}"; do
  for split in test dev; do
    [ -f "$CMMLU_DIR/$split/$s.csv" ] || { log "missing $CMMLU_DIR/$split/$s.csv"; exit 2; }
  done
done

# The venv: created once, reused while it holds the pinned lm_eval.
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('lm_eval') != '$LM_EVAL_VERSION')" 2>/dev/null; then
  log "installing lm_eval[api]==$LM_EVAL_VERSION into $VENV (about a minute; no torch)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    -c "$here/lm_eval_cmmlu/constraints.txt" "lm_eval[api]==$LM_EVAL_VERSION" >&2
fi

run="$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ)-$$"
mkdir -p "$run/tasks"
# The task YAMLs, with the CSV paths pointed at CMMLU_DIR.
for f in "$here"/lm_eval_cmmlu/*.yaml "$here"/lm_eval_cmmlu/_cmmlu_local_gen_template_yaml; do
  sed "s#/work/shared/evaldata/cmmlu#$CMMLU_DIR#g" "$f" > "$run/tasks/$(basename "$f")"
done

export HF_HOME="$repo/target/lm-eval/hf"
export HF_DATASETS_CACHE="$HF_HOME/datasets"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
export OPENAI_API_KEY="$AIPLUS_KEY"   # lm_eval's local-* models send it as the bearer token

base="${AIPLUS_URL%/}"
case "$MODE" in
  completions)
    # tokenizer_backend=None: no tokenizer at all (otherwise lm_eval probes the server for a
    # remote tokenizer and falls back to downloading a HF tokenizer); it also makes the prompt
    # go out as a string (tokenized_requests=False).
    model_type=local-completions
    model_args="model=$MODEL,base_url=$base/completions,tokenizer_backend=None,num_concurrent=1,max_retries=3,timeout=600"
    chat_flags=()
    ;;
  chat)
    model_type=local-chat-completions
    model_args="model=$MODEL,base_url=$base/chat/completions,num_concurrent=1,max_retries=3,timeout=600"
    chat_flags=(--apply_chat_template)
    ;;
  *) log "MODE must be completions or chat"; exit 2 ;;
esac

limit_flags=()
[ -n "$LIMIT" ] && limit_flags=(--limit "$LIMIT")

log "lm_eval $LM_EVAL_VERSION $model_type -> $base ($MODEL), run dir $run"
started=$(date +%s)
"$VENV/bin/lm_eval" run \
  --model "$model_type" --model_args "$model_args" \
  --tasks cmmlu_local_gen --include_path "$run/tasks" \
  --batch_size 1 "${limit_flags[@]}" "${chat_flags[@]}" \
  --log_samples --output_path "$run/out" >"$run/lm_eval.log" 2>&1 || {
    log "lm_eval failed; last lines of $run/lm_eval.log:"; tail -n 30 "$run/lm_eval.log" >&2; exit 1; }
elapsed=$(( $(date +%s) - started ))

RUN="$run" MODE="$MODE" MODEL="$MODEL" LIMIT="$LIMIT" ELAPSED="$elapsed" LM_EVAL_VERSION="$LM_EVAL_VERSION" \
SUBJECTS="${SUBJECTS[*]}" "$VENV/bin/python" - <<'PY'
import glob, json, math, os

run = os.environ["RUN"]
results_file = sorted(glob.glob(f"{run}/out/**/results_*.json", recursive=True))[-1]
res = json.load(open(results_file, encoding="utf-8"))
key, skey = "exact_match,first_letter", "exact_match_stderr,first_letter"

def stderr(xs):  # lm_eval's mean_stderr: sample std (n-1) / sqrt(n)
    n = len(xs)
    if n < 2:
        return None
    m = sum(xs) / n
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) / math.sqrt(n)

out = {"harness": "lm_eval", "lm_eval_version": os.environ["LM_EVAL_VERSION"],
       "mode": os.environ["MODE"], "model": os.environ["MODEL"],
       "limit": int(os.environ["LIMIT"]) if os.environ["LIMIT"] else None,
       "seconds": int(os.environ["ELAPSED"]), "subjects": {}}
items_path = f"{run}/items.jsonl"
all_scores = []
with open(items_path, "w", encoding="utf-8") as items:
    for subj in os.environ["SUBJECTS"].split():
        task = f"cmmlu_local_gen_{subj}"
        samples_file = sorted(glob.glob(f"{run}/out/**/samples_{task}_*.jsonl", recursive=True))[-1]
        scores = []
        for line in open(samples_file, encoding="utf-8"):
            s = json.loads(line)
            scores.append(float(s["exact_match"]))
            items.write(json.dumps({"subject": subj, "row": s["doc_id"], "gold": s["target"],
                                    "response": s["resps"][0][0], "extracted": s["filtered_resps"][0],
                                    "correct": bool(s["exact_match"])}, ensure_ascii=False) + "\n")
        r = res["results"][task]
        acc = r[key]
        se = r.get(skey)
        # cross-check lm_eval's numbers against the per-item samples
        assert abs(acc - sum(scores) / len(scores)) < 1e-12, (task, acc)
        if isinstance(se, float) and stderr(scores) is not None:
            assert abs(se - stderr(scores)) < 1e-9, (task, se, stderr(scores))
        out["subjects"][subj] = {"acc": acc, "stderr": se if isinstance(se, float) else None,
                                 "n": len(scores), "correct": int(sum(scores))}
        all_scores += scores
g = res["results"]["cmmlu_local_gen"]
gse = g.get(skey)
out["overall"] = {"acc": g[key], "stderr": gse if isinstance(gse, float) else None,
                  "n": len(all_scores), "correct": int(sum(all_scores)),
                  "stderr_all_items": stderr(all_scores)}
out["run_dir"] = run
out["items"] = items_path
print(json.dumps(out, ensure_ascii=False))
PY
