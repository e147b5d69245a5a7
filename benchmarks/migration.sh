#!/usr/bin/env bash
# Live-migration benchmark: downtime, total time and bytes against the same QEMU migration by hand (see README.md here).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/atwill bench migration "$@"
