#!/usr/bin/env bash
# Network benchmark: port-to-port throughput, port plumbing, security-group changes (see README.md here).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/atwill bench network "$@"
