#!/usr/bin/env bash
# The local executor runs every job under bubblewrap (Debian's `bubblewrap`); without it, it
# refuses jobs. A quick no-op once installed.
set -euo pipefail
if ! command -v bwrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq bubblewrap >/dev/null
fi
