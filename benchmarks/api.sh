#!/usr/bin/env bash
# Controller API benchmark (see README.md here).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/atwill bench api "$@"
