#!/usr/bin/env bash
# Fleet benchmark: SIMULATED nodes against a real controller on PostgreSQL (see README.md
# here). Needs ATWILL_TEST_PG_URL or --database-url (a URL allowed to create databases).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/atwill bench fleet "$@"
