#!/usr/bin/env bash
# A throwaway PostgreSQL server (Debian's postgresql package) for the tests that need a store
# shared by several aiplus instances.
#
#   scripts/engines/postgres.sh install          # apt-get install postgresql (no-op when present)
#   eval "$(scripts/engines/postgres.sh start)"   # initdb + start; prints `export AIPLUS_TEST_POSTGRES_URL=...`
#   scripts/engines/postgres.sh stop             # stop it and delete its data
#
# Environment:
#   AIPLUS_PG_DIR    data and socket directory (default /tmp/aiplus-pg)
#   AIPLUS_PG_PORT   TCP port on 127.0.0.1 (default 15432)
#
# The server runs as the `postgres` user (it refuses to run as root), trusts loopback
# connections, and favours speed over durability (fsync off): it holds test data only.
set -euo pipefail

DIR="${AIPLUS_PG_DIR:-/tmp/aiplus-pg}"
PORT="${AIPLUS_PG_PORT:-15432}"
log() { echo "postgres.sh: $*" >&2; }

bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [[ -n "$d" ]] || { log "error: no PostgreSQL under /usr/lib/postgresql; run install"; exit 1; }
  echo "$d"
}

as_pg() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  install)
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      log "installing postgresql from Debian"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
    fi
    ;;
  start)
    BIN="$(bindir)"
    "$0" stop >/dev/null 2>&1 || true
    mkdir -p "$DIR"
    [[ "$(id -u)" == 0 ]] && chown postgres: "$DIR"
    as_pg "$BIN/initdb" -D "$DIR/data" -U postgres -A trust --no-sync >/dev/null
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 \
      -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >&2
    as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -q -c "CREATE DATABASE aiplus_test" >&2
    echo "export AIPLUS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PORT/aiplus_test"
    ;;
  stop)
    BIN="$(bindir)"
    if [[ -d "$DIR/data" ]]; then
      as_pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >&2 || true
    fi
    rm -rf "$DIR"
    ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
