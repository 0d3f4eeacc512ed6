#!/usr/bin/env bash
# Regenerates docs/console-*.png (the README's screenshots of the web console): runs the console's
# browser test (a 2-node lab, Debian's Chromium) with CROFT_CONSOLE_DOCS=1, which copies each
# screenshot it takes into docs/. Needs root (the lab) and `make setup` done.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022
CROFT_CONSOLE_DOCS=1 flock /tmp/croft.lock npx vitest run test/integration/console.lab.test.ts
ls -l docs/console-*.png
