#!/usr/bin/env bash
# X-Scope between two peer clouds (docs/peers.md, Benchmark): scoped image show against
# the same call made directly to the peer, and cross-cloud image download against a local
# one, with 0 and 50 ms of WAN delay each way.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/atwill bench scope "$@"
