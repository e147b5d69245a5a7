#!/usr/bin/env bash
# HA benchmark: power loss -> HA servers ACTIVE on other nodes; a lossy link (see README.md here).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/atwill bench ha "$@"
