#!/usr/bin/env bash
# README command 1: install, build, and run portierd on its embedded demo
# configuration (simulated scanner; socket, policy and audit log under
# /tmp/portier-demo). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec build/bin/portierd --demo --state-dir "${PORTIER_DEMO_DIR:-/tmp/portier-demo}"
