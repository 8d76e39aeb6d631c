#!/usr/bin/env bash
# README command 2: install, build, fuzz every parser for a bounded time, and
# run every test (ctest, 2 in parallel).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
# Every parser's libFuzzer target, a bounded time each (FUZZ_SECONDS).
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" bash scripts/fuzz.sh
ctest --test-dir build -j2 --output-on-failure --timeout 300
