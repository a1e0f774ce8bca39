#!/usr/bin/env bash
# LiteLLM proxy (PyPI `litellm[proxy]`) as a comparison point for aiplus's gateway.
#
#   scripts/bench/litellm.sh install
#   scripts/bench/litellm.sh start <port> <upstream_base_url ending in /v1> <model_name>
#   scripts/bench/litellm.sh stop
#   scripts/bench/litellm.sh status
#
# Clients authenticate with `Authorization: Bearer sk-litellm-bench` (the master
# key; auth is on). No database, no Redis, no network beyond loopback.
# Facts, choices and calibration numbers: scripts/bench/LITELLM.md.
#
# Environment (all optional):
#   AIPLUS_LITELLM_VENV           venv            (default $HOME/.cache/aiplus/litellm-venv)
#   AIPLUS_LITELLM_PYTHON         python for the venv, >= 3.10 (default python3)
#   AIPLUS_LITELLM_CONSTRAINTS    pip constraints file; empty = let pip resolve
#                                 (default scripts/bench/litellm-constraints.txt)
#   AIPLUS_LITELLM_STATE          config, pid, log (default ${TMPDIR:-/tmp}/aiplus-litellm)
#   AIPLUS_LITELLM_WORKERS        uvicorn worker processes (default 1)
#   AIPLUS_LITELLM_START_TIMEOUT  seconds to wait for readiness (default 120)
#   AIPLUS_LITELLM_WARMUP         warm-up requests after readiness, 0 = none (default 20)
#   AIPLUS_LITELLM_AUTOGROUP_NICE if set (e.g. -10, needs root), written to
#                                 /proc/<pid>/autogroup: setsid gives the proxy its
#                                 own scheduler autogroup, so a caller's `nice` does
#                                 not carry over (see LITELLM.md)
set -euo pipefail

LITELLM_VERSION=1.104.5
# `import prisma` is reached on the "no API key" auth path even without a
# database; without the package that path answers 500 instead of 401.
PRISMA_VERSION=0.15.0
MASTER_KEY=sk-litellm-bench

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONSTRAINTS=${AIPLUS_LITELLM_CONSTRAINTS-$HERE/litellm-constraints.txt}
VENV=${AIPLUS_LITELLM_VENV:-$HOME/.cache/aiplus/litellm-venv}
PYTHON=${AIPLUS_LITELLM_PYTHON:-python3}
STATE=${AIPLUS_LITELLM_STATE:-${TMPDIR:-/tmp}/aiplus-litellm}
WORKERS=${AIPLUS_LITELLM_WORKERS:-1}
START_TIMEOUT=${AIPLUS_LITELLM_START_TIMEOUT:-120}
WARMUP=${AIPLUS_LITELLM_WARMUP:-20}
PIDFILE="$STATE/litellm.pid"
LOG="$STATE/litellm.log"
CONFIG="$STATE/config.yaml"

