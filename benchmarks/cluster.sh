#!/usr/bin/env bash
# Cluster benchmark: join latency and overlay throughput in the lab (see README.md here).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/atwill bench cluster "$@"
