#!/usr/bin/env bash
# Single-node Slurm (Debian 12 slurm-wlm 22.05) for integration tests.
#
#   scripts/engines/slurm.sh install        # apt-get install slurm-wlm munge (no-op when present)
#   eval "$(scripts/engines/slurm.sh start)" # munged + slurmctld + slurmd; prints `export SLURM_CONF=...`
#   scripts/engines/slurm.sh status         # exit 0 when the node answers
#   scripts/engines/slurm.sh stop-slurmd    # simulate the compute side going away (jobs keep running)
#   scripts/engines/slurm.sh start-slurmd   # ... and coming back
#   scripts/engines/slurm.sh stop-slurmctld / start-slurmctld   # same for the controller (API down)
#   scripts/engines/slurm.sh stop           # stop everything `start` started
#
# Environment:
#   AIPLUS_SLURM_DIR          state dir (default /tmp/aiplus-slurm): conf, munge socket, logs, spool
#   AIPLUS_SLURM_CTLD_PORT    slurmctld port (default 16817)
#   AIPLUS_SLURMD_PORT        slurmd port (default 16818)
#   AIPLUS_SLURM_GPUS         fake GPUs declared on the node (default 4)
#   AIPLUS_SLURMD_TIMEOUT     seconds before a silent slurmd marks the node DOWN (default 300)
#   AIPLUS_SLURM_KEEP_STATE=1 keep jobs/job ids from a previous run (default: fresh state each start)
#
# Everything but the export lines of `start` goes to stderr. See FACTS.md next to this file.
set -euo pipefail

DIR="${AIPLUS_SLURM_DIR:-/tmp/aiplus-slurm}"
CTLD_PORT="${AIPLUS_SLURM_CTLD_PORT:-16817}"
SLURMD_PORT="${AIPLUS_SLURMD_PORT:-16818}"
GPUS="${AIPLUS_SLURM_GPUS:-4}"
SLURMD_TIMEOUT="${AIPLUS_SLURMD_TIMEOUT:-300}"
CONF="$DIR/etc/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket"
NODE="$(hostname -s)"

log() { echo "slurm.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# pid from a pid file if that process is alive
live_pid() {
  local f="$1" pid
  [[ -s "$f" ]] || return 1
  pid="$(cat "$f" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# stop the process of a pid file: TERM, wait up to $2 s, then KILL
stop_pidfile() {
  local f="$1" wait="${2:-15}" pid i
  pid="$(live_pid "$f")" || { rm -f "$f"; return 0; }
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < wait * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
    sleep 0.1
  done
  log "pid $pid ($f) did not exit on TERM; killing"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

installed() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null &&
    [[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/gres_gpu.so || -n "$(find /usr/lib -name gres_gpu.so -print -quit 2>/dev/null)" ]]
}

cmd_install() {
  if installed; then
    log "slurm $(slurmd -V | awk '{print $2}') and munge already installed"
    return 0
  fi
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  local pkgs=(slurm-wlm munge) aptlog
  aptlog="$(mktemp /tmp/aiplus-slurm-apt.XXXXXX)"
  apt_quiet() { $sudo apt-get -q -y -o Dpkg::Use-Pty=0 "$@" >>"$aptlog" 2>&1; }
  # apt-get update only when the package lists do not know the packages yet
  if ! apt-cache show slurm-wlm >/dev/null 2>&1 || ! apt-cache show munge >/dev/null 2>&1; then
    log "apt-get update"
    apt_quiet update || { cat "$aptlog" >&2; die "apt-get update failed"; }
  fi
  log "apt-get install ${pkgs[*]}"
  if ! apt_quiet install --no-install-recommends "${pkgs[@]}"; then
    log "install failed; retrying after apt-get update"
    apt_quiet update || true
    apt_quiet install --no-install-recommends "${pkgs[@]}" || { cat "$aptlog" >&2; die "apt-get install failed"; }
  fi
  rm -f "$aptlog"
  installed || die "slurm still missing after install"
  # Debian's postinst may start the packaged daemons where an init system exists; ours do not
  # use them (own socket, own ports), so they are left alone.
}

print_exports() {
  echo "export SLURM_CONF=$CONF"
}

start_munged() {
  mkdir -p "$DIR/munge"
  chmod 0700 "$DIR/munge"
  if live_pid "$DIR/munge/munged.pid" >/dev/null; then return 0; fi
  if [[ ! -s "$DIR/munge/munge.key" ]]; then
    if [[ -r /etc/munge/munge.key ]]; then
      cp /etc/munge/munge.key "$DIR/munge/munge.key"
    else
      mungekey --create --keyfile="$DIR/munge/munge.key" >&2 2>/dev/null ||
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none
    fi
    chmod 0400 "$DIR/munge/munge.key"
  fi
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  # running as root with private paths: --force accepts root ownership and /tmp parents
  munged --force --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed" >&2 2>&1 || die "munged failed; see $DIR/munge/munged.log"
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -S "$MUNGE_SOCKET" ]] && return 0
    sleep 0.1
  done
  die "munged socket $MUNGE_SOCKET did not appear"
}