say() { printf 'litellm.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

installed() {
    [[ -x "$VENV/bin/litellm" ]] || return 1
    "$VENV/bin/python" - "$LITELLM_VERSION" "$PRISMA_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("litellm") == sys.argv[1] and version("prisma") == sys.argv[2] else 1)
PY
}

cmd_install() {
    if installed; then
        say "litellm $LITELLM_VERSION already in $VENV"
        return 0
    fi
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
        || die "$PYTHON is $("$PYTHON" -V 2>&1); litellm $LITELLM_VERSION needs Python >= 3.10 (set AIPLUS_LITELLM_PYTHON)"
    if [[ ! -x "$VENV/bin/python" ]]; then
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV"
    fi
    say "installing litellm[proxy]==$LITELLM_VERSION into $VENV (about a minute, ~700 MB)"
    local constraint=()
    if [[ -n "$CONSTRAINTS" ]]; then
        [[ -f "$CONSTRAINTS" ]] || die "constraints file not found: $CONSTRAINTS"
        constraint=(-c "$CONSTRAINTS")
    fi
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet \
        "${constraint[@]}" "litellm[proxy]==$LITELLM_VERSION" "prisma==$PRISMA_VERSION"
    installed || die "install finished but litellm $LITELLM_VERSION is not importable from $VENV"
    say "installed litellm $LITELLM_VERSION in $VENV ($(du -sh "$VENV" 2>/dev/null | cut -f1))"
}

# The pid in $PIDFILE if that process is still alive.
running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid=$(<"$PIDFILE")
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_answers() {
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null
}

cmd_start() {
    [[ $# -eq 3 ]] || die "usage: $0 start <port> <upstream_base_url> <model_name>"
    local port=$1 upstream=${2%/} model=$3
    [[ "$port" =~ ^[0-9]+$ ]] || die "port must be a number: $port"
    installed || die "litellm $LITELLM_VERSION is not installed in $VENV: run '$0 install' first"
    if running_pid >/dev/null; then
        die "already running (pid $(running_pid)); run '$0 stop' first"
    fi
    port_answers "$port" && die "something already answers on 127.0.0.1:$port"
    mkdir -p "$STATE"

    cat >"$CONFIG" <<EOF
model_list:
  - model_name: "$model"
    litellm_params:
      model: "openai/$model"
      api_base: "$upstream"
      api_key: sk-dummy-upstream-key
litellm_settings:
  callbacks: []          # no success/failure loggers
  num_retries: 0         # the mock never fails; no retry wrapper
  request_timeout: 600
  set_verbose: false
general_settings:
  master_key: $MASTER_KEY
  disable_spend_logs: true
  disable_error_logs: true
EOF

    # Offline and quiet: every LITELLM_LOCAL_* switch makes it use the copy
    # bundled in the wheel instead of fetching from GitHub (offline, the cost
    # map fetch retries 3 times with backoff and once crashed the import with a
    # _DeadlockError while logging the failure); LITELLM_LOG
    # also sets uvicorn's level (no access log); LITELLM_MODE=PRODUCTION skips
    # load_dotenv() of a stray .env. The proxy runs in $STATE so no stray
    # config is picked up from the caller's directory.
    local env=(
        LITELLM_LOCAL_MODEL_COST_MAP=True
        LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS=True
        LITELLM_LOCAL_BLOG_POSTS=True
        LITELLM_LOCAL_POLICY_TEMPLATES=True
        LITELLM_LOCAL_AUTOROUTER_PRESETS=True
        LITELLM_LOG=ERROR
        LITELLM_MODE=PRODUCTION
        LITELLM_DONT_SHOW_FEEDBACK_BOX=True
        NO_COLOR=1
        "NO_PROXY=127.0.0.1,localhost"
        "no_proxy=127.0.0.1,localhost"
        PYTHONUNBUFFERED=1
    )
    local cmd=("$VENV/bin/litellm" --config "$CONFIG" --host 127.0.0.1 --port "$port" --num_workers "$WORKERS")
    say "starting: ${cmd[*]}"
    (
        cd "$STATE"
        exec setsid env -u DATABASE_URL -u DIRECT_URL -u REDIS_URL -u REDIS_HOST \
            -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy \
            "${env[@]}" "${cmd[@]}" </dev/null >"$LOG" 2>&1
    ) &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    sleep 0.1
    local pgid
    pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
    if [[ -n "$pgid" && "$pgid" != "$pid" ]]; then
        say "warning: litellm (pid $pid) is not its own process group ($pgid); stop will signal the pid only"
    fi

    if [[ -n "${AIPLUS_LITELLM_AUTOGROUP_NICE:-}" && "$pgid" == "$pid" && -w "/proc/$pid/autogroup" ]]; then
        echo "$AIPLUS_LITELLM_AUTOGROUP_NICE" >"/proc/$pid/autogroup" \
            || say "warning: could not set autogroup nice $AIPLUS_LITELLM_AUTOGROUP_NICE"
    fi

    local deadline=$((SECONDS + START_TIMEOUT))
    until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/health/liveliness"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "litellm exited during startup; log ($LOG):"
            cat "$LOG" >&2
            rm -f "$PIDFILE"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            say "litellm did not answer /health/liveliness within ${START_TIMEOUT}s; log ($LOG):"
            cat "$LOG" >&2
            cmd_stop
            exit 1
        fi
        sleep 0.2
    done

    # The first requests are slow (lazy imports, client creation: ~1 s for the
    # first one); warm both paths so a benchmark does not measure that.
    local i code
    for ((i = 0; i < WARMUP; i++)); do
        for stream in false true; do
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 \
                "http://127.0.0.1:$port/v1/chat/completions" \
                -H "Authorization: Bearer $MASTER_KEY" -H 'Content-Type: application/json' \
                -d "{\"model\":\"$model\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"warm-up\"}]}" || true)
            if [[ "$code" != 200 ]]; then
                say "warm-up request (stream=$stream) got HTTP $code: is the upstream $upstream up? log ($LOG):"
                tail -n 50 "$LOG" >&2
                cmd_stop
                exit 1
            fi
        done
    done
    say "ready on http://127.0.0.1:$port (pid $pid, model $model -> $upstream, key $MASTER_KEY)"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PIDFILE"
        say "not running"
        return 0
    fi
    # setsid made the pid a process-group leader: signal the whole group
    # (uvicorn's worker processes included).
    local target=$pid pgid
    pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
    [[ "$pgid" == "$pid" ]] && target=-$pid
    kill -TERM -- "$target" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 -- "$target" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 -- "$target" 2>/dev/null; then
        say "still alive after 10 s; SIGKILL"
        kill -KILL -- "$target" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 -- "$target" 2>/dev/null || break
            sleep 0.1
        done
    fi
    wait "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    say "stopped (pid $pid)"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        echo "running (pid $pid), config $CONFIG, log $LOG"
    else
        echo "not running"
        return 1
    fi
}

case "${1:-}" in
    install) shift; cmd_install "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) shift; cmd_status "$@" ;;
    *) die "usage: $0 install | start <port> <upstream_base_url> <model_name> | stop | status" ;;
esac
