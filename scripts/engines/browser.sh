#!/usr/bin/env bash
# The console's browser tests need Debian's Chromium (driven headless), a CJK font (so the
# Chinese pages render as text, not boxes, in the screenshots), and playwright-core and
# axe-core from npm (pinned in crates/web/tests/browser/package-lock.json). Both steps are
# quick no-ops once done.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi "WenQuanYi Zen Hei"; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null
fi
dir=crates/web/tests/browser
if [[ ! -d $dir/node_modules/playwright-core || ! -d $dir/node_modules/axe-core ]]; then
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
fi
