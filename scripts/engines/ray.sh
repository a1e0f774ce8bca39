#!/usr/bin/env bash
# Single-node Ray head with the Jobs REST API (dashboard) for integration tests.
#
#   scripts/engines/ray.sh install          # pip install 'ray[default]' into python3 (no-op when importable)
#   eval "$(scripts/engines/ray.sh start)"   # ray start --head; prints `export AIPLUS_RAY_URL=...`
#   scripts/engines/ray.sh status           # exit 0 when GET /api/version answers
#   scripts/engines/ray.sh stop             # ray stop --force
#
# Environment:
#   AIPLUS_RAY_DASHBOARD_PORT  dashboard / Jobs API port on 127.0.0.1 (default 8265)
#   AIPLUS_RAY_GCS_PORT        GCS port of the head (default 26379)
#   AIPLUS_RAY_DIR             temp dir (default /tmp/aiplus-ray)
#   AIPLUS_RAY_GPUS            fake GPUs declared (default 4)
#   AIPLUS_RAY_CPUS            CPUs declared (default: detected)
#   AIPLUS_RAY_OBJECT_STORE    object store bytes (default 200000000)
#   PYTHON                     interpreter to use (default python3)
#
# Everything but the export line of `start` goes to stderr. See FACTS.md next to this file.
set -euo pipefail

PORT="${AIPLUS_RAY_DASHBOARD_PORT:-8265}"
GCS_PORT="${AIPLUS_RAY_GCS_PORT:-26379}"
DIR="${AIPLUS_RAY_DIR:-/tmp/aiplus-ray}"
GPUS="${AIPLUS_RAY_GPUS:-4}"
OBJ="${AIPLUS_RAY_OBJECT_STORE:-200000000}"
PY="${PYTHON:-python3}"
URL="http://127.0.0.1:$PORT"
export RAY_USAGE_STATS_ENABLED=0

log() { echo "ray.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# the `ray` CLI of the same interpreter (pyenv shims and venvs put it next to python)
ray_cli() { "$PY" -c 'import sys; from ray.scripts.scripts import main; sys.argv[0] = "ray"; sys.exit(main())' "$@"; }

installed() { "$PY" -c 'import ray, ray.dashboard, aiohttp' >/dev/null 2>&1; }

cmd_install() {
  if installed; then
    log "ray $("$PY" -c 'import ray; print(ray.__version__)') already installed"
    return 0
  fi
  log "pip install 'ray[default]'"
  "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore 'ray[default]' >&2
  installed || die "ray still not importable after install"
}

api_up() { curl -fsS -m 3 "$URL/api/version" >/dev/null 2>&1; }

cmd_status() {
  api_up || return 1
  curl -fsS -m 3 "$URL/api/version" >&2
  echo >&2
}

cmd_start() {
  installed || die "ray not installed; run '$0 install'"
  if api_up; then
    log "already running at $URL"
    echo "export AIPLUS_RAY_URL=$URL"
    return 0
  fi
  local t0=$SECONDS
  mkdir -p "$DIR"
  # no --node-ip-address: Ray maps 127.0.0.1 to the machine's own interface address anyway
  local args=(--head --port "$GCS_PORT"
    --include-dashboard true --dashboard-host 127.0.0.1 --dashboard-port "$PORT"
    --num-gpus "$GPUS" --object-store-memory "$OBJ" --temp-dir "$DIR" --disable-usage-stats)
  [[ -n "${AIPLUS_RAY_CPUS:-}" ]] && args+=(--num-cpus "$AIPLUS_RAY_CPUS")
  ray_cli start "${args[@]}" >"$DIR/ray-start.log" 2>&1 || {
    cat "$DIR/ray-start.log" >&2
    die "ray start failed"
  }
  local deadline=$((SECONDS + 120))
  until api_up; do
    ((SECONDS < deadline)) || die "dashboard $URL not answering after 120s; see $DIR/session_latest/logs/"
    sleep 0.5
  done
  # /api/version answers before the job agent is ready; wait until the jobs API lists
  until curl -fsS -m 5 "$URL/api/jobs/" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "jobs API $URL/api/jobs/ not answering after 120s"
    sleep 0.5
  done
  log "ray head up in $((SECONDS - t0))s at $URL (GCS port $GCS_PORT)"
  echo "export AIPLUS_RAY_URL=$URL"
}

# Entrypoint processes of Ray jobs outlive `ray stop --force` (their JobSupervisor is SIGKILLed,
# the shell child is re-parented to init). Find them by the RAY_ADDRESS of our GCS port and the
# job config Ray puts in their environment.
orphans() {
  local e p
  for e in /proc/[0-9]*/environ; do
    p="${e#/proc/}"
    p="${p%/environ}"
    [[ "$p" == "$$" ]] && continue
    grep -qzE "^RAY_ADDRESS=[^=]*:$GCS_PORT\$" "$e" 2>/dev/null || continue
    grep -qz '^RAY_JOB_CONFIG_JSON_ENV_VAR=' "$e" 2>/dev/null && echo "$p"
  done
  return 0
}

cmd_stop() {
  mkdir -p "$DIR"
  if installed; then
    ray_cli stop --force >"$DIR/ray-stop.log" 2>&1 || log "ray stop failed; see $DIR/ray-stop.log"
  fi
  local pids
  pids="$(orphans)"
  if [[ -n "$pids" ]]; then
    log "killing job processes left by ray stop: ${pids//$'\n'/ }"
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
  fi
  log "stopped"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac
