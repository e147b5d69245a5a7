#!/usr/bin/env bash
# Instance benchmark: server create -> ACTIVE against QEMU by hand, cold image cache (see README.md here).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/atwill bench instances "$@"