write_conf() {
  local hw cpus sockets cores threads mem
  hw="$(slurmd -C | head -1)"
  cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")"
  sockets="$(sed -n 's/.* SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$hw")"
  cores="$(sed -n 's/.* CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$hw")"
  threads="$(sed -n 's/.* ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$hw")"
  mem="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"
  [[ -n "$cpus" && -n "$mem" ]] || die "cannot parse 'slurmd -C': $hw"
  mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
  local gres=""
  ((GPUS > 0)) && gres=" Gres=gpu:$GPUS"
  cat >"$CONF.tmp" <<EOF
# generated by scripts/engines/slurm.sh — single node, fake GPUs, no cgroups, no slurmdbd
ClusterName=aiplus
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
LaunchParameters=use_interactive_step
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
SlurmdTimeout=$SLURMD_TIMEOUT
SlurmctldTimeout=120
InactiveLimit=0
KillWait=5
MinJobAge=3600
DefMemPerCPU=256
MaxJobCount=100000
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Sockets=${sockets:-1} CoresPerSocket=${cores:-$cpus} ThreadsPerCore=${threads:-1} RealMemory=$mem${gres} State=UNKNOWN
PartitionName=aiplus Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  mv "$CONF.tmp" "$CONF"
  # Fake GPUs. gres/gpu drops entries without File= ("Removing file-less GPU"), so each GPU
  # gets a device node: character devices with /dev/null's numbers (a regular file also counts
  # but logs "not a valid character or block device"). Jobs see CUDA_VISIBLE_DEVICES=0,1,...
  mkdir -p "$DIR/dev"
  local i
  for ((i = 0; i < GPUS; i++)); do
    [[ -c "$DIR/dev/gpu$i" ]] || { rm -f "$DIR/dev/gpu$i"; mknod "$DIR/dev/gpu$i" c 1 3 2>/dev/null || touch "$DIR/dev/gpu$i"; }
  done
  if ((GPUS > 0)); then
    echo "NodeName=$NODE Name=gpu File=$DIR/dev/gpu[0-$((GPUS - 1))]" >"$DIR/etc/gres.conf"
  else
    : >"$DIR/etc/gres.conf"
  fi
}

node_state() {
  local out
  out="$(SLURM_CONF="$CONF" sinfo -h -n "$NODE" -o '%T' 2>/dev/null)" || return 1
  echo "${out%%$'\n'*}"
}

wait_idle() {
  local deadline=$((SECONDS + ${1:-60})) st=""
  while ((SECONDS < deadline)); do
    st="$(node_state || true)"
    case "$st" in
      idle | mixed | allocated | completing) return 0 ;;
    esac
    sleep 0.5
  done
  die "node $NODE not up after ${1:-60}s (state '${st}'); see $DIR/log/"
}

