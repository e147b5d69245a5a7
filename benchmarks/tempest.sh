#!/usr/bin/env bash
# OpenStack's own API tests (Tempest, from PyPI, in a virtual environment of its own so its
# pins never touch atwill's) against a fresh controller; see benchmarks/tempest.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-tempest/bin/tempest ]; then
    python3 -m venv .venv-tempest
    .venv-tempest/bin/pip install -q tempest
fi
TEMPEST=$PWD/.venv-tempest/bin/tempest exec .venv/bin/python benchmarks/tempest.py "$@"
