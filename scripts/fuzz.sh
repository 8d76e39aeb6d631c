#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each for a
# bounded time (FUZZ_SECONDS, default 20) on its seed corpus in
# tests/fuzz/corpus/<name>/ if present. Exits non-zero on the first crash.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-20}"
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DPORTIER_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)"
shopt -s nullglob
status=0
for bin in build-fuzz/bin/*_fuzz; do
  name=$(basename "$bin")
  corpus="tests/fuzz/corpus/${name%_fuzz}"
  work=$(mktemp -d)
  [[ -d $corpus ]] && cp -r "$corpus"/. "$work"/
  echo "fuzz: $name for ${SECONDS_EACH}s"
  if ! "$bin" -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -print_final_stats=1 \
      "$work" >"$work.log" 2>&1; then
    tail -40 "$work.log"
    echo "fuzz: $name FAILED (log above)"
    status=1
  else
    grep -E 'stat::number_of_executed_units' "$work.log" || true
  fi
  rm -rf "$work" "$work.log"
done
exit $status