start_slurmctld() {
  live_pid "$DIR/run/slurmctld.pid" >/dev/null && return 0
  local clear=()
  [[ "${AIPLUS_SLURM_KEEP_STATE:-0}" == 1 || "${1:-}" == keep ]] || clear=(-c)
  SLURM_CONF="$CONF" slurmctld "${clear[@]}" -f "$CONF" >&2 2>&1 || die "slurmctld failed; see $DIR/log/slurmctld.log"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ "$(SLURM_CONF="$CONF" scontrol ping 2>/dev/null || true)" == *"is UP"* ]] && return 0
    sleep 0.2
  done
  die "slurmctld not answering; see $DIR/log/slurmctld.log"
}

start_slurmd() {
  live_pid "$DIR/run/slurmd.pid" >/dev/null && return 0
  mkdir -p "$DIR/spool/$NODE"
  SLURM_CONF="$CONF" slurmd -f "$CONF" -N "$NODE" >&2 2>&1 || die "slurmd failed; see $DIR/log/slurmd.log"
}

cmd_start() {
  installed || die "slurm not installed; run '$0 install'"
  if cmd_status 2>/dev/null; then
    log "already running ($CONF)"
    print_exports
    return 0
  fi
  local t0=$SECONDS
  start_munged
  if ! live_pid "$DIR/run/slurmctld.pid" >/dev/null; then
    write_conf
  fi
  start_slurmctld
  start_slurmd
  wait_idle 60
  log "node $NODE up in $((SECONDS - t0))s; ctld port $CTLD_PORT, slurmd port $SLURMD_PORT"
  print_exports
}

cmd_status() {
  [[ -f "$CONF" ]] || return 1
  live_pid "$DIR/run/slurmctld.pid" >/dev/null || return 1
  local st
  st="$(node_state)" || return 1
  case "$st" in
    idle | mixed | allocated | completing) echo "$NODE $st" >&2; return 0 ;;
    *) echo "$NODE ${st:-unknown}" >&2; return 1 ;;
  esac
}

# pids of a process and all its descendants
descendants() {
  local p c
  for p in "$@"; do
    echo "$p"
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null || true); do descendants "$c"; done
  done
}

# slurmstepd processes of this cluster (they inherit SLURM_CONF from our slurmd)
our_stepds() {
  local p
  for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
    grep -qzx "SLURM_CONF=$CONF" /proc/"$p"/environ 2>/dev/null && echo "$p"
  done
  return 0
}

cmd_stop() {
  local i pids
  # cancel jobs while the controller and slurmd can still do it cleanly
  if live_pid "$DIR/run/slurmctld.pid" >/dev/null && live_pid "$DIR/run/slurmd.pid" >/dev/null; then
    SLURM_CONF="$CONF" scancel --full --partition=aiplus 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [[ -z "$(our_stepds)" ]] && break
      sleep 0.2
    done
  fi
  stop_pidfile "$DIR/run/slurmd.pid" 20
  stop_pidfile "$DIR/run/slurmctld.pid" 20
  # steps left behind (slurmd was down): kill them and their job processes
  pids="$(our_stepds)"
  if [[ -n "$pids" ]]; then
    # shellcheck disable=SC2046,SC2086
    kill -9 $(descendants $pids) 2>/dev/null || true
  fi
  stop_pidfile "$DIR/munge/munged.pid" 10
  log "stopped"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  stop-slurmd) stop_pidfile "$DIR/run/slurmd.pid" 20 ;;
  start-slurmd)
    start_munged
    start_slurmd
    ;;
  stop-slurmctld) stop_pidfile "$DIR/run/slurmctld.pid" 20 ;;
  start-slurmctld)
    start_munged
    start_slurmctld keep
    ;;
  *)
    echo "usage: $0 install|start|stop|status|stop-slurmd|start-slurmd|stop-slurmctld|start-slurmctld" >&2
    exit 2
    ;;
esac
