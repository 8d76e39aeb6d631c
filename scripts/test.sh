#!/usr/bin/env bash
# README command 2: install, build, and run every test (ctest, 2 in parallel).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build -j2 --output-on-failure --timeout 300
